"""The three streams: every cost row, framed per (organization, month) by its layout
before the rows and its seal after them."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from singer_sdk import Stream
from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel

from openai_costs import contract
from openai_costs.batches import write_batches
from openai_costs.contract import MonthOpened, Seal
from openai_costs.export import (
    CURRENT_COLUMNS,
    ExportError,
    format_decimal,
    full_days,
    missing_days,
    today_utc,
)
from openai_costs.user_errors import stop
from tap_openai_costs.inputs import InputProblems, changed_months, read_exports

if TYPE_CHECKING:
    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
    from singer_sdk.helpers.types import Context

    from openai_costs.export import Row
    from tap_openai_costs.planner import Draft, ExportReading, MonthPlan

_TEXT = th.StringType(nullable=True)

#: Row columns carried typed as text; any other column still travels inside ``csv_row``.
_TEXT_COLUMNS = tuple(
    c for c in CURRENT_COLUMNS if c not in {"start_time", "end_time", "amount_value"}
)


@dataclass
class MonthTally:
    """What a seal vouches for, counted as the rows go out (their digest comes from the
    scan's day digests: :meth:`MonthPlan.rows_digest`)."""

    count: int = 0
    total: Decimal = Decimal(0)


@dataclass(frozen=True)
class _Positions:
    """Where the typed fields sit in one layout's rows."""

    start: int
    end: int
    amount: int
    text: tuple[tuple[str, int], ...]


@functools.cache
def _positions(columns: tuple[str, ...]) -> _Positions:
    at = {column: i for i, column in enumerate(columns)}
    text = tuple((column, at[column]) for column in _TEXT_COLUMNS if column in at)
    return _Positions(at["start_time"], at["end_time"], at["amount_value"], text)


@functools.cache
def _iso_day(day: date) -> str:
    return day.isoformat()


class CostsStream(Stream):
    """One record per CSV row, idle days included, in day order, month after month.

    ``csv_row`` is the row's exact CSV text in its month's layout; together with the
    ``layout`` record written before the month's rows it lets the target write the export
    byte for byte. The other fields are the same values, typed, for any other consumer.
    """

    name = contract.COSTS
    primary_keys = ("organization", "month", "row")
    replication_key = None
    # Records are built from validated text with JSON-ready types: nothing to conform.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    schema = th.PropertiesList(
        th.Property(
            "organization", th.StringType, required=True, description="Connector's organization"
        ),
        th.Property("month", th.StringType, required=True, description="YYYY-MM of start_time"),
        th.Property(
            "row", th.IntegerType, required=True, description="1-based position in the month"
        ),
        th.Property(
            "day", th.StringType, required=True, description="YYYY-MM-DD of start_time (UTC)"
        ),
        th.Property("start_time", th.IntegerType, required=True),
        th.Property("end_time", th.IntegerType, required=True),
        th.Property("amount_value", th.NumberType(nullable=True), description="Exact decimal"),
        *(th.Property(column, _TEXT) for column in _TEXT_COLUMNS),
        th.Property("csv_row", th.StringType, required=True, description="Exact CSV text"),
    ).to_dict()

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        for month, rows, tally in self._months():
            yield from self._records_of(month, rows, tally)

    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        """BATCH messages for each month's rows, between its layout and its seal (RECORDs).

        The SDK's own batcher would let a seal overtake rows still waiting in its buffer,
        so files are cut here, per month, written as they fill, never held in memory.
        """
        for month, rows, tally in self._months():
            records = self._records_of(month, rows, tally)
            for manifest in write_batches(records, batch_config, self.name):
                yield batch_config.encoding, manifest

    def get_batch_config(self, config: Mapping[str, Any]) -> BatchConfig | None:
        """No batch files in a connection test (``--test``): it stops after a record."""
        return None if self.ABORT_AT_RECORD_COUNT is not None else super().get_batch_config(config)

    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterable[Context | None]:
        """Layouts and seals are written explicitly around a month's rows, never per record."""
        return ()

    def _months(self) -> Iterator[tuple[Draft | MonthPlan, Iterator[Row], MonthTally]]:
        """Each month's rows to write, after its layout record; seals go out in between.

        First the drafts, while the exports are validated; then, every export having
        passed, each changed month is sealed: a draft that matches its plan as it is, any
        other month after its rows are read again from the plan. This generator is resumed
        only once the rows it handed out were written, so a seal never overtakes its rows.
        """
        today = self.today()
        reading = self._reading(today)
        tallies: dict[str, MonthTally] = {}
        for draft, rows in reading.validate():
            tallies[draft.month] = tally = MonthTally()
            self._open(draft)
            yield draft, rows, tally
        try:
            plans = changed_months(reading, self.logger)
        except InputProblems as problems:
            self._stop(problems.problems)
        if reading.known is not None:
            # Every file passed: remember what each holds, so the next run need not read it.
            known = reading.known.records_of(reading.scans, reading.trusted.values())
            self.stream_state["files"] = known
        for plan in plans:
            drafted = reading.drafts.get(plan.month)
            if drafted is not None and drafted.matches(plan):
                tally = tallies[plan.month]
            else:
                tally = MonthTally()
                self._open(plan)  # a draft's rows, if any, are replaced
                yield plan, self._reread(plan), tally
            self._seal(plan, tally, today)

    def today(self) -> date:
        """The current UTC date, read once a run: months are complete up to the day before."""
        return today_utc()

    def _reading(self, today: date) -> ExportReading:
        # Read without creating the stream's bookmark: a run that seals nothing leaves none.
        bookmark = self.tap_state.get("bookmarks", {}).get(self.name, {})
        try:
            api_dir = Path(self._api_dir.name)
            return read_exports(self.config, bookmark, today, api_dir, self.logger)
        except InputProblems as problems:
            self._stop(problems.problems)

    @cached_property
    def _api_dir(self) -> tempfile.TemporaryDirectory[str]:
        """Where API months are written for the run; removed when the tap is done."""
        return tempfile.TemporaryDirectory(prefix="tap-openai-costs-")

    def _stop(self, problems: list[Exception]) -> NoReturn:
        """User errors end the run: one line each, exit status 1, nothing more sealed."""
        stop(self.tap_name, problems)

    def _reread(self, plan: MonthPlan) -> Iterator[Row]:
        try:
            yield from plan.rows()
        except ExportError as problem:  # a file changed after it was validated
            self._stop([problem])

    def _records_of(
        self, month: Draft | MonthPlan, rows: Iterator[Row], tally: MonthTally
    ) -> Iterator[dict[str, Any]]:
        # Runs for every row of a backfill: the tally is counted inline, keys set one by one.
        at = _positions(month.layout.columns)  # every row comes in the month's layout
        organization, month_text = month.organization_id, month.month
        for row in rows:
            fields, text = row.fields, row.text
            amount = Decimal(fields[at.amount]) if fields[at.amount] else None
            tally.count += 1
            if amount is not None:
                tally.total += amount
            record: dict[str, Any] = {name: fields[i] or None for name, i in at.text}
            record["organization"] = organization
            record["month"] = month_text
            record["row"] = tally.count
            record["day"] = _iso_day(row.day)
            record["start_time"] = int(fields[at.start])
            record["end_time"] = int(fields[at.end])
            record["amount_value"] = amount
            record["csv_row"] = text
            yield record

    def _open(self, month: Draft | MonthPlan) -> None:
        """Announce the month's file layout before its first row, so the target can write
        and check the upload file while the rows arrive."""
        opened = MonthOpened(month.organization_id, month.month, month.layout)
        self._emit(MonthLayoutsStream, contract.to_record(opened))

    def _emit(self, stream_type: type[_MonthEventStream], record: dict[str, Any]) -> None:
        for child in self.child_streams:
            if isinstance(child, stream_type) and child.selected:
                child.emit(record)

    def _seal(self, plan: MonthPlan, tally: MonthTally, today: date) -> None:
        missing = missing_days(plan.month, plan.days, today)
        seal = Seal(
            organization=plan.organization_id,
            month=plan.month,
            row_count=tally.count,
            total_usd=format_decimal(tally.total),
            days_covered=len(plan.days),
            days_expected=len(full_days(plan.month, today)),
            missing_days=[day.isoformat() for day in missing],
            complete=not missing,
            rows_digest=plan.rows_digest(),
            input_digest=plan.input_digest,
            source_files=plan.source_files,
            layout=plan.layout,
        )
        # Bookmarked first, so the STATE written right after the seal already covers the
        # month: the target drains (uploads) the sealed month before it confirms that state.
        self.stream_state.setdefault("months", {})[plan.key] = plan.input_digest
        self._emit(MonthSealsStream, contract.to_record(seal))


