"""Everything this product knows about OpenAI's cost export CSV, in one place.

Pelanor accepts a month only as the file OpenAI's dashboard exports, unmodified. So the
header is treated as data (order kept, unknown columns carried), every row keeps its exact
source text, and the few facts about the file as a whole (BOM, line terminator, whether
the last line ends with one) travel in a :class:`Layout`. The tap scans and parses with
this module; the target writes and checks the upload file with it, row by row.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import operator
import os
import re
from array import array
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TypeVar, cast

UTC = timezone.utc  # datetime.UTC needs Python 3.11
BOM = "\ufeff"
_T = TypeVar("_T")
DAY_SECONDS = 86_400

#: Columns Pelanor requires (its OpenAI integration documentation).
REQUIRED_COLUMNS = (
    "start_time",
    "end_time",
    "amount_value",
    "amount_currency",
    "line_item",
    "project_id",
    "organization_id",
    "project_name",
    "organization_name",
)
TIME_COLUMNS = ("start_time", "end_time", "start_time_iso", "end_time_iso")
#: The ISO copies of the Unix times: absent from some real exports (the nine-column layout).
ISO_COLUMNS = {"start_time_iso": "start_time", "end_time_iso": "end_time"}
#: Columns that measure rather than identify a cost: left out of the duplicate-row key.
MEASURE_COLUMNS = frozenset({"amount_value", "quantity"})
#: The current export layout (seen 2026-09); the API source writes rows in it.
CURRENT_COLUMNS = (
    "start_time",
    "end_time",
    "start_time_iso",
    "end_time_iso",
    "amount_value",
    "amount_currency",
    "quantity",
    "quantity_unit",
    "line_item",
    "user_id",
    "api_key_id",
    "project_id",
    "organization_id",
    "project_name",
    "organization_name",
    "user_email",
    "api_source",
)

_INTEGER = re.compile(r"-?[0-9]+")
#: An amount as exports and the Costs API write it: fixed digits (``0.8958740000000000``)
#: or a float's shortest repr, which uses exponents for small values (``5.5e-05``,
#: ``1.2345E-05``). Never ``nan``/``inf``, separators or symbols. Kept as text, read as
#: Decimal: exact either way.
AMOUNT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class ExportError(Exception):
    """A problem with one input file, worded for the person who exported it."""

    def __init__(self, path: str, message: str, row: int | None = None) -> None:
        self.path = path
        self.row = row
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}: row {self.row}" if self.row is not None else self.path
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Layout:
    """The file-level facts needed to write an export back byte for byte."""

    columns: tuple[str, ...]
    header: str
    line_terminator: str = "\n"
    bom: bool = False
    final_newline: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "header": self.header,
            "line_terminator": self.line_terminator,
            "bom": self.bom,
            "final_newline": self.final_newline,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        return cls(
            columns=tuple(data["columns"]),
            header=data["header"],
            line_terminator=data["line_terminator"],
            bom=bool(data["bom"]),
            final_newline=bool(data["final_newline"]),
        )

    def render(self, values: dict[str, str]) -> str:
        """Write a row of another layout in this one, quoting as OpenAI does (when needed)."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(
            [values.get(column, "") for column in self.columns]
        )
        return buffer.getvalue()


class Row(NamedTuple):
    """One data row of a known day: its exact source text (no terminator) and its fields."""

    day: date
    text: str
    fields: list[str]
    columns: tuple[str, ...]

    @property
    def values(self) -> dict[str, str]:
        return dict(zip(self.columns, self.fields, strict=True))


@dataclass
class DaySlice:
    """Where one UTC day's rows sit in a file, so a merge can read just that day."""

    day: date
    start: int
    end: int = 0
    rows: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    @property
    def hexdigest(self) -> str:
        return str(self.digest.hexdigest())


@dataclass
class ExportScan:
    """What a full validation pass learnt about one file."""

    path: str
    layout: Layout
    mtime: float
    days: list[DaySlice] = field(default_factory=list)

    @property
    def last_day(self) -> date | None:
        return self.days[-1].day if self.days else None


def day_of(unix_seconds: int) -> date:
    return datetime.fromtimestamp(unix_seconds, UTC).date()


