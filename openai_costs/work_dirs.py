"""A plugin's working files: one folder per process, gone when the process is.

Working files hold cost rows and e-mail addresses, so none may outlive the run. Each process
works in ``<root>/<plugin>-<pid>`` (root: a setting, else the system temp folder), deletes
it on every way out (return, error, ``sys.exit``, the SDK's SIGTERM handler, and at exit as
a backstop), and at start deletes the folders of the same plugin whose process is gone
(killed with SIGKILL, a power cut). Other processes' folders are never touched while they
run. Only the standard library: the core imports no plugin.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path
from types import TracebackType


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale(root: Path, plugin: str) -> list[Path]:
    """Delete ``<plugin>-<pid>`` folders under root whose process is gone; return them.
    This process's own folder is left to :class:`WorkDir`."""
    name = re.compile(rf"{re.escape(plugin)}-([0-9]+)")
    removed = []
    for entry in root.iterdir():
        match = name.fullmatch(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        pid = int(match[1])
        if pid != os.getpid() and not process_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


class WorkDir:
    """This process's working folder for one plugin: ``with WorkDir(...) as path:``.

    Entering removes stale folders of dead processes, then creates this one (mode 0700);
    leaving deletes it with everything inside.
    """

    def __init__(self, plugin: str, root: str | Path | None = None) -> None:
        self.plugin = plugin
        self.root = Path(root).expanduser() if root else Path(tempfile.gettempdir())
        self.path = self.root / f"{plugin}-{os.getpid()}"
        self.stale: list[Path] = []

    def __enter__(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.stale = remove_stale(self.root, self.plugin)
        # One named with this process's id before it made one: a process that died with
        # the same id (containers reuse ids from run to run).
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(mode=0o700)
        atexit.register(self.cleanup)
        return self.path

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        atexit.unregister(self.cleanup)
