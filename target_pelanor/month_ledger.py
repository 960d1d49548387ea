"""The month ledger: each (organization, month) written to disk as it arrives, from its
layout record to its seal, and the verdict on whether it may be uploaded.

An upload replaces everything Pelanor has for the month, so a month leaves only when the
tap sealed it, what arrived matches the seal, it is complete, and every row of the file
passed the same checks the tap applies to an export. The tap announces a month's layout
before its rows, so the upload file is written and checked row by row as they arrive:
memory does not grow with the size of a month, and SDK drains cannot split one.

The files live in the run's working folder (see ``work_dir``). A file that cannot be
written (a full disk) raises OSError to the caller, which stops the run.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from openai_costs.contract import CostRow, MonthOpened, Seal, read_from_api
from openai_costs.export import (
    AMOUNT_LIMIT,
    AMOUNT_LIMIT_TEXT,
    EXACT,
    ExportError,
    ExportWriter,
    Layout,
    RowChecker,
    RowParser,
    RowsDigest,
    describe_days,
    format_decimal,
    missing_days,
    month_of,
    upload_filename,
)

#: Longest work file name kept readable (file systems allow 255 bytes; quoting is ASCII).
_MAX_NAME = 200


def _addable(amount: Decimal) -> bool:
    """Whether a typed amount is one a cost row can have (any other is refused apart, as
    :attr:`MonthFile.bad_amount`, and never compared or shown whole)."""
    return amount.is_finite() and amount.copy_abs() <= AMOUNT_LIMIT


def _differs(field: str, typed: str | None, what: str, text: str) -> str:
    """How a record's typed field differs from its row's text (after ``row N's``)."""
    return f"{field} {_shown(typed)} is not {what} in its csv_row ({_shown(text)})"


def _shown(value: str | None) -> str:
    """A value for a message: quoted, cut short (a record's field can be anything)."""
    if value is None:
        return "null"
    return repr(value if len(value) <= 40 else value[:37] + "...")


def work_file_name(organization: str, month: str) -> str:
    """The month's file name in the working folder, from the record's fields: quoted, so
    that no value makes a path outside the folder ("/", "..") or two months one name
    (``_`` is quoted too, so the first ``_`` separates the two). A name too long for the
    file system (only a malformed record's) becomes a digest of the two."""

    def part(value: str) -> str:
        return quote(value, safe="").replace("_", "%5F")

    name = f"{part(organization)}_{part(month)}.csv"
    if len(name) > _MAX_NAME:
        name = hashlib.sha256(f"{organization}\0{month}".encode()).hexdigest() + ".csv"
    return name


class Withheld(Exception):
    """A month that must not be uploaded; the message says why and what to do."""

    def __init__(self, reason: str, rows: int = 0, total: Decimal = Decimal(0)) -> None:
        super().__init__(reason)
        self.rows = rows
        self.total = total


class _CheckedWriter:
    """Writes rows to the upload file, each one checked first as the tap checks exports,
    and the record's typed fields compared with the row's text (:meth:`disagreement`)."""

    def __init__(
        self, out: BinaryIO, layout: Layout, label: str, organization_id: str, today: date
    ) -> None:
        self.checker = RowChecker(label, layout, organization_id, today)  # checks the header
        self.writer = ExportWriter(out, layout, gather=64 * 1024)
        self.parser = RowParser()
        self.terminator = layout.line_terminator
        checker = self.checker
        self.amount_at = checker.amount_at
        self.currency_at = checker.currency_at
        self.organization_at = checker.organization_at
        #: The last day's date and its text: a row's day is compared as text, once a day
        #: worked out (rows come grouped by day).
        self._day = date.min
        self._day_text = ""

    def write(self, number: int, row: CostRow) -> tuple[date, str | None]:
        """Check and write one row; return its day and how the record's typed fields
        differ from its text (None: they agree). Raises ExportError or csv.Error."""
        text = row.csv_row
        fields = self.parser.parse(text)
        day = self.checker.check(number, fields, self.terminator, is_last=False)
        self.writer.write_row(text)
        if day is not self._day:
            self._day, self._day_text = day, day.isoformat()
        # Every row's check, in one expression: it runs for every row of a backfill.
        amount, amount_text = row.amount_value, fields[self.amount_at]
        organization = fields[self.organization_at]
        if (
            row.day == self._day_text
            and (
                not amount_text
                if amount is None
                # The same text (most rows: the tap sends an export's digits as they are),
                # else the same number.
                else str(amount) == amount_text
                or (bool(amount_text) and amount.is_finite() and Decimal(amount_text) == amount)
            )
            and (row.organization == organization or not organization)
            and (row.organization_id is None or row.organization_id == organization)
            and (row.amount_currency is None or row.amount_currency == fields[self.currency_at])
        ):
            return day, None
        return day, self.disagreement(row, fields)

    def disagreement(self, row: CostRow, fields: list[str]) -> str | None:
        """What the target vouches for comes from the record's typed fields (the total,
        the days, the organization), what it uploads from the row's text: each typed value
        must be the text's. An amount is compared as a number (the tap sends an export's
        ``5.5e-05`` as ``0.000055``), the rest as text; a field the record leaves null
        must be empty in the text, except ``organization_id`` and ``amount_currency``,
        which the target reads from the text alone. None when they agree, or when only an
        amount no cost row can have differs (refused apart: :attr:`MonthFile.bad_amount`)."""
        if row.day != self._day_text:
            return _differs("day", row.day, "the day of start_time", self._day_text)
        amount_text = fields[self.amount_at]
        amount = row.amount_value
        if amount is None:
            if amount_text:
                return _differs("amount_value", None, "the amount_value", amount_text)
        elif _addable(amount) and (not amount_text or Decimal(amount_text) != amount):
            shown = format_decimal(amount)
            return _differs("amount_value", shown, "the amount_value", amount_text)
        organization = fields[self.organization_at]
        if organization and row.organization != organization:
            return _differs("organization", row.organization, "the organization_id", organization)
        if row.organization_id is not None and row.organization_id != organization:
            return _differs(
                "organization_id", row.organization_id, "the organization_id", organization
            )
        currency = row.amount_currency
        if currency is not None and currency != fields[self.currency_at]:
            return _differs(
                "amount_currency", currency, "the amount_currency", fields[self.currency_at]
            )
        return None

    def finish(self) -> None:
        self.checker.finish_day()
        self.writer.finish()


class MonthFile:
    """One month's upload file, written and checked row by row; tallies kept for the seal."""

    def __init__(
        self,
        organization: str,
        month: str,
        version: str | None,
        layout: Layout | None,
        path: Path,
        organization_id: str,
        today: date,
    ) -> None:
        self.organization = organization
        self.month = month
        self.version = version
        self.layout = layout
        self.path = path
        self.organization_id = organization_id
        self.rows = 0
        self.total = Decimal(0)
        self.digest = RowsDigest()
        self.days: set[date] = set()
        self.foreign: str | None = None
        self.problem: str | None = None
        #: The first row whose typed fields differ from its text: what the target would
        #: vouch for is not what it would upload.
        self.disagrees: str | None = None
        #: A typed amount no cost row can have: never added up (it could not be, exactly).
        self.bad_amount: str | None = None
        self.handle = path.open("wb")
        self.output: _CheckedWriter | None = None
        if layout is None:
            self.problem = (
                "rows arrived without the month's layout record (cost_month_layouts); "
                "pair target-pelanor with tap-openai-costs"
            )
            return
        try:
            self.output = _CheckedWriter(self.handle, layout, path.name, organization_id, today)
        except ExportError as problem:
            self.problem = f"the month's layout fails the export checks: {problem.message}"

    def add(self, row: CostRow) -> None:
        text = row.csv_row
        self.rows += 1
        amount = row.amount_value
        if amount is not None:
            if _addable(amount):
                self.total = EXACT.add(self.total, amount)
            elif self.bad_amount is None:
                self.bad_amount = (
                    f"row {self.rows + 1}: amount_value {amount} is {AMOUNT_LIMIT_TEXT}"
                )
        self.digest.add_row(row.day, text)
        foreign = row.organization_id
        if foreign and foreign != self.organization_id and not self.foreign:
            self.foreign = foreign
        if self.output is None or self.problem is not None:
            return
        number = self.rows + 1  # the header is row 1
        try:
            day, disagrees = self.output.write(number, row)
        except csv.Error as exc:
            self.problem = f"row {number} is not valid CSV ({exc})"
        except ExportError as problem:
            self.problem = f"row {number}: {problem.message}"
        else:
            if disagrees is not None and self.disagrees is None:
                self.disagrees = f"row {number}'s {disagrees}"
            if day not in self.days:  # once a day: rows come grouped by day
                if month_of(day) != self.month:
                    self.problem = f"row {number} is of {day}, outside the month"
                self.days.add(day)

    def finish(self) -> None:
        """The last row is in: the day's repeat check, the final line ending, closed."""
        if self.output is not None and self.problem is None:
            try:
                self.output.finish()
            except ExportError as problem:
                self.problem = f"row {problem.row}: {problem.message}"
        self.handle.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):  # a full disk fails the flush: the file goes anyway
            self.handle.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class ReadyMonth:
    """A checked month file, ready to be written out and uploaded."""

    organization: str
    month: str
    rows: int
    total: Decimal
    path: Path
    days: int
    rows_digest: str
    #: Read from OpenAI's Costs API by the tap (not from exports): a smaller copy is then
    #: OpenAI's restatement, not a cut download.
    from_api: bool = False

    @property
    def filename(self) -> str:
        return upload_filename(self.month)


