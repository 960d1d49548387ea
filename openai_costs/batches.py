"""BATCH files of cost records: JSON lines, exact decimals, optionally gzip-compressed.

The fast path for backfills. Both sides use this module, so the tap and the target agree
on the file format without either guessing: the tap writes, the target reads and removes.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import IO, Any, TypeVar

import msgspec
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig, BatchFileFormat
from upath import UPath

_ENCODER = msgspec.json.Encoder(decimal_format="number")
_WRITE_SIZE = 1 << 20
_COMPRESSIONS = (None, "none", "gzip")
_PARTIAL = ".partial"
_T = TypeVar("_T")


def check_encoding(encoding: BaseBatchFileEncoding) -> None:
    if encoding.format != BatchFileFormat.JSONL or encoding.compression not in _COMPRESSIONS:
        msg = (
            "batch_config.encoding must be format jsonl with compression gzip or none, "
            f"not {encoding.format} / {encoding.compression}"
        )
        raise ValueError(msg)


class BatchWriteError(Exception):
    """A batch file could not be written (a full disk, no permission); its partial file
    is gone. The message is the system's reason."""


def write_batches(
    records: Iterable[dict[str, Any]], batch_config: BatchConfig, stream_name: str, owner: str
) -> Iterator[list[str]]:
    """Write records to files of at most batch_size lines; yield each file's manifest
    once the file is complete (the caller writes the BATCH message then).

    A file is written under a temporary name, ``<name>.<owner>.partial`` (owner: the
    plugin and process id, as ``tap-openai-costs-1234``), and gets its name only once
    complete: a target never sees a partial file. On any error the partial file is
    deleted; one left by a killed process is removed by :func:`remove_stale_partials`.
    Raises BatchWriteError when the storage fails; errors of ``records`` pass unchanged.
    """
    check_encoding(batch_config.encoding)
    storage = batch_config.storage
    gzipped = batch_config.encoding.compression == "gzip"
    suffix = ".jsonl.gz" if gzipped else ".jsonl"
    run = f"{storage.prefix or ''}{stream_name}-{uuid.uuid4().hex}"
    iterator = iter(records)
    for number in itertools.count(1):
        chunk = itertools.islice(iterator, batch_config.batch_size)
        first = next(chunk, None)
        if first is None:
            return
        filename = f"{run}-{number}{suffix}"
        partial_name = f"{filename}.{owner}{_PARTIAL}"
        partial = UPath(storage.get_url(partial_name))
        try:
            with contextlib.ExitStack() as file:
                with _storage_errors():
                    raw = file.enter_context(storage.open(partial_name, "wb"))
                _write_file(raw, itertools.chain([first], chunk), gzipped)
                with _storage_errors():
                    file.close()  # the last bytes reach the disk here
            with _storage_errors():
                partial.rename(UPath(storage.get_url(filename)))
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        yield [storage.get_url(filename)]


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """OSError from writing the storage as BatchWriteError; BatchWriteError passes."""
    try:
        yield
    except OSError as exc:
        raise BatchWriteError(exc.strerror or str(exc)) from None


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


def remove_stale_partials(batch_config: BatchConfig, plugin: str) -> list[str]:
    """Delete the partial batch files ``plugin`` processes that are gone left in a local
    storage root (a killed tap's); return their names. Whole files are never touched:
    they belong to the target that reads them. Other storage is left alone, as a process
    id means nothing on another machine."""
    root = UPath(batch_config.storage.root)
    if root.protocol not in ("", "file", "local") or not root.is_dir():
        return []
    name = re.compile(rf".*\.{re.escape(plugin)}-([0-9]+){re.escape(_PARTIAL)}")
    removed = []
    for path in root.iterdir():
        match = name.fullmatch(path.name)
        if match and (int(match[1]) == os.getpid() or not process_alive(int(match[1]))):
            path.unlink(missing_ok=True)
            removed.append(path.name)
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
    """A batch file whose lines are not the records expected."""


def read_batch(encoding: BaseBatchFileEncoding, url: str, record_type: type[_T]) -> Iterator[_T]:
    """Yield the records of one batch file as ``record_type``, one at a time, then delete
    the file: it exists only to carry records from the tap to the target.

    A ``msgspec.Struct`` type reads and type-checks only the fields it names and skips the
    rest unparsed, which is most of the cost of a line.
    """
    check_encoding(encoding)
    decoder = msgspec.json.Decoder(record_type, float_hook=Decimal)
    path = UPath(url)
    with path.open("rb") as raw:
        lines: gzip.GzipFile | IO[bytes] = (
            gzip.GzipFile(fileobj=raw, mode="rb") if encoding.compression == "gzip" else raw
        )
        for number, line in enumerate(lines, start=1):
            try:
                record = decoder.decode(line)
            except msgspec.MsgspecError as error:
                raise BatchFileError(f"batch file {url}, line {number}: {error}") from None
            yield record
    path.unlink()
