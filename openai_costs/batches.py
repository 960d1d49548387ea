"""BATCH files of cost records: JSON lines, exact decimals, optionally gzip-compressed.

The fast path for backfills. Both sides use this module, so the tap and the target agree
on the file format without either guessing: the tap writes, the target reads and removes.
The target reads and removes only files the tap wrote (:class:`BatchFile`): a BATCH
message naming anything else (a user's export, a notes file, a FIFO) is refused, and the
file left alone.

The files hold every row, e-mail addresses included, so (in a local storage root):

- they are written readable by their owner only (0600; a root the tap creates is 0700);
- target-pelanor deletes each file once it has read it, or failed to;
- each tap run names its files ``<prefix><stream>-<run id>-<n>.jsonl[.gz]`` and holds a
  shared ``flock`` on ``.<prefix><stream>-<run id>.lock`` for its whole life, and the
  target holds one on it from the run's first file it reads to its own end. Files of a
  run nobody holds any more were never read (the target stopped, or never started): the
  target removes them as it ends, and any tap removes them at its start
  (:func:`remove_stale_batches`), once the lock has been free for ``STALE_SECONDS``
  (the time a target may take to reach a finished tap's first file).

Other storage (s3://, …) is left alone: its files are the loader's to delete.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import itertools
import os
import re
import stat
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar, cast

import msgspec
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig, BatchFileFormat
from upath import UPath

from openai_costs.safe_files import (
    LineTooLong,
    UnsafeFile,
    bounded_lines,
    file_kind,
    open_regular,
)

_ENCODER = msgspec.json.Encoder(decimal_format="number")
_WRITE_SIZE = 1 << 20
_COMPRESSIONS = (None, "none", "gzip")
_PARTIAL = ".partial"
_LOCK = ".lock"
_T = TypeVar("_T")
#: How long a run's lock must have been left alone before its files count as leftovers.
STALE_SECONDS = 600
#: A complete batch file: ``<run>-<n>.jsonl[.gz]``, where the run ends in its 32-hex id.
_COMPLETE = re.compile(r"(?P<run>(?P<named>.+)-[0-9a-f]{32})-[0-9]+\.jsonl(?:\.gz)?")
_RUN_LOCK = re.compile(r"\.(?P<run>.+-[0-9a-f]{32})\.lock")
_PARTIAL_OF_RUN = re.compile(r"(?P<run>.+-[0-9a-f]{32})-[0-9]+\.jsonl(?:\.gz)?\..+\.partial")


def check_encoding(encoding: BaseBatchFileEncoding) -> None:
    if encoding.format != BatchFileFormat.JSONL or encoding.compression not in _COMPRESSIONS:
        msg = (
            "batch_config.encoding must be format jsonl with compression gzip or none, "
            f"not {encoding.format} / {encoding.compression}"
        )
        raise ValueError(msg)


class BatchWriteError(Exception):
    """A batch file could not be written (a full disk, no permission); its partial file
    is gone. The message is the system's reason; ``errno`` the system's number."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def local_root(batch_config: BatchConfig) -> Path | None:
    """The storage root as a local folder; None for other storage."""
    root = UPath(batch_config.storage.root)
    if root.protocol not in ("", "file", "local"):
        return None
    return Path(root.path)


class BatchRun:
    """One tap run's batch files: their common name, their numbering, and the run's lock
    (held shared for the run's life, see the module docstring)."""

    def __init__(self, batch_config: BatchConfig, stream_name: str) -> None:
        self.name = f"{batch_config.storage.prefix or ''}{stream_name}-{uuid.uuid4().hex}"
        self.numbers = itertools.count(1)
        self.root = local_root(batch_config)
        self._lock_fd: int | None = None

    def __enter__(self) -> BatchRun:
        if self.root is not None:
            try:
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self.root / f".{self.name}{_LOCK}", os.O_CREAT | os.O_RDWR, 0o600)
            except OSError as exc:
                raise BatchWriteError(exc.strerror or str(exc), exc.errno) from None
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._lock_fd = fd
        return self

    def __exit__(self, *_: object) -> None:
        """The run is over: its lock is let go, its time noted (the sweep's grace counts
        from here), and removed at once if no file of the run is left to read."""
        if self._lock_fd is None or self.root is None:
            return
        lock = self.root / f".{self.name}{_LOCK}"
        with contextlib.suppress(OSError):
            os.utime(lock)
        os.close(self._lock_fd)
        self._lock_fd = None
        with contextlib.suppress(OSError):
            left = [p for p in self.root.glob(f"{self.name}-*") if _COMPLETE.fullmatch(p.name)]
            if not left:
                _remove_run(self.root, self.name)


