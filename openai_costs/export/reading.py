"""Reading cost exports: line by line, each row's exact source text kept, validated as it
passes, and indexed by day so a merge can re-read one day without holding a file."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import msgspec

from openai_costs.export.digest import rows_digest_update
from openai_costs.export.errors import ExportError
from openai_costs.export.layout import BOM, Layout, check_columns
from openai_costs.export.rules import RowChecker
from openai_costs.safe_files import open_regular, size_text

_T = TypeVar("_T")

#: The longest line an export may have: a real row is a few hundred bytes; a longer line is
#: not an export's, and is never held whole.
MAX_LINE_BYTES = 1 << 20
#: How often :func:`scan_rows` reports progress: every 4,096 rows (a power of two).
ROWS_BETWEEN_REPORTS = 1 << 12
_REPORT_MASK = ROWS_BETWEEN_REPORTS - 1


class Row(NamedTuple):
    """One data row of a known day: its exact source text (no terminator) and its fields.

    ``dropped`` holds the values of the source's columns that ``columns`` lacks, when the
    row was put into a narrower layout on purpose (a Costs API month written in the
    nine-column layout): the text is the upload's, the values are still known.
    """

    day: date
    text: str
    fields: list[str]
    columns: tuple[str, ...]
    dropped: dict[str, str] | None = None

    @property
    def values(self) -> dict[str, str]:
        return dict(zip(self.columns, self.fields, strict=True))


#: Builds a Row from a tuple of all five fields in C: a scan builds one for every row, and
#: a NamedTuple's own constructor runs Python code.
_row = functools.partial(tuple.__new__, Row)


@dataclass
class DaySlice:
    """Where one UTC day's rows sit in a file, so a merge can read just that day."""

    day: date
    start: int
    end: int = 0
    rows: int = 0
    #: sha256 of the day's rows (:func:`rows_digest_update`), set once the day is read.
    hexdigest: str = ""


@dataclass
class ExportScan:
    """What a full validation pass learnt about one file.

    ``size`` and ``mtime_ns`` are the file's as it was opened, ``sha256`` the digest of the
    bytes validated: together they tell a later run whether the file is still the same.
    """

    path: str
    layout: Layout
    size: int
    mtime_ns: int
    sha256: str
    days: list[DaySlice] = field(default_factory=list)

    @property
    def last_day(self) -> date | None:
        return self.days[-1].day if self.days else None


class _HashedFile(io.RawIOBase):
    """A file read from start to end and hashed as it is read, each byte once.

    Hashing the buffer fills rather than each line keeps the content digest almost free;
    a seek back (over the header) is not hashed twice.
    """

    def __init__(self, file: io.FileIO) -> None:
        super().__init__()
        self._file = file
        self.sha256 = hashlib.sha256()
        self._position = 0
        self._hashed = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._file.fileno()

    def readinto(self, buffer: Any) -> int:
        read = self._file.readinto(buffer) or 0
        end = self._position + read
        if end > self._hashed:
            if self._position > self._hashed:  # never: a scan reads every byte in order
                msg = "bytes were skipped, so the file's digest would be wrong"
                raise ValueError(msg)
            with memoryview(buffer) as view:
                self.sha256.update(view[self._hashed - self._position : read])
            self._hashed = end
        self._position = end
        return read

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._position = self._file.seek(offset, whence)
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        self._file.close()
        super().close()


def file_sha256(path: Path) -> str:
    """The digest of a file's bytes, as a scan records it: tells an unchanged file from a
    changed one without parsing it."""
    digest = hashlib.sha256()
    with open_regular(path) as stream:
        while chunk := stream.read(1 << 20):  # hashlib.file_digest needs Python 3.11
            digest.update(chunk)
    return digest.hexdigest()


class _LineReader:
    """Feeds ``csv.reader`` one physical line at a time and remembers the raw text.

    ``csv.reader`` pulls exactly the lines one record needs, so the lines fed since the
    previous record are that record's source text, quoted newlines included.
    """

    def __init__(
        self, path: str, stream: io.BufferedReader[Any], offset: int, end: int | None = None
    ) -> None:
        self.path = path
        self.stream = stream
        self.offset = offset
        self.end = end
        self.line = 0
        self.pending: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.end is not None and self.offset >= self.end:
            raise StopIteration
        raw = self.stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise StopIteration
        self.line += 1
        if len(raw) > MAX_LINE_BYTES:
            raise ExportError(
                self.path,
                f"has a line longer than {size_text(MAX_LINE_BYTES)}; it is not the CSV OpenAI "
                "exports: download the Cost data export again as CSV",
                row=self.line,
            )
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ExportError(
                self.path,
                f"is not UTF-8 text (byte 0x{raw[exc.start]:02x}); it is not the CSV OpenAI "
                "exports: download the Cost data export again as CSV",
                row=self.line,
            ) from None
        self.offset += len(raw)
        self.pending.append(line)
        return line

    def at_end(self) -> bool:
        """Whether the last line read was the last one there is."""
        if self.end is not None and self.offset >= self.end:
            return True
        return not self.stream.peek(1)

    def take(self) -> tuple[str, str]:
        """The record just parsed: its text, and the line ending after it (if any)."""
        pending = self.pending
        text = pending[0] if len(pending) == 1 else "".join(pending)
        pending.clear()
        if text.endswith("\r\n"):
            return text[:-2], "\r\n"
        if text.endswith("\n"):
            return text[:-1], "\n"
        return text, ""


