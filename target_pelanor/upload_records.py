"""This machine's record of the last upload of each month, per destination.

The state's record (:class:`target_pelanor.shrink_guard.UploadMemory`) goes when the state
goes (``meltano state clear``, a new state ID, another pipeline of the same
organization). This copy stays: one file per Pelanor, integration and month,

    <upload_records_dir>/<host>/<integration_id>/<YYYY-MM>.json

in a per-user folder that outlives reboots and temp-folder cleanups (default
``$XDG_STATE_HOME/target-pelanor/uploads``, else ``~/.local/state/target-pelanor/uploads``).
Keyed by destination (:mod:`target_pelanor.destination`), a sandbox upload never blocks a
production one, and however the URL is spelt one Pelanor has one folder; ``<host>`` is the
Pelanor's host as one path component (``api.pelanor.io`` for the US region,
``localhost%3A8765`` for a local sandbox). Each record says where and when the month went,
so a refusal can name it; deleting the file forgets it, on purpose.

Earlier versions named the folder after the whole base URL (``api.pelanor.io%2Fv1``,
``http%3A%2F%2F127.0.0.1%3A8765``): while a month has no record in its host's folder, the
records of every such folder that reaches the same host guard it.

Records are read (a regular file of at most :data:`MAX_RECORD_BYTES`, never waiting on a
FIFO: :mod:`openai_costs.safe_files`) and written under the month's upload lock
(:mod:`target_pelanor.upload_lock`), replaced in one rename, readable by the owner only.
A record that cannot be read fails the month closed (:class:`UnreadableRecord`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from openai_costs.safe_files import UnsafeFile, read_regular
from target_pelanor.destination import Destination, pelanor_host
from target_pelanor.shrink_guard import Remembered, UnreadableRecord, Uploaded, read_record

__all__ = ["MachineRecords", "default_records_dir", "normalised_endpoint", "records_dir"]

_DEFAULT_PORTS = {"https": 443, "http": 80}
#: A record is a few hundred bytes: a larger file is not one, and is not read into memory.
MAX_RECORD_BYTES = 1 << 20


def default_records_dir() -> Path:
    """``$XDG_STATE_HOME/target-pelanor/uploads`` (when set to an absolute path), else
    ``~/.local/state/target-pelanor/uploads``, as the XDG base directory spec says."""
    state_home = Path(os.environ.get("XDG_STATE_HOME", ""))
    base = state_home if state_home.is_absolute() else Path.home() / ".local" / "state"
    return base / "target-pelanor" / "uploads"


def records_dir(setting: str | None) -> Path:
    """The ``upload_records_dir`` folder, ``~`` expanded; the default when unset. Raises
    RuntimeError when unset and there is no home folder to put it in."""
    return Path(setting).expanduser() if setting else default_records_dir()


def normalised_endpoint(base_url: str) -> str:
    """One spelling per Pelanor: scheme and host in lower case, no default port, no
    trailing slash (``HTTPS://API.pelanor.io:443/`` is ``https://api.pelanor.io``)."""
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _record_path(folder: Path, integration_id: str, month: str) -> Path:
    return folder / quote(integration_id, safe="") / f"{quote(month, safe='')}.json"


class MachineRecords:
    """The records of one Pelanor (its base URL, ``endpoint``) under ``root``."""

    def __init__(self, root: Path, endpoint: str) -> None:
        self.root = root
        self.endpoint = normalised_endpoint(endpoint)
        host = pelanor_host(self.endpoint)
        if host is None:
            raise ValueError(f"{endpoint} names no host")
        self.host = host
        self.folder = root / quote(host, safe="")

    def path(self, integration_id: str, month: str) -> Path:
        """The record's file (quoted: no identifier makes a path outside the folder)."""
        return _record_path(self.folder, integration_id, month)

    def recall(self, integration_id: str, month: str) -> list[Remembered]:
        """The last upload of this month to this destination from this machine: its
        record, or while there is none, those earlier versions kept (see the module
        docstring); none if there is none. Raises :class:`UnreadableRecord` (the month's
        one line) when a record cannot be read."""
        current = self._read(self.path(integration_id, month), integration_id, month)
        if current is not None:
            return [current]
        paths = self._earlier(integration_id, month)
        earlier = (self._read(path, integration_id, month) for path in paths)
        return [remembered for remembered in earlier if remembered is not None]

    def _earlier(self, integration_id: str, month: str) -> list[Path]:
        """Where earlier versions kept the month's record: in each folder named after a
        base URL that reaches this host."""
        try:
            folders = sorted(self.root.iterdir())
        except FileNotFoundError:
            return []
        except OSError as error:
            raise UnreadableRecord(
                f"this machine's upload records in {self.root} cannot be read "
                f"({error.strerror or type(error).__name__}); make the folder readable, or "
                f"list {month} in allow_shrinking_months to upload it anyway"
            ) from None
        paths = []
        for folder in folders:
            named = unquote(folder.name)
            base_url = named if "://" in named else f"https://{named}"
            if folder != self.folder and pelanor_host(base_url) == self.host:
                paths.append(_record_path(folder, integration_id, month))
        return paths

    def _read(self, path: Path, integration_id: str, month: str) -> Remembered | None:
        where = f"this machine's file {path}"
        fix = (
            f"delete that file to forget it, or list {month} in allow_shrinking_months to "
            "upload it anyway"
        )
        try:
            text = read_regular(path, MAX_RECORD_BYTES).decode("utf-8")
        except FileNotFoundError:
            return None
        except UnsafeFile as problem:  # a FIFO would hang the run, 1 GB would fill memory
            raise UnreadableRecord(f"{where} cannot be read (it {problem}); {fix}") from None
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise UnreadableRecord(f"{where} cannot be read ({reason}); {fix}") from None
        try:
            remembered = read_record(json.loads(text), where)
        except ValueError:
            raise UnreadableRecord(f"{where} cannot be read (it is not JSON); {fix}") from None
        except UnreadableRecord as problem:
            raise UnreadableRecord(f"{where} cannot be read ({problem}); {fix}") from None
        destination = Destination(self.host, integration_id)
        if not remembered.speaks_of(destination):
            raise UnreadableRecord(
                f"{where} cannot be read (it is the record of "
                f"{remembered.destination or remembered.endpoint}, not {destination.text}); "
                f"{fix}"
            )
        return remembered

    def record(self, integration_id: str, month: str, uploaded: Uploaded, at: datetime) -> Path:
        """Pelanor accepted ``uploaded``: replace the month's record in one rename."""
        path = self.path(integration_id, month)
        destination = Destination(self.host, integration_id).text
        remembered = Remembered(uploaded, "", self.endpoint, at, destination)
        content = {"integration_id": integration_id, "month": month} | remembered.to_state()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(content, handle, indent=1)
                handle.write("\n")
            Path(partial).replace(path)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(partial).unlink()
            raise
        return path