def write_batches(
    records: Iterable[dict[str, Any]], batch_config: BatchConfig, run: BatchRun, owner: str
) -> Iterator[list[str]]:
    """Write records to files of at most batch_size lines; yield each file's manifest
    once the file is complete (the caller writes the BATCH message then).

    A file is written under a temporary name, ``<name>.<owner>.partial`` (owner: the
    plugin and process id, as ``tap-openai-costs-1234``), and gets its name only once
    complete: a target never sees a partial file. On any error the partial file is
    deleted; one left by a killed process is removed by :func:`remove_stale_batches`.
    Raises BatchWriteError when the storage fails; errors of ``records`` pass unchanged.
    """
    check_encoding(batch_config.encoding)
    storage = batch_config.storage
    gzipped = batch_config.encoding.compression == "gzip"
    suffix = ".jsonl.gz" if gzipped else ".jsonl"
    iterator = iter(records)
    while True:
        chunk = itertools.islice(iterator, batch_config.batch_size)
        first = next(chunk, None)
        if first is None:
            return
        filename = f"{run.name}-{next(run.numbers)}{suffix}"
        partial_name = f"{filename}.{owner}{_PARTIAL}"
        partial = UPath(storage.get_url(partial_name))
        try:
            with contextlib.ExitStack() as file:
                with _storage_errors():
                    raw = file.enter_context(_open_new(batch_config, run, partial_name))
                _write_file(raw, itertools.chain([first], chunk), gzipped)
                with _storage_errors():
                    file.close()  # the last bytes reach the disk here
            with _storage_errors():
                partial.rename(UPath(storage.get_url(filename)))
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        yield [storage.get_url(filename)]


def _open_new(
    batch_config: BatchConfig, run: BatchRun, name: str
) -> contextlib.AbstractContextManager[IO[bytes]]:
    """A new file, readable by its owner only where the storage is a local folder."""
    if run.root is None:
        return batch_config.storage.open(name, "wb")
    fd = os.open(run.root / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """OSError from writing the storage as BatchWriteError; BatchWriteError passes."""
    try:
        yield
    except OSError as exc:
        raise BatchWriteError(exc.strerror or str(exc), exc.errno) from None


def _write_file(raw: IO[bytes], records: Iterable[dict[str, Any]], gzipped: bool) -> None:
    """Write the records; only the writes are the storage's errors, not reading records."""
    out: gzip.GzipFile | IO[bytes] = (
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) if gzipped else raw
    )
    buffer = bytearray()
    for record in records:
        _ENCODER.encode_into(record, buffer, -1)
        buffer += b"\n"
        if len(buffer) >= _WRITE_SIZE:
            with _storage_errors():
                out.write(buffer)
            buffer.clear()
    with _storage_errors():
        out.write(buffer)
        if gzipped:
            out.close()


def remove_stale_batches(
    batch_config: BatchConfig, plugin: str, now: float | None = None
) -> list[str]:
    """Delete, in a local storage root, what runs that are over left behind; return the
    names removed:

    - partial files of ``plugin`` processes that are gone (a killed tap's);
    - the files of runs whose lock nobody has held for :data:`STALE_SECONDS` (their tap
      and target are gone: never read), with the lock;
    - complete files without a lock, as old (left by versions that kept none).

    Files of a run someone holds are never touched. Other storage is left alone, as a
    process id or a lock means nothing on another machine."""
    root = local_root(batch_config)
    if root is None or not root.is_dir():
        return []
    removed: list[str] = []
    with contextlib.suppress(OSError):  # a folder it cannot list: nothing to clean there
        _sweep(root, plugin, time.time() if now is None else now, removed)
    return removed


def _sweep(root: Path, plugin: str, now: float, removed: list[str]) -> None:
    """:func:`remove_stale_batches` in a folder; names removed are added to ``removed``."""
    owner = re.compile(rf".*\.{re.escape(plugin)}-([0-9]+){re.escape(_PARTIAL)}")
    for path in sorted(root.iterdir()):
        match = owner.fullmatch(path.name)
        alive = match and int(match[1]) != os.getpid() and process_alive(int(match[1]))
        if match and not alive and _unlink(path):
            removed.append(path.name)
    for lock in sorted(root.glob(f".*{_LOCK}")):
        run = _RUN_LOCK.fullmatch(lock.name)
        if run and _age(lock, now) >= STALE_SECONDS:
            removed += _remove_run(root, run["run"])
    for path in sorted(root.iterdir()):
        match = _COMPLETE.fullmatch(path.name)
        unlocked = match is not None and not (root / f".{match['run']}{_LOCK}").exists()
        if unlocked and _age(path, now) >= STALE_SECONDS and _unlink(path):
            removed.append(path.name)


