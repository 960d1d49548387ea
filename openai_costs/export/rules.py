"""The row rules of a cost export, applied by the tap to every input and by the target to
every row of the file it uploads."""

from __future__ import annotations

import operator
import re
from array import array
from datetime import date, datetime, timezone
from decimal import Decimal

from openai_costs.export.calendar import DAY_SECONDS, day_of, iso_of
from openai_costs.export.errors import ExportError
from openai_costs.export.layout import (
    ISO_COLUMNS,
    MEASURE_COLUMNS,
    TIME_COLUMNS,
    Layout,
    check_columns,
)

UTC = timezone.utc  # datetime.UTC needs Python 3.11

_INTEGER = re.compile(r"-?[0-9]+")
#: An amount as exports and the Costs API write it: fixed digits (``0.8958740000000000``)
#: or a float's shortest repr, which uses exponents for small values (``5.5e-05``,
#: ``1.2345E-05``). Never ``nan``/``inf``, separators or symbols. Kept as text, read as
#: Decimal: exact either way.
AMOUNT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
#: No export writes a longer amount; with the exponent's bound it keeps every sum exact
#: (:data:`openai_costs.export.writing.EXACT`).
AMOUNT_MAX_LENGTH = 64
#: No cost row of any organization comes near this (USD, either sign): an amount beyond it
#: is a corrupted value (an exponent such as ``1e300``), refused before anything adds it.
AMOUNT_LIMIT = Decimal(1_000_000_000)
#: How a refused amount is described.
AMOUNT_LIMIT_TEXT = "beyond ±1,000,000,000 USD, more than any real cost row"
#: The usual amount, plainly within the limit (fewer than ten integer digits, no
#: exponent): one match settles it, as both checks above would.
_PLAIN_AMOUNT = re.compile(r"[+-]?0*(?:[0-9]{1,9}(?:\.[0-9]*)?|\.[0-9]+)")


def amount_too_large(text: str) -> bool:
    """Whether decimal text (:data:`AMOUNT_TEXT`) is beyond :data:`AMOUNT_LIMIT`. Cheap for
    the usual amount: only one with ten integer digits or an exponent is parsed."""
    mantissa, exponent_mark, _ = text.lower().partition("e")
    whole = mantissa.lstrip("+-").partition(".")[0].lstrip("0")
    if not exponent_mark and len(whole) < 10:
        return False
    return Decimal(text).copy_abs() > AMOUNT_LIMIT


class RowChecker:
    """The row rules of a cost export; stateful only within a day, so memory stays flat.

    Works on field positions rather than a dict per row: it runs for every row of every
    file the tap reads, and again in the target on the file it uploads.
    ``today`` is the current UTC date, read once by the caller for the whole run: days from
    it on have not ended, so no export can hold them. Call :meth:`finish_day` after the
    last row.
    """

    def __init__(self, path: str, layout: Layout, organization_id: str | None, today: date) -> None:
        check_columns(path, list(layout.columns))
        self.path = path
        self.layout = layout
        self.organization_id = organization_id
        self.today = today
        self.day = date.min
        self.times: tuple[str, ...] = ()
        self.day_keys = _DayKeys(first_row=2)
        self.add_key = self.day_keys.keys.append
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
        if fields[self.amount_at] or any(fields[i] for i in self.other_at):
            self._check_cost(number, fields)  # not an idle-day row
        self.add_key(hash(self.key_of(fields)))
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
        if day >= self.today:
            raise self.fail(number, _not_over(day, self.today))
        if day != self.day:
            self.finish_day()
            self.day, self.day_keys.first_row = day, number

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
                # Python 3.10 reads no "Z", 3.11 does: the same verdict on both.
                iso = text[:-1] + "+00:00" if text.endswith("Z") else text
                moment = datetime.fromisoformat(iso)
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
        if len(amount) > AMOUNT_MAX_LENGTH or not _PLAIN_AMOUNT.fullmatch(amount):
            self._check_amount(number, amount)
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

    def _check_amount(self, number: int, amount: str) -> None:
        if len(amount) > AMOUNT_MAX_LENGTH or not AMOUNT_TEXT.fullmatch(amount):
            raise self.fail(
                number,
                f"amount_value {amount!r} is not a decimal number; use the export unmodified",
            )
        if amount_too_large(amount):
            raise self.fail(
                number, f"amount_value {amount!r} is {AMOUNT_LIMIT_TEXT}; use the export unmodified"
            )

    def finish_day(self) -> None:
        """No two rows of a day may share their identifying values, whatever their
        amounts: two exports pasted together would count their common days twice. The
        day's keys are dropped; the next day starts afresh."""
        day_keys, self.day_keys = self.day_keys, _DayKeys(first_row=0)
        self.add_key = self.day_keys.keys.append
        if repeat := day_keys.repeat():
            row, earlier = repeat
            raise self.fail(
                row,
                f"repeats row {earlier} (same day, line item, project and every other column "
                "but the amounts), so that day would count twice, as when two exports are "
                "pasted together; export the period again as one file",
            )


def _not_over(day: date, today: date) -> str:
    """Why a day that has not ended cannot be in an export, and what to do."""
    if day == today:
        return (
            f"day {day} has not ended yet (it is today, UTC), so its costs are still "
            "growing; export again after 00:00 UTC, with days up to yesterday"
        )
    return (
        f"day {day} is in the future (today is {today}, UTC); check the export's dates "
        "and this computer's clock"
    )


class _DayKeys:
    """One day's rows as hashes of their identifying values: eight bytes a row, dropped
    when the day ends, so memory stays small whatever the month (a first-time backfill
    keeps one of these per month waiting for its seal in the target).

    Repeats are looked for once, when the day ends, in C (a set of the hashes); the rows
    are only walked again when there is one. Two different keys sharing a 64-bit hash
    (about one chance in 10^9 for a day of 100,000 rows) would be reported as a repeat,
    never let through.
    """

    def __init__(self, first_row: int) -> None:
        self.first_row = first_row
        self.keys = array("q")

    def repeat(self) -> tuple[int, int] | None:
        """(row, earlier row) for the first row repeating an earlier row's key."""
        keys = self.keys
        if len(set(keys)) == len(keys):
            return None
        first: dict[int, int] = {}
        for i, key in enumerate(keys):
            earlier = first.setdefault(key, i)
            if earlier != i:
                return self.first_row + i, self.first_row + earlier
        return None  # pragma: no cover  # the set found a repeat