def _records(lines: _LineReader) -> Iterator[tuple[list[str], str, str, int]]:
    """Yield (fields, text without terminator, terminator, end offset) for each record."""
    reader = csv.reader(lines, strict=True)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                problem = (
                    "ends inside a quoted value: the file is truncated; download the export again"
                )
            else:
                problem = f"is not valid CSV ({exc}); download the Cost data export again as CSV"
            raise ExportError(lines.path, problem, row=lines.line) from None
        text, terminator = lines.take()
        yield fields, text, terminator, lines.offset


def read_layout(path: str, stream: io.BufferedReader[Any]) -> tuple[Layout, _LineReader]:
    """Read and check the header; return the layout and the reader, at the first row."""
    head = stream.read(3)
    bom = head == BOM.encode("utf-8")
    if not bom:
        stream.seek(0)
    lines = _LineReader(path, stream, stream.tell())
    record = next(_records(lines), None)
    if record is None or not any(record[0]):
        raise ExportError(path, "is empty; export the Cost data again from the OpenAI dashboard")
    columns, header, terminator, _ = record
    check_columns(path, columns)
    layout = Layout(tuple(columns), header, terminator or "\n", bom, bool(terminator))
    return layout, lines


def peek_layout(path: Path) -> Layout:
    """The layout a scan of the file will report, from its header and its last byte.

    Lets a month's rows be passed on while the file is still being scanned; only a scan
    that finishes confirms it.
    """
    with cast("io.BufferedReader[Any]", open_regular(path)) as stream:
        layout, _ = read_layout(str(path), stream)
        stream.seek(-1, os.SEEK_END)
        return msgspec.structs.replace(layout, final_newline=stream.read(1) == b"\n")


def scan_export(path: Path, organization_id: str | None, today: date) -> ExportScan:
    """Validate a whole file and index it by day, without keeping its rows in memory."""
    return run_to_end(scan_rows(path, organization_id, today))


def scan_rows(
    path: Path,
    organization_id: str | None,
    today: date,
    on_rows: Callable[[int, int, int], None] | None = None,
) -> Generator[Row, None, ExportScan]:
    """Validate a file row by row, yielding each row as it passes; return the file's index.
    ``today`` is the run's current UTC date (:class:`RowChecker`); ``on_rows``, if given,
    is told every :data:`ROWS_BETWEEN_REPORTS` rows how far along the scan is: rows read,
    bytes read, and the size of the file it opened.

    A day's repeat check runs when the next day starts, so a row is only known good once
    the generator has returned: a consumer may pass rows on, but must not vouch for them
    (seal a month) before that.
    """
    name = str(path)
    hashed = _HashedFile(cast("io.FileIO", open_regular(path, buffering=0)))
    with io.BufferedReader(hashed, buffer_size=1 << 16) as stream:
        opened = os.fstat(stream.fileno())
        layout, lines = read_layout(name, stream)
        checker = RowChecker(name, layout, organization_id, today)
        check, width, columns = checker.check, checker.width, layout.columns
        days: list[DaySlice] = []
        current = DaySlice(date.min, start=0)  # no day yet
        digest = hashlib.sha256()
        offset = lines.offset
        number = 1  # the header is row 1, as a spreadsheet shows it
        terminator = layout.line_terminator if layout.final_newline else ""
        for fields, text, terminator, end in _records(lines):
            number += 1
            # Being the last row only changes the verdict on a short row or a missing line
            # ending, so it is looked up only for those.
            is_last = (not terminator or len(fields) != width) and lines.at_end()
            day = check(number, fields, terminator, is_last)
            if day != current.day:
                current.hexdigest = digest.hexdigest()
                current, digest = DaySlice(day, start=offset), hashlib.sha256()
                days.append(current)
            current.rows += 1
            rows_digest_update(digest, text)
            current.end = offset = end
            if number & _REPORT_MASK == 1 and on_rows is not None:
                on_rows(number - 1, end, opened.st_size)
            yield _row((day, text, fields, columns, None))
        current.hexdigest = digest.hexdigest()
        checker.finish_day()
    layout = msgspec.structs.replace(layout, final_newline=bool(terminator))
    return ExportScan(
        name, layout, opened.st_size, opened.st_mtime_ns, hashed.sha256.hexdigest(), days
    )


def run_to_end(generator: Generator[Any, None, _T]) -> _T:
    """Run a generator to its end for the value it returns."""
    while True:
        try:
            next(generator)
        except StopIteration as done:
            return cast("_T", done.value)


def read_rows(scan: ExportScan, day: DaySlice) -> Iterator[Row]:
    """Re-read one day's rows of a scanned (so already validated) file, line by line.

    Raises ExportError after the day's last row if the rows differ from the ones the scan
    validated (the file changed in between): the month then never gets its seal.
    """
    digest = hashlib.sha256()
    with cast("io.BufferedReader[Any]", open_regular(scan.path)) as stream:
        stream.seek(day.start)
        for fields, text, _, _ in _records(_LineReader(scan.path, stream, day.start, day.end)):
            rows_digest_update(digest, text)
            yield Row(day.day, text, fields, scan.layout.columns)
    if digest.hexdigest() != day.hexdigest:
        raise ExportError(
            scan.path, f"changed while it was being read (rows of {day.day}); run the tap again"
        )


class RowParser:
    """Splits one row's CSV text into fields (a quoted value may hold a line break).

    One ``csv.reader`` fed a row at a time: building a reader per row costs more than the
    parsing itself.
    """

    def __init__(self) -> None:
        self._next: str | None = None
        self._reader = csv.reader(self, strict=True)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        text, self._next = self._next, None
        if text is None:
            raise StopIteration
        return text

    def parse(self, text: str) -> list[str]:
        """Raises csv.Error for text that is not one whole CSV record."""
        self._next = text
        return next(self._reader, [])