_LAYOUT = th.ObjectType(
    th.Property("columns", th.ArrayType(th.StringType)),
    th.Property("header", th.StringType),
    th.Property("line_terminator", th.StringType),
    th.Property("bom", th.BooleanType),
    th.Property("final_newline", th.BooleanType),
)


class _MonthEventStream(Stream):
    """A record about a whole month, written by the ``costs`` stream at the right moment."""

    primary_keys = ("organization", "month")
    replication_key = None
    parent_stream_type = CostsStream
    state_partitioning_keys: list[str] = []  # noqa: RUF012  # one bookmark, not one per month
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    _pending: dict[str, Any] | None = None

    def emit(self, record: dict[str, Any]) -> None:
        """Write one record now, between the rows the parent writes."""
        self._pending = record
        try:
            self.sync()
        finally:
            self._pending = None

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        if self._pending is not None:
            yield self._pending

    def get_batch_config(self, config: Mapping[str, Any]) -> BatchConfig | None:
        """Always RECORD messages, in place between the month's rows."""
        return None


class MonthLayoutsStream(_MonthEventStream):
    """Written right before a month's first row: how its upload file is laid out."""

    name = contract.MONTH_LAYOUTS
    schema = th.PropertiesList(
        th.Property("organization", th.StringType, required=True),
        th.Property("month", th.StringType, required=True),
        th.Property("layout", _LAYOUT, required=True),
    ).to_dict()


class MonthSealsStream(_MonthEventStream):
    """Written right after a month's last row: the target uploads sealed months only."""

    name = contract.MONTH_SEALS
    schema = th.PropertiesList(
        th.Property("organization", th.StringType, required=True),
        th.Property("month", th.StringType, required=True),
        th.Property("row_count", th.IntegerType, required=True),
        th.Property("total_usd", th.StringType, required=True, description="Exact decimal text"),
        th.Property("days_covered", th.IntegerType, required=True),
        th.Property("days_expected", th.IntegerType, required=True),
        th.Property("missing_days", th.ArrayType(th.StringType), required=True),
        th.Property("complete", th.BooleanType, required=True),
        th.Property(
            "rows_digest",
            th.StringType,
            required=True,
            description="sha256 of one line per day: YYYY-MM-DD, a space, and the sha256 of "
            "that day's csv_row lines",
        ),
        th.Property("input_digest", th.StringType, required=True),
        th.Property("source_files", th.ArrayType(th.StringType), required=True),
        th.Property("layout", _LAYOUT, required=True),
    ).to_dict()