def unix_of(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def iso_of(unix_seconds: int) -> str:
    """ISO time as OpenAI writes it: ``2025-10-05T00:00:00+00:00``."""
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat()


@functools.cache  # called for every row while a file is read: few distinct days
def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_days(month: str) -> list[date]:
    first = date.fromisoformat(f"{month}-01")
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return [first + timedelta(days=n) for n in range((following - first).days)]


def today_utc() -> date:
    """The current UTC date; a month is complete only up to the last full day before it."""
    return datetime.now(UTC).date()


def full_days(month: str, today: date | None = None) -> list[date]:
    """The days of the month that are over: all of a past month, those before today of
    the current one (today's costs are still growing)."""
    today = today or today_utc()
    return [day for day in month_days(month) if day < today]


def missing_days(month: str, present: Iterable[date], today: date | None = None) -> list[date]:
    """Days a complete month needs but lacks."""
    have = set(present)
    return [day for day in full_days(month, today) if day not in have]


def describe_days(days: list[date]) -> str:
    """``2025-10-16 to 2025-10-31`` style, short enough for one line of an error."""
    runs: list[list[date]] = []
    for day in days:
        if runs and (day - runs[-1][-1]).days == 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]} to {run[-1]}" for run in runs)


def upload_filename(month: str) -> str:
    """The name OpenAI gives a one-month export, which Pelanor's users upload as-is: the
    end date is exclusive (October is ``cost_2025-10-01_2025-11-01.csv``)."""
    days = month_days(month)
    return f"cost_{days[0].isoformat()}_{(days[-1] + timedelta(days=1)).isoformat()}.csv"


def format_decimal(value: Decimal) -> str:
    """Plain decimal text (never ``1E-8``), for totals shown to people and kept in seals."""
    return format(value, "f")


def rows_digest_update(digest: Any, row_text: str) -> None:
    """Fold one row into a day's digest; tap and target must agree on this exactly."""
    digest.update(f"{row_text}\n".encode())


class RowsDigest:
    """A seal's ``rows_digest``: sha256 over one line per day, ``YYYY-MM-DD <hex>``, where
    hex is the sha256 of that day's rows (:func:`rows_digest_update`).

    Built from days, so the tap vouches for a month with the day digests its scan computed
    anyway, instead of hashing every row twice; the target hashes the rows it receives.
    """

    def __init__(self) -> None:
        self._month = hashlib.sha256()
        self._day: str | None = None
        self._rows: Any = None

    def add_day(self, day: str, rows_hexdigest: str) -> None:
        self._end_day()
        self._month.update(f"{day} {rows_hexdigest}\n".encode())

    def add_row(self, day: str, row_text: str) -> None:
        if day != self._day:
            self._end_day()
            self._day, self._rows = day, hashlib.sha256()
        rows_digest_update(self._rows, row_text)

    def hexdigest(self) -> str:
        self._end_day()
        return str(self._month.hexdigest())

    def _end_day(self) -> None:
        if self._day is not None:
            day, self._day = self._day, None
            self.add_day(day, self._rows.hexdigest())