def _unlink(path: Path) -> bool:
    """Remove a leftover; False if it could not be (gone already, a folder in its place,
    no permission): cleaning up never stops a run."""
    try:
        path.unlink()
    except OSError:
        return False
    return True


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0


def _remove_run(root: Path, run: str) -> list[str]:
    """Remove a run's files and its lock if nobody holds the lock; return the files'
    names. The lock is held exclusively while files go, so a reader cannot start."""
    lock = root / f".{run}{_LOCK}"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:  # gone already, or not ours to open
        return []
    removed = []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return []  # a tap or a target of the run is alive
        for path in sorted(root.glob(f"{glob_escape(run)}-*")):
            ours = _COMPLETE.fullmatch(path.name) or _PARTIAL_OF_RUN.fullmatch(path.name)
            if ours and _unlink(path):
                removed.append(path.name)
        _unlink(lock)
    finally:
        os.close(fd)
    return removed


def glob_escape(text: str) -> str:
    """``text`` matched literally by a glob pattern."""
    return re.sub(r"([*?[])", r"[\1]", text)


class BatchReaders:
    """The target's hold on the runs whose files it reads (see the module docstring):
    taken at a run's first file, let go at :meth:`finish`, which then removes what the
    run left unread if its tap is gone."""

    def __init__(self) -> None:
        self._held: dict[tuple[Path, str], int] = {}

    def reading(self, url: str) -> None:
        """About to read the batch file at ``url``: hold its run."""
        path = UPath(url)
        match = _COMPLETE.fullmatch(path.name)
        if path.protocol not in ("", "file", "local") or match is None:
            return
        key = (Path(path.path).parent, match["run"])
        if key in self._held:
            return
        try:
            fd = os.open(key[0] / f".{key[1]}{_LOCK}", os.O_RDONLY)
        except OSError:
            return  # an older tap, or the run's files were removed: nothing to hold
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return
        self._held[key] = fd

    def finish(self) -> list[str]:
        """Let go of every run; remove the files the target did not read of runs whose
        tap is gone (return their names)."""
        removed = []
        for (root, run), fd in sorted(self._held.items()):
            os.close(fd)
            removed += _remove_run(root, run)
        self._held.clear()
        return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class BatchFileError(Exception):
    """A batch file of the tap's whose lines are not the records expected (a bad line, a
    line past :data:`MAX_LINE_BYTES`, a cut gzip stream); the file is deleted."""


class BatchFileRefused(Exception):
    """A file a BATCH message names that is not one the tap wrote: not read, not deleted.
    The message is the whole line for the user."""


#: The longest line a batch file may hold. A costs record is its CSV row (an export row
#: is at most :data:`openai_costs.export.MAX_LINE_BYTES`) and its values, JSON-escaped.
MAX_LINE_BYTES = 16 << 20
#: What a refusal says the target reads.
_WHAT_IS_READ = (
    "target-pelanor reads and deletes only the batch files tap-openai-costs writes (named "
    "<prefix><stream>-<run id>-<n>.jsonl[.gz], a regular file of this user readable by its "
    "owner only, beside its run's lock .<prefix><stream>-<run id>.lock)"
)


