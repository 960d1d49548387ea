"""The three streams: every cost row, framed per (organization, month) by its layout
before the rows and its seal after them.

Every sending of a month gets a new ``month_version``, on its layout, on each row and on
the seal that vouches for it, so a loader keeping everything it was sent can still tell
the sealed rows from a draft's or an earlier run's. The schemas type what a warehouse
keeps: dates, UTC instants, and amounts as exact decimal text (``x-singer.decimal``,
NUMERIC in SQL loaders), never a float.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from singer_sdk import Stream, metrics
from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib.catalog import REPLICATION_INCREMENTAL

from openai_costs import contract
from openai_costs.batches import BatchRun, BatchWriteError, remove_stale_batches, write_batches
from openai_costs.contract import MonthOpened, Seal
from openai_costs.export import (
    CURRENT_COLUMNS,
    EXACT,
    ISO_COLUMNS,
    ExportError,
    format_decimal,
    full_days,
    iso_of,
    missing_days,
    today_utc,
)
from openai_costs.month_status import SEALED, WITHHELD
from openai_costs.os_errors import advice
from openai_costs.work_folder import WorkFolderError, open_work_folder
from tap_openai_costs.costs_api import (
    ApiWitness,
    FieldNotes,
    OpenAIAPIError,
    cannot_check,
    disagreement,
)
from tap_openai_costs.inputs import InputProblems, changed_months, read_exports
from tap_openai_costs.message_writer import BufferedMsgSpecWriter
from tap_openai_costs.paths import cannot_read
from tap_openai_costs.record_messages import QuickRecordMessages
from tap_openai_costs.settings import TapSettings

if TYPE_CHECKING:
    from singer_sdk import singerlib as singer
    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
    from singer_sdk.helpers.types import Context

    from openai_costs.export import Row
    from tap_openai_costs.planner import Draft, ExportReading, MonthPlan

_TEXT = th.StringType(nullable=True)
_MONTH = th.StringType(pattern=contract.MONTH_PATTERN)
_ISO_COLUMNS = tuple(ISO_COLUMNS)
#: Row columns carried typed as text; any other column still travels inside ``csv_row``.
_TEXT_COLUMNS = tuple(
    c for c in CURRENT_COLUMNS if c not in {"start_time", "end_time", "amount_value", *_ISO_COLUMNS}
)
#: Text columns that hold a number: typed as exact decimal text, carried as the export has it.
_DECIMAL_TEXT_COLUMNS = frozenset({"quantity"})
_TEXT_COLUMN_SET = frozenset(_TEXT_COLUMNS)
_ZERO = Decimal(0)
_NOTHING: Mapping[str, str] = {}


class TapStopped(SystemExit):
    """Problems the user must fix: the run stops with exit status 1.

    The tap's command line reports them (:meth:`TapOpenAICosts.invoke`) once everything
    else is written, the SDK's metric lines included, so the last line a scheduler or
    ``meltano config test`` shows is the error. In process, read ``problems``.
    """

    def __init__(self, problems: list[Exception]) -> None:
        super().__init__(1)
        self.problems = problems


class ExactDecimalType(th.StringType):
    """Exact decimal text, as the SDK's SQL loaders expect it: ``x-singer.decimal`` becomes
    NUMERIC (meltanolabs-target-postgres); a loader that does not know the format keeps
    the text. A JSON number would become a float in many loaders."""

    string_format = "x-singer.decimal"


@dataclass
class MonthTally:
    """What a seal vouches for, counted as the rows go out (their digest comes from the
    scan's day digests: :meth:`MonthPlan.rows_digest`), and the version they went out in."""

    version: str
    count: int = 0
    total: Decimal = Decimal(0)
    #: Each day's total, counted only for check_against_api (None: not counted).
    days: dict[date, Decimal] | None = field(default=None)


@dataclass(frozen=True)
class _Positions:
    """Where the typed fields sit in one layout's rows."""

    start: int
    end: int
    amount: int
    start_iso: bool
    end_iso: bool
    text: tuple[tuple[str, int], ...]


@functools.cache
def _positions(columns: tuple[str, ...]) -> _Positions:
    at = {column: i for i, column in enumerate(columns)}
    text = tuple((column, at[column]) for column in _TEXT_COLUMNS if column in at)
    start_iso, end_iso = (column in at for column in _ISO_COLUMNS)
    return _Positions(
        at["start_time"], at["end_time"], at["amount_value"], start_iso, end_iso, text
    )


#: An export's amount in plain decimal digits: sent as the export writes it (trailing
#: zeros kept); any other spelling (``5.5e-05``) is sent without an exponent (``0.000055``).
_PLAIN_DIGITS = re.compile(r"[0-9]+(?:\.[0-9]+)?").fullmatch


@functools.cache
def _day_fields(day: date, start: int, end: int, start_iso: bool, end_iso: bool) -> dict[str, Any]:
    """A record's fields that are the same for every row of its day, in record order. ISO
    times are RFC 3339 with ``+00:00``, the form OpenAI writes: a file's ISO text may lack
    the offset (it is UTC, the Unix column says so), which a loader would read in its own
    zone. The exact text stays in ``csv_row``."""
    fields: dict[str, Any] = {"day": day.isoformat(), "start_time": start, "end_time": end}
    if start_iso:
        fields["start_time_iso"] = iso_of(start)
    if end_iso:
        fields["end_time_iso"] = iso_of(end)
    return fields


#: How the SDK's line about starting a stream's sync begins (singer_sdk Stream.sync).
_SDK_SYNC_START = "Beginning sync of '%s' in %s mode"


class _IncrementalInCatalog(Stream):
    """The catalog says what these streams do: INCREMENTAL, since a run sends only the months
    whose inputs changed (the state holds a digest per month, not a replication key).

    Only the catalog says so. The SDK's own incremental machinery needs a replication key
    per record, so inside the tap the streams stay keyless, and a replication method that a
    catalog asks for is not applied: to send every month again, run without state
    (``meltano run --full-refresh``, or ``meltano state clear``).
    """

    @property
    def _singer_catalog_entry(self) -> singer.CatalogEntry:
        entry = super()._singer_catalog_entry
        entry.replication_method = REPLICATION_INCREMENTAL
        entry.metadata.root.forced_replication_method = REPLICATION_INCREMENTAL
        return entry

    def apply_catalog(self, catalog: singer.Catalog) -> None:
        super().apply_catalog(catalog)
        self.forced_replication_method = None
        self.replication_key = None

    @property
    def settings(self) -> TapSettings:
        """The settings the tap built once for this run (never read from the config)."""
        return TapSettings.of(self._tap)


class CostsStream(QuickRecordMessages, _IncrementalInCatalog):
    """One record per CSV row, idle days included, in day order, month after month.

    ``csv_row`` is the row's exact CSV text in its month's layout; together with the
    ``layout`` record written before the month's rows it lets the target write the export
    byte for byte. The other fields are the same values, typed, for any other consumer.
    """

    name = contract.COSTS
    # A new month_version never overwrites an older version's rows in an upserting loader.
    primary_keys = ("organization", "month", "month_version", "row")
    replication_key = None
    # Records are built from validated text with JSON-ready types: nothing to conform.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def log(self, message: str, *args: Any, level: int = logging.INFO, **kwargs: Any) -> None:
        """The SDK calls a stream without a replication key "full_table"; this one sends
        only the months whose inputs changed, so its start says that instead."""
        if message.startswith(_SDK_SYNC_START):
            message, args = "Beginning sync of '%s', incremental by month", args[:1]
        super().log(message, *args, level=level, **kwargs)

    schema = th.PropertiesList(
        th.Property(
            "organization", th.StringType, required=True, description="Connector's organization"
        ),
        th.Property("month", _MONTH, required=True, description="YYYY-MM of start_time"),
        th.Property(
            "month_version",
            th.StringType,
            required=True,
            description="This sending of the month; current rows are those of the version "
            "its cost_months seal names",
        ),
        th.Property(
            "row",
            th.IntegerType,
            required=True,
            description="1-based position in the month's version",
        ),
        th.Property(
            "day", th.DateType, required=True, description="UTC day of start_time (YYYY-MM-DD)"
        ),
        th.Property("start_time", th.IntegerType, required=True),
        th.Property("end_time", th.IntegerType, required=True),
        *(
            th.Property(
                column,
                th.DateTimeType(nullable=True),
                description="The file's ISO time as UTC (+00:00); null if the file has none",
            )
            for column in _ISO_COLUMNS
        ),
        th.Property(
            "amount_value",
            ExactDecimalType(nullable=True),
            description="Exact decimal text (x-singer.decimal); null on idle-day rows",
        ),
        *(
            th.Property(
                column,
                ExactDecimalType(nullable=True),
                description="Exact decimal text (x-singer.decimal), as the export writes it",
            )
            if column in _DECIMAL_TEXT_COLUMNS
            else th.Property(column, _TEXT)
            for column in _TEXT_COLUMNS
        ),
        th.Property("csv_row", th.StringType, required=True, description="Exact CSV text"),
    ).to_dict()

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        self._announce_month_streams()
        for records in self._month_records():
            yield from records

    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        """BATCH messages for each month's rows, between its layout and its seal (RECORDs).

        The SDK's own batcher would let a seal overtake rows still waiting in its buffer,
        so files are cut here, per month, written as they fill, never held in memory.
        """
        removed = remove_stale_batches(batch_config, self.tap_name)
        if removed:
            self.logger.info(
                "removed batch files that runs which are over left behind: %s", ", ".join(removed)
            )
        owner = f"{self.tap_name}-{os.getpid()}"
        self._announce_month_streams()
        try:
            with BatchRun(batch_config, self.name) as run:
                for records in self._month_records():
                    for manifest in write_batches(records, batch_config, run, owner):
                        yield batch_config.encoding, manifest
        except BatchWriteError as reason:  # the partial file is gone already
            fix = advice(
                reason.errno,
                "free space there or set batch_config.storage.root to a folder the tap can write",
            )
            problem = ExportError(
                batch_config.storage.root, f"cannot write batch files ({reason}); {fix}"
            )
            self._stop([problem])

    def get_batch_config(self, config: Mapping[str, Any]) -> BatchConfig | None:
        """No batch files in a connection test (``--test``): it stops after a record."""
        return None if self.ABORT_AT_RECORD_COUNT is not None else super().get_batch_config(config)

    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterable[Context | None]:
        """Layouts and seals are written explicitly around a month's rows, never per record."""
        return ()

    def _announce_month_streams(self) -> None:
        """SCHEMA messages of the selected month streams before any record, so a target
        knows from the start which streams it will get (a deselected one never comes).

        A deselected stream is said at once, in one line: target-pelanor refuses a run
        without all three, and a team should learn it from the tap's first lines, not from
        the target's refusal at the first month. A warning, unless only the layouts are
        left out of a run without BATCH files (a warehouse load, which does not need them;
        BATCH files are read by target-pelanor alone), or focus_costs is selected (which
        target-pelanor does not take: a warehouse load too)."""
        deselected = [
            stream.name
            for stream in (self, *self.child_streams)
            if not stream.selected and stream.name in contract.STREAMS
        ]
        if deselected:
            # A stream that follows the rows (focus_costs) is selected for a warehouse only.
            follows = any(c.selected for c in self.child_streams if isinstance(c, RowFollower))
            without_batches = self.get_batch_config(self.config) is None
            for_a_warehouse = follows or (
                deselected == [contract.MONTH_LAYOUTS] and without_batches
            )
            self.logger.log(
                logging.INFO if for_a_warehouse else logging.WARNING,
                "deselected: %s (meltano select, or the catalog); target-pelanor needs %s "
                "and uploads nothing without them; a warehouse load may leave out %s",
                ", ".join(deselected),
                ", ".join(contract.STREAMS),
                contract.MONTH_LAYOUTS,
            )
        for child in self.child_streams:
            if child.selected:
                child._write_schema_message()  # the SDK's own writer

    def _month_records(self) -> Iterator[Iterator[dict[str, Any]]]:
        """Each month's records, passed through the selected streams that follow them
        (:class:`RowFollower`: focus_costs); as they are when none is selected."""
        followers = [c for c in self.child_streams if c.selected and isinstance(c, RowFollower)]
        try:
            for month, rows, tally in self._months():
                records = self._records_of(month, rows, tally)
                for follower in followers:
                    records = follower.follow(records)
                yield records
        finally:
            for follower in followers:
                follower.finish()

    def _months(self) -> Iterator[tuple[Draft | MonthPlan, Iterator[Row], MonthTally]]:
        """Each month's rows to write, after its layout record; seals go out in between.

        First the drafts, while the exports are validated; then, every export having
        passed, each changed month is sealed: a draft that matches its plan as it is, any
        other month after its rows are read again from the plan. This generator is resumed
        only once the rows it handed out were written, so a seal never overtakes its rows.
        A month withheld (an export saved before its day ended) is not sealed, and once the
        others are, the run ends with one line for it and exit status 1.
        """
        today = self.today()
        started, sendings = self.run_started(), itertools.count(1)
        with self._work_dir() as work_dir, self._witness() as witness:
            reading = self._reading(today, work_dir)
            tallies: dict[str, MonthTally] = {}
            counting = witness is not None  # each day's total, to compare with the API
            for draft, rows in reading.validate():
                version = contract.month_version(started, next(sendings))
                tallies[draft.month] = tally = MonthTally(version, days={} if counting else None)
                self._open(draft, version)
                yield draft, rows, tally
            try:
                plans, withheld = changed_months(reading, self.logger)
            except InputProblems as problems:
                self._stop(problems.problems)
            if reading.known is not None:
                # Every file passed: remember what each holds, so the next run need not read it.
                known = reading.known.records_of(reading.scans, reading.trusted.values())
                self.stream_state["files"] = known
            unsealed: list[Exception] = []
            checked: list[str] = []
            for number, plan in enumerate(plans):
                reported = None
                if witness is not None:
                    try:
                        reported = witness.day_totals(plan.days)
                    except OpenAIAPIError as error:
                        later = [later.month for later in plans[number + 1 :]]
                        line = cannot_check(plan.month, error, later)
                        unsealed.append(MonthNotSealed(line, plan.organization_id, plan.month))
                        break
                drafted = reading.drafts.get(plan.month)
                if drafted is not None and drafted.matches(plan):
                    tally = tallies[plan.month]  # sealed as sent: the draft's version
                    plan.sent_as(drafted)
                else:
                    # A draft's rows, if any, are replaced, under a new version.
                    version = contract.month_version(started, next(sendings))
                    tally = MonthTally(version, days={} if counting else None)
                    self._open(plan, tally.version)
                    yield plan, self._reread(plan), tally
                if reported is not None:
                    sources = {piece.day.day: piece.scan.path for piece in plan.pieces}
                    problem = disagreement(plan.month, tally.days or {}, reported, sources)
                    if problem:
                        unsealed.append(MonthNotSealed(problem, plan.organization_id, plan.month))
                        continue
                    checked.append(plan.month)
                self._seal(plan, tally, today, reading.api_source, checked=reported is not None)
            if witness is not None:
                witness.notes.say(self.logger)
                if checked:
                    self.logger.info(
                        "check_against_api: %d month(s) agree with the OpenAI Costs API day "
                        "by day and were sealed: %s",
                        len(checked),
                        ", ".join(checked),
                    )
            organization = self.settings.organization_id
            for month, why in withheld.items():
                unsealed.append(MonthNotSealed(str(why), organization, month))
            if unsealed:
                self._stop_after_state(unsealed)

    def today(self) -> date:
        """The current UTC date, read once a run: months are complete up to the day before."""
        return today_utc()

    def run_started(self) -> datetime:
        """When this run started (UTC): the start of every month_version it sends."""
        return datetime.now(timezone.utc)

    def _reading(self, today: date, work_dir: Path) -> ExportReading:
        # Read without creating the stream's bookmark: a run that seals nothing leaves none.
        bookmark = self.tap_state.get("bookmarks", {}).get(self.name, {})
        try:
            return read_exports(self.settings, bookmark, today, work_dir, self.logger)
        except InputProblems as problems:
            self._stop(problems.problems)

    @contextlib.contextmanager
    def _witness(self) -> Iterator[ApiWitness | None]:
        """The Costs API as a witness of the export months (``check_against_api``), or
        None; its connections are closed however the run ends."""
        settings = self.settings
        if not settings.witness_wanted:
            yield None
            return
        with settings.costs_api_client() as client:
            yield ApiWitness(client, settings.organization_id, FieldNotes())

    @contextlib.contextmanager
    def _work_dir(self) -> Iterator[Path]:
        """This run's private working folder (months read from the Costs API): removed on
        every way out; those of killed runs are removed first (see openai_costs.work_folder)."""
        try:
            work = open_work_folder(self.settings.work_dir, self.tap_name)
        except WorkFolderError as problem:
            self._stop([problem])
        try:
            yield work.path
        finally:
            work.cleanup()

    def _stop(self, problems: list[Exception]) -> NoReturn:
        """User errors end the run: one line each, exit status 1, nothing more sealed."""
        writer = self._tap.message_writer
        if isinstance(writer, BufferedMsgSpecWriter):
            writer.flush()  # what was written stays in order, before the exit
        raise TapStopped(problems)

    def _stop_after_state(self, problems: Sequence[Exception]) -> NoReturn:
        """Stop once the state covers what was done (the months sealed, the files
        validated): the SDK writes it after this stream ends, which a stop would skip."""
        self._tap.state_writer.write_state(self.tap_state)
        self._stop(list(problems))

    def _reread(self, plan: MonthPlan) -> Iterator[Row]:
        try:
            yield from plan.rows()
        except ExportError as problem:  # a file changed after it was validated
            self._stop([problem])
        except OSError as exc:  # or went away, or became unreadable
            self._stop([ExportError(exc.filename or plan.month, cannot_read(exc))])

    def _records_of(
        self, month: Draft | MonthPlan, rows: Iterator[Row], tally: MonthTally
    ) -> Iterator[dict[str, Any]]:
        # Runs for every row of a backfill: the tally is counted in locals, and the fields
        # of a row's month and day are worked out once and merged in.
        at = _positions(month.layout.columns)  # every row comes in the month's layout
        text_at, amount_at, start_at, end_at = at.text, at.amount, at.start, at.end
        month_fields = {
            "organization": month.organization_id,
            "month": month.month,
            "month_version": tally.version,
        }
        days, count, total, add = tally.days, tally.count, tally.total, EXACT.add
        day_key: object = None
        day_fields: dict[str, Any] = {}
        try:
            for row in rows:
                fields, dropped = row.fields, row.dropped
                record: dict[str, Any] = {name: fields[i] or None for name, i in text_at}
                if dropped:  # an API month in fewer columns: its other values still typed
                    record.update(
                        (name, value or None)
                        for name, value in dropped.items()
                        if name in _TEXT_COLUMN_SET
                    )
                    key: object = (row.day, "start_time_iso" in dropped, "end_time_iso" in dropped)
                else:
                    key = row.day
                amount_text = fields[amount_at]
                count += 1
                if amount_text:
                    amount = Decimal(amount_text)
                    total = add(total, amount)
                    record["amount_value"] = (
                        amount_text if _PLAIN_DIGITS(amount_text) else format_decimal(amount)
                    )
                    if days is not None:
                        days[row.day] = add(days.get(row.day, _ZERO), amount)
                else:
                    record["amount_value"] = None
                    if days is not None:
                        days.setdefault(row.day, _ZERO)
                record |= month_fields
                record["row"] = count
                if key != day_key:
                    day_key, extra = key, dropped or _NOTHING
                    day_fields = _day_fields(
                        row.day,
                        int(fields[start_at]),
                        int(fields[end_at]),
                        at.start_iso or "start_time_iso" in extra,
                        at.end_iso or "end_time_iso" in extra,
                    )
                record |= day_fields
                record["csv_row"] = row.text
                yield record
        finally:
            tally.count, tally.total = count, total

    def _open(self, month: Draft | MonthPlan, version: str) -> None:
        """Announce the month's file layout before its first row, so the target can write
        and check the upload file while the rows arrive."""
        opened = MonthOpened(month.organization_id, month.month, version, month.layout)
        self._emit(MonthLayoutsStream, contract.to_record(opened))

    def _emit(self, stream_type: type[_MonthEventStream], record: dict[str, Any]) -> None:
        for child in self.child_streams:
            if isinstance(child, stream_type) and child.selected:
                child.emit(record)

    def _seal(
        self,
        plan: MonthPlan,
        tally: MonthTally,
        today: date,
        api_source: str | None,
        *,
        checked: bool,
    ) -> None:
        missing = missing_days(plan.month, plan.days, today)
        seal = Seal(
            organization=plan.organization_id,
            month=plan.month,
            month_version=tally.version,
            row_count=tally.count,
            total_usd=format_decimal(tally.total),
            days_covered=len(plan.days),
            days_expected=len(full_days(plan.month, today)),
            missing_days=[day.isoformat() for day in missing],
            complete=not missing,
            rows_digest=plan.rows_digest(),
            input_digest=plan.input_digest,
            # A Costs API month names the endpoint, not the run's temporary file (which
            # also tells the target where the month came from: contract.read_from_api).
            source_files=[api_source] if api_source else plan.source_files,
            layout=plan.layout,
        )
        # Bookmarked first, so the STATE written right after the seal already covers the
        # month: the target uploads the sealed month before it confirms that state.
        self.stream_state.setdefault("months", {})[plan.key] = plan.input_digest
        self._emit(MonthSealsStream, contract.to_record(seal))
        self.logger.info(
            "sealed %s %s: %d rows, %s USD, %s%s",
            plan.organization_id,
            plan.month,
            seal.row_count,
            seal.total_usd,
            f"{len(missing)} day(s) missing" if missing else "complete",
            f", checked against the OpenAI Costs API ({len(plan.days)} day(s) agree)"
            if checked
            else "",
            extra={
                "organization": plan.organization_id,
                "month": plan.month,
                "rows": seal.row_count,
                "total_usd": seal.total_usd,
                "status": SEALED,
                "action": SEALED,
                "complete": seal.complete,
                "checked_against_api": checked,
                "files": list(seal.source_files),
            },
        )


class MonthNotSealed(Exception):
    """A month kept from its seal (by check_against_api, or an export saved before a day of
    it ended); the message is the whole line, ``log_fields`` its structured log fields."""

    def __init__(self, line: str, organization: str, month: str) -> None:
        super().__init__(line)
        self.log_fields = {
            "organization": organization,
            "month": month,
            "status": WITHHELD,
            "reason": line,
        }


class _SilentTimer(metrics.Timer):
    """A timer that reports nothing."""

    def __exit__(self, *exc_info: object) -> None:
        return None


_LAYOUT = th.ObjectType(
    th.Property("columns", th.ArrayType(th.StringType)),
    th.Property("header", th.StringType),
    th.Property("line_terminator", th.StringType),
    th.Property("bom", th.BooleanType),
    th.Property("final_newline", th.BooleanType),
)


class _MonthEventStream(_IncrementalInCatalog):
    """A record about a whole month, written by the ``costs`` stream at the right moment."""

    replication_key = None
    parent_stream_type = CostsStream
    state_partitioning_keys: list[str] = []  # noqa: RUF012  # one bookmark, not one per month
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def log(self, message: str, *args: Any, level: int = logging.INFO, **kwargs: Any) -> None:
        """Written once per month: the SDK's line about starting a sync would repeat for
        every month (and call it "full_table"), so it is kept to debug level."""
        if message.startswith(_SDK_SYNC_START):
            level = logging.DEBUG
        super().log(message, *args, level=level, **kwargs)

    _pending: dict[str, Any] | None = None

    def get_sync_timer(self) -> metrics.Timer:
        """No ``sync_duration`` metric: each record is written by a sync of its own, whose
        duration measures nothing a person can use (``record_count`` still counts them)."""
        return _SilentTimer(metrics.Metric.SYNC_DURATION, {metrics.Tag.STREAM: self.name})

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


class RowFollower(_MonthEventStream):
    """A stream written from the ``costs`` records as they go out, before their month's
    seal (focus_costs): when selected, :meth:`follow` wraps each month's records."""

    def follow(self, records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The same records, in order; writes this stream's own records on the way."""
        raise NotImplementedError

    def finish(self) -> None:
        """The run's records are all out (however it ends)."""


class MonthLayoutsStream(_MonthEventStream):
    """Written right before a month's first row: how its upload file is laid out."""

    name = contract.MONTH_LAYOUTS
    primary_keys = ("organization", "month", "month_version")
    schema = th.PropertiesList(
        th.Property("organization", th.StringType, required=True),
        th.Property("month", _MONTH, required=True),
        th.Property("month_version", th.StringType, required=True),
        th.Property("layout", _LAYOUT, required=True),
    ).to_dict()


class MonthSealsStream(_MonthEventStream):
    """Written right after a month's last row: the target uploads sealed months only."""

    name = contract.MONTH_SEALS
    # One seal per month in an upserting loader: a later seal replaces the earlier one.
    # Append-only loaders keep them all; the latest (highest month_version) is current.
    primary_keys = ("organization", "month")
    schema = th.PropertiesList(
        th.Property("organization", th.StringType, required=True),
        th.Property("month", _MONTH, required=True),
        th.Property(
            "month_version",
            th.StringType,
            required=True,
            description="The version of the rows sealed; sorts in the order sent",
        ),
        th.Property("row_count", th.IntegerType, required=True),
        th.Property(
            "total_usd",
            ExactDecimalType,
            required=True,
            description="Exact decimal text (x-singer.decimal): the sum of amount_value",
        ),
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