class _LineReader:
    """Feeds ``csv.reader`` one physical line at a time and remembers the raw text.

    ``csv.reader`` pulls exactly the lines one record needs, so the lines fed since the
    previous record are that record's source text, quoted newlines included.
    """

    def __init__(
        self, path: str, stream: io.BufferedReader, offset: int, end: int | None = None
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
        raw = self.stream.readline()
        if not raw:
            raise StopIteration
        self.line += 1
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


def read_layout(path: str, stream: io.BufferedReader) -> tuple[Layout, _LineReader]:
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
    _check_columns(path, columns)
    layout = Layout(tuple(columns), header, terminator or "\n", bom, bool(terminator))
    return layout, lines


def peek_layout(path: Path) -> Layout:
    """The layout a scan of the file will report, from its header and its last byte.

    Lets a month's rows be passed on while the file is still being scanned; only a scan
    that finishes confirms it.
    """
    with path.open("rb") as stream:
        layout, _ = read_layout(str(path), stream)
        stream.seek(-1, os.SEEK_END)
        return replace(layout, final_newline=stream.read(1) == b"\n")


def _check_columns(path: str, columns: list[str]) -> None:
    if "start_time" not in columns:
        raise ExportError(
            path,
            "does not look like an OpenAI export (no start_time column); "
            "use the CSV from Usage > Export > Cost data",
        )
    if "amount_value" not in columns:
        raise ExportError(
            path,
            "is an Activity export (no amount_value column), not cost data; "
            "export the Cost data tab (Usage > Export > Cost data, group by Line Item)",
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ExportError(path, f"repeats column(s) {', '.join(repeated)}; export it again")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ExportError(
            path,
            f"lacks column(s) {', '.join(missing)} that Pelanor requires; export the Cost "
            "data grouped by Line Item (and project) with a 1 day interval",
        )


class RowChecker:
    """The row rules of a cost export; stateful only within a day, so memory stays flat.

    Works on field positions rather than a dict per row: it runs for every row of every
    file the tap reads, and again in the target on the file it uploads.
    Call :meth:`finish_day` after the last row.
    """

    def __init__(self, path: str, layout: Layout, organization_id: str | None) -> None:
        _check_columns(path, list(layout.columns))
        self.path = path
        self.layout = layout
        self.organization_id = organization_id
        self.day = date.min
        self.times: tuple[str, ...] = ()
        self.day_keys = _DayKeys(first_row=2)
        at = {column: i for i, column in enumerate(layout.columns)}
        self.width = len(layout.columns)
        self.terminator = layout.line_terminator
        self.time_columns = tuple(c for c in TIME_COLUMNS if c in at)
        self.times_of = operator.itemgetter(*(at[c] for c in self.time_columns))
        self.other_at = [i for c, i in at.items() if c not in TIME_COLUMNS]
        # What identifies a row: every column but the measures (at least the required ones).
        self.key_of = operator.itemgetter(*(i for c, i in at.items() if c not in MEASURE_COLUMNS))
        self.amount_at = at["amount_value"]
        self.currency_at = at["amount_currency"]
        self.organization_at = at["organization_id"]

    def fail(self, row: int, message: str) -> ExportError:
        return ExportError(self.path, message, row=row)

    def check(self, number: int, fields: list[str], terminator: str, is_last: bool) -> date:
        """Check one row; return its day."""
        if len(fields) != self.width:
            raise self._wrong_width(number, fields, is_last)
        if terminator != self.terminator and not (is_last and not terminator):
            raise self.fail(number, "mixes line endings; use the export as downloaded")
        times = self.times_of(fields)
        if times != self.times:
            # Rows come grouped by day: the time columns are checked once per day.
            self._check_day(number, dict(zip(self.time_columns, times, strict=True)))
            self.times = times
        amount = fields[self.amount_at]
        if amount or any(fields[i] for i in self.other_at):
            self._check_cost(number, fields)  # not an idle-day row
        self.day_keys.add(hash(self.key_of(fields)), hash(amount))
        return self.day

    def _wrong_width(self, number: int, fields: list[str], is_last: bool) -> ExportError:
        if not fields:
            return self.fail(number, "is an empty line; use the export unmodified")
        if is_last:
            return self.fail(
                number,
                f"has {len(fields)} fields, expected {self.width}: the file is "
                "truncated; download the export again",
            )
        return self.fail(
            number,
            f"has {len(fields)} fields, expected {self.width}; upload the export unmodified",
        )

    def _check_day(self, number: int, times: dict[str, str]) -> None:
        day = day_of(self._check_times(number, times))
        if day < self.day:
            raise self.fail(
                number,
                f"day {day} comes after day {self.day}; rows must be in time order as "
                "exported, use the export unmodified",
            )
        if day != self.day:
            self.finish_day()
            self.day, self.day_keys = day, _DayKeys(first_row=number)

    def _check_times(self, number: int, values: dict[str, str]) -> int:
        for column in ("start_time", "end_time"):
            if not _INTEGER.fullmatch(values[column]):
                raise self.fail(
                    number,
                    f"{column} {values[column]!r} is not a whole number of Unix seconds; "
                    "download the export again",
                )
        start, end = int(values["start_time"]), int(values["end_time"])
        if end - start != DAY_SECONDS or start % DAY_SECONDS:
            raise self.fail(
                number,
                f"bucket {iso_of(start)} to {iso_of(end)} is not one whole UTC day; "
                "export with Time interval '1 day'",
            )
        for column, unix_column in ISO_COLUMNS.items():
            if column not in values:
                continue
            text, seconds = values[column], int(values[unix_column])
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                agrees = False
            else:
                # Without an offset the time is UTC (the Unix column says so), never the
                # host's zone.
                agrees = moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() == seconds
            if not agrees:
                raise self.fail(
                    number,
                    f"{column} {text!r} disagrees with {column[:-4]} {seconds} "
                    f"({iso_of(seconds)}); use the export unmodified",
                )
        return start

    def _check_cost(self, number: int, fields: list[str]) -> None:
        amount = fields[self.amount_at]
        if not AMOUNT_TEXT.fullmatch(amount):
            raise self.fail(
                number,
                f"amount_value {amount!r} is not a decimal number; use the export unmodified",
            )
        currency = fields[self.currency_at]
        if currency.lower() != "usd":
            raise self.fail(
                number,
                f"amount_currency is {currency!r}, but Pelanor accepts USD only",
            )
        organization = fields[self.organization_at]
        if self.organization_id is not None and organization != self.organization_id:
            raise self.fail(
                number,
                f"belongs to organization {organization!r}, not {self.organization_id!r}; "
                "give each organization its own connector (organization_id) and exports",
            )

    def finish_day(self) -> None:
        """The same key twice with different amounts means two exports were pasted together."""
        if repeat := self.day_keys.repeat():
            row, earlier = repeat
            raise self.fail(
                row,
                f"repeats row {earlier} (same day, line item and project) with a different "
                "amount; export the period again in one file",
            )


class _DayKeys:
    """One day's rows as hashes of their identifying values and of their amounts.

    Sixteen bytes a row plus a fixed table of 2 MiB, and no sorting, so memory stays small
    and barely grows with the month: only keys whose slot was already taken (true repeats,
    and a few percent of others) are looked at again when the day ends. Two different keys
    sharing a 64-bit hash (about one chance in 10^9 for a day of 100,000 rows) would be
    reported as a repeat if their amounts differ, never let through.
    """

    SLOTS = 1 << 21

    def __init__(self, first_row: int) -> None:
        self.first_row = first_row
        self.keys = array("q")
        self.amounts = array("q")
        self.taken = bytearray(self.SLOTS)
        self.maybe_repeated: set[int] = set()

    def add(self, key: int, amount: int) -> None:
        self.keys.append(key)
        self.amounts.append(amount)
        slot = key & (self.SLOTS - 1)
        if self.taken[slot]:
            self.maybe_repeated.add(key)
        else:
            self.taken[slot] = 1

    def repeat(self) -> tuple[int, int] | None:
        """(row, earlier row) for the first row repeating an earlier key with another amount."""
        if not self.maybe_repeated:
            return None
        first: dict[int, int] = {}
        for i, key in enumerate(self.keys):
            if key not in self.maybe_repeated:
                continue
            earlier = first.setdefault(key, i)
            if self.amounts[earlier] != self.amounts[i]:
                return self.first_row + i, self.first_row + earlier
        return None


def scan_export(path: Path, organization_id: str | None) -> ExportScan:
    """Validate a whole file and index it by day, without keeping its rows in memory."""
    return drain(scan_rows(path, organization_id))


def scan_rows(path: Path, organization_id: str | None) -> Generator[Row, None, ExportScan]:
    """Validate a file row by row, yielding each row as it passes; return the file's index.

    A day's repeat check runs when the next day starts, so a row is only known good once
    the generator has returned: a consumer may pass rows on, but must not vouch for them
    (seal a month) before that.
    """
    name = str(path)
    with path.open("rb") as stream:
        layout, lines = read_layout(name, stream)
        checker = RowChecker(name, layout, organization_id)
        columns = layout.columns
        days: list[DaySlice] = []
        current = DaySlice(date.min, start=0)  # no day yet
        offset = lines.offset
        number = 1  # the header is row 1, as a spreadsheet shows it
        terminator = layout.line_terminator if layout.final_newline else ""
        for fields, text, terminator, end in _records(lines):
            number += 1
            # Being the last row only changes the verdict on a short row or a missing line
            # ending, so it is looked up only for those.
            is_last = (not terminator or len(fields) != checker.width) and lines.at_end()
            day = checker.check(number, fields, terminator, is_last)
            if day != current.day:
                current = DaySlice(day, start=offset)
                days.append(current)
            current.rows += 1
            rows_digest_update(current.digest, text)
            current.end = offset = end
            yield Row(day, text, fields, columns)
        checker.finish_day()
    layout = replace(layout, final_newline=bool(terminator))
    return ExportScan(name, layout, path.stat().st_mtime, days)


def drain(generator: Generator[Any, None, _T]) -> _T:
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
    with Path(scan.path).open("rb") as stream:
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


class ExportWriter:
    """Writes a month in the export's exact layout, one row at a time."""

    def __init__(self, out: BinaryIO, layout: Layout) -> None:
        self.out = out
        self.layout = layout
        self.terminator = layout.line_terminator.encode()
        out.write((BOM if layout.bom else "").encode("utf-8") + layout.header.encode("utf-8"))

    def write_row(self, text: str) -> None:
        self.out.write(self.terminator + text.encode("utf-8"))

    def finish(self) -> None:
        if self.layout.final_newline:
            self.out.write(self.terminator)


def write_export(out: BinaryIO, layout: Layout, rows: Iterable[str]) -> None:
    """Write a whole month in the export's exact layout."""
    writer = ExportWriter(out, layout)
    for text in rows:
        writer.write_row(text)
    writer.finish()