class BatchFile:
    """One file a BATCH message names, checked to be one the tap wrote before it is opened:

    - its name has the shape the tap gives its files, for the message's stream and the
      encoding's compression: ``<prefix><stream>-<run id>-<n>.jsonl[.gz]``;
    - in a local storage root: it is a regular file (not a link, a FIFO, a folder) owned
      by this user and readable by its owner only, as the tap writes them, and its run's
      lock, which only the tap creates, is beside it: the folder holding the lock is the
      storage root the tap wrote into (the target has no setting of its own for it).

    Anything else is refused (:class:`BatchFileRefused`) and left alone. Files elsewhere
    (``s3://``…) cannot be checked beyond their name: they are read, never deleted.
    """

    def __init__(self, encoding: BaseBatchFileEncoding, url: str, stream: str) -> None:
        check_encoding(encoding)
        self.encoding = encoding
        self.url = url
        self.path = UPath(url)
        self.local = self.path.protocol in ("", "file", "local")
        suffix = ".jsonl.gz" if encoding.compression == "gzip" else ".jsonl"
        match = _COMPLETE.fullmatch(self.path.name)
        if match is None or not self.path.name.endswith(suffix):
            self._refuse(f"is not named as tap-openai-costs names a {suffix} batch file")
        if not match["named"].endswith(stream):  # <prefix><stream>
            self._refuse(f"is not a batch file of the stream {stream!r}")
        self._identity: tuple[int, int] | None = None
        if self.local:
            self._check_local(Path(self.path.path), match["run"])

    def _check_local(self, path: Path, run: str) -> None:
        info = path.lstat()  # FileNotFoundError: the caller says the file is gone
        if kind := file_kind(info.st_mode):
            self._refuse(f"is {kind}, not a regular file")
        if info.st_uid != os.geteuid():
            self._refuse("belongs to another user")
        if stat.S_IMODE(info.st_mode) & 0o077:
            self._refuse("is readable by other users than its owner")
        try:
            lock = (path.parent / f".{run}{_LOCK}").lstat()
        except OSError:
            lock = None
        if lock is None or not stat.S_ISREG(lock.st_mode) or lock.st_uid != os.geteuid():
            self._refuse(f"has no lock of its run beside it (.{run}{_LOCK})")
        self._identity = (info.st_dev, info.st_ino)

    def _refuse(self, problem: str) -> NoReturn:
        raise BatchFileRefused(
            f"batch file {self.url} {problem}; it was left alone: {_WHAT_IS_READ}"
        )

    def records(self, record_type: type[_T]) -> Iterator[_T]:
        """Yield the file's records as ``record_type``, one at a time, then delete the
        file: it exists only to carry records from the tap to the target. A file whose
        reading failed or stopped (a bad line, the run stopping) is deleted too: a month is
        only ever sent again as a new version, in new files.

        A ``msgspec.Struct`` type reads and type-checks only the fields it names and skips
        the rest unparsed, which is most of the cost of a line. No line is held past
        :data:`MAX_LINE_BYTES`, however far a compressed file inflates.
        """
        decoder = msgspec.json.Decoder(record_type, float_hook=Decimal)
        opened = False
        try:
            with self._open() as raw:
                opened = True
                lines: gzip.GzipFile | IO[bytes] = (
                    gzip.GzipFile(fileobj=raw, mode="rb")
                    if self.encoding.compression == "gzip"
                    else raw
                )
                with _unreadable_gzip(self.url):
                    for number, line in enumerate(bounded_lines(lines, MAX_LINE_BYTES), 1):
                        try:
                            record = decoder.decode(line)
                        except msgspec.MsgspecError as error:
                            if len(line) > MAX_LINE_BYTES:  # cut at the bound
                                too_long = LineTooLong(number, MAX_LINE_BYTES)
                                raise BatchFileError(f"batch file {self.url}, {too_long}") from None
                            raise BatchFileError(
                                f"batch file {self.url}, line {number}: {error}"
                            ) from None
                        yield record
        finally:
            if opened:
                self._delete()

    def _open(self) -> IO[bytes]:
        if not self.local:
            return cast("IO[bytes]", self.path.open("rb"))
        try:
            raw = open_regular(self.path.path, follow_links=False)
        except UnsafeFile as problem:
            self._refuse(str(problem))
        opened = os.fstat(raw.fileno())
        if (opened.st_dev, opened.st_ino) != self._identity:
            raw.close()
            self._refuse("was replaced while it was being opened")
        return raw

    def _delete(self) -> None:
        """Delete the file read, if it is still the one checked; files elsewhere stay."""
        if not self.local:
            return
        path = Path(self.path.path)
        with contextlib.suppress(OSError):
            info = path.lstat()
            if (info.st_dev, info.st_ino) == self._identity:
                path.unlink()


@contextlib.contextmanager
def _unreadable_gzip(url: str) -> Iterator[None]:
    """A cut or corrupt gzip stream as one BatchFileError."""
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        problem = str(error) or type(error).__name__
        raise BatchFileError(f"batch file {url} is not a whole gzip file ({problem})") from None


def read_batch(
    encoding: BaseBatchFileEncoding, url: str, record_type: type[_T], stream: str
) -> Iterator[_T]:
    """The records of the batch file at ``url`` of ``stream`` (:class:`BatchFile`): raises
    :class:`BatchFileRefused` at once for a file the tap did not write."""
    return BatchFile(encoding, url, stream).records(record_type)