class MonthLedger:
    """The months in flight, from their layout record to their seal.

    ``today`` is the current UTC date, read once when the target starts: rows of days from
    it on are refused, and a month is complete up to the day before.
    """

    def __init__(
        self, organization_id: str, allow_partial_month: bool, today: date, work_dir: Path
    ) -> None:
        self.organization_id = organization_id
        self.allow_partial_month = allow_partial_month
        self.today = today
        self.work_dir = work_dir
        self.open: dict[tuple[str, str], MonthFile] = {}

    def open_month(self, opened: MonthOpened) -> None:
        """A month starts: its layout arrives before its first row."""
        key = (opened.organization, opened.month)
        if previous := self.open.pop(key, None):
            previous.discard()  # restarted by the tap: its earlier rows are replaced
        self.open[key] = self._new_file(key, opened.month_version, opened.layout)

    def add_row(self, row: CostRow) -> None:
        key = (row.organization, row.month)
        month = self.open.get(key)
        if month is None:
            month = self.open[key] = self._new_file(key, None, None)
        month.add(row)

    def seal(self, seal: Seal) -> ReadyMonth:
        """Check a sealed month; return its file, or raise Withheld if it is unsafe."""
        key = (seal.organization, seal.month)
        month = self.open.pop(key, None)
        if month is None:
            raise Withheld(
                f"sealed with {seal.row_count} rows but no rows arrived; run the tap again"
            )
        month.finish()
        try:
            self._check(month, seal)
        except Withheld as withheld:
            month.discard()
            raise Withheld(str(withheld), month.rows, month.total) from None
        return ReadyMonth(
            month.organization,
            month.month,
            month.rows,
            month.total,
            month.path,
            len(month.days),
            month.digest.hexdigest(),
            read_from_api(seal.source_files),
        )

    def unsealed(self) -> list[MonthFile]:
        """Months whose rows arrived without a seal: the tap refused them or stopped before
        finishing them."""
        months = list(self.open.values())
        for month in months:
            month.discard()
        self.open.clear()
        return months

    def close(self) -> None:
        self.unsealed()

    def _new_file(
        self, key: tuple[str, str], version: str | None, layout: Layout | None
    ) -> MonthFile:
        path = self.work_dir / work_file_name(*key)
        return MonthFile(key[0], key[1], version, layout, path, self.organization_id, self.today)

    def _check(self, month: MonthFile, seal: Seal) -> None:
        if month.organization != self.organization_id:
            raise Withheld(
                f"comes from the tap for organization {month.organization}, but this target "
                f"uploads for {self.organization_id}; pair each tap with its own target"
            )
        if month.disagrees:
            raise Withheld(
                f"{month.disagrees}: what the target reports must be what it uploads; pair "
                "target-pelanor with tap-openai-costs, without stream maps that change a "
                "costs record, and run the pipeline again"
            )
        if month.foreign:
            raise Withheld(
                f"has rows of organization {month.foreign}, not {self.organization_id}; "
                "check organization_id of the tap and the target"
            )
        if month.bad_amount:
            raise Withheld(
                f"fails the export checks: {month.bad_amount}; pair target-pelanor with "
                "tap-openai-costs and run the pipeline again"
            )
        if month.version is not None and month.version != seal.month_version:
            raise Withheld(
                f"the seal is for month_version {seal.month_version}, but the rows arrived "
                f"as {month.version}; run the pipeline again"
            )
        try:
            sealed_total = Decimal(seal.total_usd)
        except InvalidOperation:  # reachable with validate_records off
            sealed_total = Decimal("NaN")
        if not sealed_total.is_finite():
            raise Withheld(
                "the tap's seal has a total_usd that is not a decimal number; pair "
                "target-pelanor with tap-openai-costs and run the pipeline again"
            )
        arrived = (month.rows, format_decimal(month.total), month.digest.hexdigest())
        sealed = (seal.row_count, seal.total_usd, seal.rows_digest)
        if month.rows != seal.row_count or month.total != sealed_total:
            raise Withheld(
                f"rows received ({arrived[0]} rows, {arrived[1]} USD) do not match the "
                f"tap's seal ({sealed[0]} rows, {sealed[1]} USD); run the pipeline again"
            )
        if arrived[2] != sealed[2]:
            raise Withheld(
                "rows received differ from the rows the tap sealed (digest mismatch); "
                "run the pipeline again"
            )
        if month.problem:
            raise Withheld(f"fails the export checks: {month.problem}")
        if month.layout != seal.layout:
            raise Withheld(
                "the seal's layout differs from the layout the month was written with; "
                "run the pipeline again"
            )
        missing = missing_days(month.month, month.days, self.today)
        if missing and not self.allow_partial_month:
            raise Withheld(
                f"is incomplete: {len(missing)} day(s) missing ({describe_days(missing)}); "
                "export the whole month, or set allow_partial_month to upload it anyway"
            )
