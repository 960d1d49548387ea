"""One private working folder per process, under one folder per plugin: removed on every
exit path, and the leftovers of killed processes removed at the next start.

Working files hold cost rows and e-mail addresses, so they live in one place the user
chooses (a plugin's ``work_dir`` setting; by default ``<system temp>/<plugin>-<uid>``),
readable by the owner only, and never outlive the run:

- each process gets ``<root>/<plugin>.<pid>.<random>/`` and holds an exclusive ``flock``
  on ``<root>/<plugin>.<pid>.<random>.lock`` for its whole life. The kernel releases that
  lock however the process ends (even ``kill -9``), so a lock file nobody holds marks a
  folder whose owner is gone: :func:`open_work_folder` removes those before creating its
  own. Process ids are never trusted (they are reused); the lock is the proof of life.
- the lock file appears under its final name already locked (locked under a temporary
  name, then renamed), so a sweep never mistakes a starting process for a dead one.
- the folder is removed by :meth:`WorkFolder.cleanup`, which the plugin calls on its way
  out and which also runs at interpreter exit (``sys.exit``, an exception, the end).

POSIX only (``fcntl``), like the rest of the project's process handling.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import stat
import tempfile
import time
from pathlib import Path

from openai_costs.os_errors import advice

__all__ = ["WorkFolder", "WorkFolderError", "default_root", "open_work_folder", "remove_stale"]

logger = logging.getLogger(__name__)

_LOCK = ".lock"
_STARTING_GRACE = 60.0


class WorkFolderError(Exception):
    """The work folder cannot be used; the message names it and says what to do."""


def default_root(plugin: str) -> Path:
    """``<system temp>/<plugin>-<uid>``: one per plugin and user (the temp folder is
    shared between users, and the working files are private)."""
    return Path(tempfile.gettempdir()) / f"{plugin}-{os.getuid()}"


class WorkFolder:
    """This process's working folder (``path``) and the lock that proves it is alive."""

    def __init__(self, path: Path, lock_path: Path, lock_fd: int) -> None:
        self.path = path
        self.root = path.parent
        self._lock_path = lock_path
        self._lock_fd: int | None = lock_fd

    def cleanup(self) -> None:
        """Remove the folder and its lock file; safe to call more than once."""
        if self._lock_fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self._lock_path.unlink()
        os.close(self._lock_fd)
        self._lock_fd = None

    def __repr__(self) -> str:
        return f"WorkFolder({str(self.path)!r})"


def open_work_folder(root: Path | str | None, plugin: str, setting: str = "work_dir") -> WorkFolder:
    """Create this process's working folder under ``root`` (``default_root(plugin)`` when
    None), after removing the folders of ``plugin`` processes that are gone.

    Raises :class:`WorkFolderError` naming ``setting`` when the folder cannot be created
    or written (missing permissions, a file in the way, a full disk).
    """
    base = Path(root).expanduser() if root else default_root(plugin)
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not root:
            _check_private(base, setting)
        removed = remove_stale(base, plugin)
        name = f"{plugin}.{os.getpid()}.{secrets.token_hex(4)}"
        lock_path = base / f"{name}{_LOCK}"
        starting = base / f".{name}.starting"
        fd = os.open(starting, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            starting.replace(lock_path)
            folder = base / name
            folder.mkdir(mode=0o700)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                starting.unlink()
            with contextlib.suppress(OSError):
                lock_path.unlink()
            raise
    except OSError as error:
        fix = advice(error, f"set {setting} to a writable folder with free space")
        raise WorkFolderError(
            f"{setting} {base} cannot be used for working files: {_reason(error)}; {fix}"
        ) from None
    for path in removed:
        logger.info("Removed the working files of a %s process that is gone: %s", plugin, path)
    work = WorkFolder(folder, lock_path, fd)
    atexit.register(work.cleanup)
    return work


def remove_stale(root: Path, plugin: str) -> list[Path]:
    """Remove the working folders under ``root`` of ``plugin`` processes that are gone
    (their lock file is not locked); return the folders removed."""
    removed = []
    for lock_path in sorted(root.glob(f"{plugin}.*{_LOCK}")):
        if not _is_abandoned(lock_path):
            continue
        folder = lock_path.with_name(lock_path.name.removesuffix(_LOCK))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        with contextlib.suppress(FileNotFoundError):
            lock_path.unlink()
    for starting in root.glob(f".{plugin}.*.starting"):  # killed while starting
        # Locked a moment after it is created: only old ones are certainly abandoned.
        if _age(starting) > _STARTING_GRACE and _is_abandoned(starting):
            with contextlib.suppress(FileNotFoundError):
                starting.unlink()
    return removed


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _is_abandoned(lock_path: Path) -> bool:
    """True if no process holds the lock on ``lock_path`` (its owner is gone)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:  # removed by its owner or another sweep meanwhile
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # its process is alive
        return False
    else:
        return True
    finally:
        os.close(fd)


def _check_private(base: Path, setting: str) -> None:
    """The default root sits in the shared temp folder, where anyone could have created
    it first (or a link by its name): use it only if it is this user's own, private
    folder."""
    info = base.lstat()
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
        if info.st_mode & 0o077:
            base.chmod(0o700)
        return
    raise WorkFolderError(
        f"{base} is not a folder of this user's own (another user or a link created it); "
        f"remove it, or set {setting} to a private folder"
    )


def _reason(error: OSError) -> str:
    """The OS's words without the path (the message names the folder already)."""
    if isinstance(error, FileExistsError | NotADirectoryError):
        return "a file is in the way (it must be a folder)"
    return error.strerror or type(error).__name__
