"""The row rules of a cost export, applied by the tap to every input and by the target to
every row of the file it uploads."""

from __future__ import annotations

import operator
import re
from array import array
from datetime import UTC, date, datetime

from openai_costs.export.calendar import DAY_SECONDS, day_of, iso_of
from openai_costs.export.errors import ExportError
from openai_costs.export.layout import (
    ISO_COLUMNS,
    MEASURE_COLUMNS,
    TIME_COLUMNS,
    Layout,
    check_columns,
)

_INTEGER = re.compile(r"-?[0-9]+")
#: An amount as exports and the Costs API write it: fixed digits (``0.8958740000000000``)
#: or a float's shortest repr, which uses exponents for small values (``5.5e-05``,
#: ``1.2345E-05``). Never ``nan``/``inf``, separators or symbols. Kept as text, read as
#: Decimal: exact either way.
AMOUNT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class RowChecker:
    """The row rules of a cost export; stateful only within a day, so memory stays flat.

    Works on field positions rather than a dict per row: it runs for every row of every
    file the tap reads, and again in the target on the file it uploads.
    Call :meth:`finish_day` after the last row.
    """

    def __init__(self, path: str, layout: Layout, organization_id: str | None) -> None:
        check_columns(path, list(layout.columns))
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
