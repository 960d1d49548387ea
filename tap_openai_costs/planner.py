"""Turn a pile of overlapping exports into whole months, before any month is sealed.

People export a mid-month file, then the full month, sometimes a quarter at once. For each
UTC day the newest export wins (newest by the last day it covers, then by modification
time), and each month is built from its days in order, in the newest export's layout (or,
for months read from the Costs API, in the layout configured for them: ``api_layout``).
Where two exports disagree on a day, which one won is recorded, to be said in one warning
line per pair of files (:func:`which_copy_wins`). An export saved (last modified) before a
day it covers had ended cannot hold that day whole: a month built from such a day is not
sealed (:func:`unfinished`).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import itertools
import json
import operator
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from openai_costs.contract import state_key
from openai_costs.export import (
    DaySlice,
    ExportError,
    ExportScan,
    Layout,
    Row,
    RowsDigest,
    describe_days,
    month_of,
    peek_layout,
    read_rows,
    render_fields,
    rows_digest_update,
    scan_rows,
    unix_of,
)
from tap_openai_costs.known_exports import KnownExports
from tap_openai_costs.paths import ExportErrors, cannot_read
from tap_openai_costs.progress import ReadProgress

UTC = timezone.utc  # datetime.UTC needs Python 3.11


@dataclass(frozen=True)
class Piece:
    """One day of a month, and the export it is taken from."""

    scan: ExportScan
    day: DaySlice


@dataclass(frozen=True)
class Overruled:
    """A day two exports both cover with different rows: the winner's rows are used."""

    day: date
    winner: ExportScan
    loser: ExportScan


@dataclass
class MonthPlan:
    """One (organization, month): its days in order, each from the export that wins it."""

    organization_id: str
    month: str
    layout: Layout
    pieces: list[Piece] = field(default_factory=list)
    #: Days another export also covers, with other rows: which copy won them.
    overruled: list[Overruled] = field(default_factory=list)
    #: Digests of days put into this layout by :meth:`rows`, as they were sent.
    _converted: dict[date, str] = field(default_factory=dict, init=False, repr=False)

    @property
    def key(self) -> str:
        return state_key(self.organization_id, self.month)

    @property
    def days(self) -> list[date]:
        return [piece.day.day for piece in self.pieces]

    @property
    def source_files(self) -> list[str]:
        return sorted({piece.scan.path for piece in self.pieces})

    @property
    def input_digest(self) -> str:
        """Changes exactly when the bytes this month would be built from change."""
        digest = hashlib.sha256(json.dumps(self.layout.to_dict(), sort_keys=True).encode())
        for piece in self.pieces:
            digest.update(
                f"{piece.day.day}|{piece.scan.layout.header}|{piece.day.hexdigest}\n".encode()
            )
        return digest.hexdigest()

    def rows(self) -> Iterator[Row]:
        """The month's rows in day order, each as text in the month's layout."""
        for piece in self.pieces:
            rows = read_rows(piece.scan, piece.day)
            if piece.scan.layout.columns == self.layout.columns:
                yield from rows
            else:
                yield from converted_rows(rows, self.layout, self._converted)

    def sent_as(self, draft: Draft) -> None:
        """This month's rows went out as ``draft``'s: the days it put into the month's
        layout count as sent with the digests they had then."""
        self._converted.update(draft.converted)

    def rows_digest(self) -> str:
        """The seal's digest of the rows sent, from the scan's day digests: rows re-read by
        :meth:`rows` were checked against them, and a draft's rows are the scan's own.
        Days put into another layout count as sent, so :meth:`rows` must have run."""
        digest = RowsDigest()
        for piece in self.pieces:
            day = piece.day.day
            converted = piece.scan.layout.columns != self.layout.columns
            digest.add_day(
                day.isoformat(), self._converted[day] if converted else piece.day.hexdigest
            )
        return digest.hexdigest()


def converted_rows(rows: Iterable[Row], layout: Layout, digests: dict[date, str]) -> Iterator[Row]:
    """``rows`` put into ``layout`` (:func:`in_layout`); each day's digest of the rows as
    put, for the seal, lands in ``digests`` once the day's last row was handed on."""
    day: date | None = None
    digest = hashlib.sha256()
    for row in rows:
        if row.day != day:
            if day is not None:
                digests[day] = digest.hexdigest()
            day, digest = row.day, hashlib.sha256()
        converted = in_layout(row, layout)
        rows_digest_update(digest, converted.text)
        yield converted
    if day is not None:
        digests[day] = digest.hexdigest()


def in_layout(row: Row, layout: Layout) -> Row:
    """A row of another layout in ``layout``: its text and fields; the values of the
    columns ``layout`` lacks, if any, are kept aside (``Row.dropped``)."""
    kept, dropped = _mapping(row.columns, layout.columns)
    source = row.fields
    fields = [source[i] if i is not None else "" for i in kept]
    aside = {column: source[i] for column, i in dropped} or None
    return Row(row.day, render_fields(fields), fields, layout.columns, aside)


@functools.cache
def _mapping(
    source: tuple[str, ...], target: tuple[str, ...]
) -> tuple[tuple[int | None, ...], tuple[tuple[str, int], ...]]:
    """Where each target column sits in the source (None: absent), and the source
    columns the target lacks."""
    at = {column: i for i, column in enumerate(source)}
    return (
        tuple(at.get(column) for column in target),
        tuple((column, i) for column, i in at.items() if column not in target),
    )


@dataclass(frozen=True)
class Draft:
    """A month whose rows are passed on while its export is still being validated.

    Nothing vouches for a draft: it is sealed only once every export has passed, and only
    if the month's plan turns out to be exactly what was drafted.
    """

    organization_id: str
    month: str
    layout: Layout
    path: str
    #: The export's own layout, when its rows are put into ``layout`` as they pass (a
    #: Costs API month sent in fewer columns); None when it is ``layout``.
    source_layout: Layout | None = None
    #: Digests of the days put into ``layout``, as sent (:func:`converted_rows`).
    converted: dict[date, str] = field(default_factory=dict, compare=False)

    def matches(self, plan: MonthPlan) -> bool:
        """Every day of the plan comes from the drafted export, in the drafted layout."""
        return plan.layout == self.layout and all(p.scan.path == self.path for p in plan.pieces)


class ExportReading:
    """One run over the exports: every changed file validated, then every month planned.

    Files unchanged since an earlier run (``known``) are not read: what they contribute
    comes from state. A month never delivered before (no bookmark, so a backfill) is
    drafted: its rows go out while its export is being validated, so the target works
    alongside the tap instead of waiting for a validation pass. Other months, the daily
    run's, are re-read after planning, and only if their inputs changed.
    """

    def __init__(
        self,
        paths: list[Path],
        organization_id: str,
        start_month: str | None,
        delivered: Mapping[str, str],
        today: date,
        known: KnownExports | None = None,
        progress: ReadProgress | None = None,
        layout: Layout | None = None,
        api_source: str | None = None,
    ) -> None:
        self.organization_id = organization_id
        #: The layout every month is written in, whatever its files' (Costs API months:
        #: the files hold every column, the upload the configured ones); None: the newest
        #: export's.
        self.layout = layout
        #: Where the files were read from when they are Costs API months (the endpoint's
        #: URL, which the seals name instead of the run's temporary files); None for exports.
        self.api_source = api_source
        self.start_month = start_month
        self.delivered = delivered
        self.today = today
        #: Logs each file read and its progress; none by default.
        self.progress = progress
        self.known = known
        #: The files to validate, and the scans (from state) of the unchanged ones.
        self.paths, self.trusted = known.sort(paths) if known is not None else (paths, {})
        self.scans: list[ExportScan] = []
        self.problems: list[ExportError] = []
        self.drafts: dict[str, Draft] = {}
        self._seen: set[str] = set()

    @property
    def all_scans(self) -> list[ExportScan]:
        """Every file of the run: validated now, or unchanged since it was."""
        return [*self.scans, *self.trusted.values()]

    def validate(self) -> Iterator[tuple[Draft, Iterator[Row]]]:
        """Scan every export to validate in turn; yield each draft with its rows, which
        must be consumed before the next draft is asked for. Problems are kept for
        :meth:`plans`."""
        for path in self.paths:
            for month, rows in by_month(self._scan(path)):
                draft = self._draft(month, path)
                if draft is None:
                    collections.deque(rows, maxlen=0)  # validated, not passed on
                elif draft.source_layout is None:
                    yield draft, rows
                else:
                    yield draft, converted_rows(rows, draft.layout, draft.converted)

    def plans(self) -> list[MonthPlan]:
        """Every month, once every export has passed; raises ExportErrors otherwise.

        An unchanged file that a changed month will be re-read from is hashed first; if it
        did change after all, it is validated in full and the months are planned again.
        """
        while True:
            if self.problems:
                raise ExportErrors(self.problems)
            try:
                plans = plan_months(
                    self.all_scans, self.organization_id, self.start_month, self.layout
                )
            except ExportError as problem:
                raise ExportErrors([problem]) from None
            stale = self._stale(plans)
            if not stale:
                return plans
            for path in stale:
                del self.trusted[path]
                collections.deque(self._scan(Path(path)), maxlen=0)

    def changed(self, plans: list[MonthPlan]) -> list[MonthPlan]:
        """The months whose inputs differ from what was delivered (or never were)."""
        return [plan for plan in plans if self.delivered.get(plan.key) != plan.input_digest]

    def _stale(self, plans: list[MonthPlan]) -> list[str]:
        """Unchanged files that changed months re-read, whose bytes are no longer the same."""
        if self.known is None:
            return []
        to_reread = {
            piece.scan.path: piece.scan
            for plan in self.changed(plans)
            for piece in plan.pieces
            if piece.scan.path in self.trusted
        }
        return [path for path, scan in to_reread.items() if not self.known.still_same(scan)]

    def _scan(self, path: Path) -> Iterator[Row]:
        """The export's rows as they pass; its problem, if any, is kept rather than raised,
        so that every bad file is reported."""
        try:
            watch = self.progress.reading(path) if self.progress else None
            scan = yield from scan_rows(
                path, self.organization_id, self.today, watch.rows if watch else None
            )
            if watch:
                watch.done(sum(day.rows for day in scan.days))
            self.scans.append(scan)
        except ExportError as problem:
            self.problems.append(problem)
        except OSError as exc:
            self.problems.append(ExportError(str(path), cannot_read(exc)))

    def _draft(self, month: str, path: Path) -> Draft | None:
        """A draft for the first export holding a month never delivered, else None (also
        once a file has failed: nothing will be sealed, so there is nothing to send)."""
        first_seen = month not in self._seen
        self._seen.add(month)
        key = state_key(self.organization_id, month)
        if not first_seen or key in self.delivered or month < (self.start_month or ""):
            return None
        if self.problems:
            return None
        try:
            layout = peek_layout(path)
        except (ExportError, OSError):
            return None  # the scan reports the problem
        source = None
        if self.layout is not None and self.layout != layout:
            layout, source = self.layout, layout  # its rows go out put into self.layout
        draft = Draft(self.organization_id, month, layout, str(path), source)
        self.drafts[month] = draft
        return draft


def by_month(rows: Iterable[Row]) -> Iterator[tuple[str, Iterator[Row]]]:
    """Runs of rows of one month, each with its month. Grouped by day first, then the
    days by month: no Python code runs per row, which a backfill would pay for every row."""
    days = itertools.groupby(rows, key=operator.itemgetter(0))  # Row.day
    for month, month_days in itertools.groupby(days, key=lambda run: month_of(run[0])):
        yield month, itertools.chain.from_iterable(map(operator.itemgetter(1), month_days))


def plan_months(
    scans: list[ExportScan],
    organization_id: str,
    start_month: str | None = None,
    layout: Layout | None = None,
) -> list[MonthPlan]:
    """Pick the newest export for every day and group the days into months, each in the
    newest export's layout, or in ``layout`` when given (columns it lacks are dropped on
    purpose then, so not refused)."""
    newest_first = sorted(
        scans, key=lambda s: (s.last_day or date.min, s.mtime_ns, s.path), reverse=True
    )
    winners: dict[date, Piece] = {}
    overruled: list[Overruled] = []
    for scan in newest_first:
        for day_slice in scan.days:
            winner = winners.setdefault(day_slice.day, Piece(scan, day_slice))
            if winner.scan is not scan and winner.day.hexdigest != day_slice.hexdigest:
                overruled.append(Overruled(day_slice.day, winner.scan, scan))
    months: dict[str, MonthPlan] = {}
    for day in sorted(winners):
        month = month_of(day)
        if start_month and month < start_month:
            continue
        piece = winners[day]
        if month not in months:
            newest = next(s for s in newest_first if any(month_of(d.day) == month for d in s.days))
            months[month] = MonthPlan(organization_id, month, layout or newest.layout)
        months[month].pieces.append(piece)
    for lost in overruled:
        if plan := months.get(month_of(lost.day)):
            plan.overruled.append(lost)
    if layout is None:
        for plan in months.values():
            _check_mergeable(plan)
    return list(months.values())


def which_copy_wins(overruled: Iterable[Overruled]) -> list[str]:
    """One line per pair of exports that cover the same days with different rows: which
    one is used for those days, and why (newest by range, then by modification time).

    A copy of an old export (``cp`` gives it a new modification time) can win this way,
    so it is said out loud rather than merged in silence.
    """
    pairs: dict[tuple[str, str], list[Overruled]] = {}
    for lost in overruled:
        pairs.setdefault((lost.winner.path, lost.loser.path), []).append(lost)
    lines = []
    for (winner_path, loser_path), losses in pairs.items():
        winner, loser = losses[0].winner, losses[0].loser
        days = sorted({lost.day for lost in losses})
        lines.append(
            f"{winner_path} and {loser_path} both cover {describe_days(days)} with different "
            f"rows; using {winner_path} for {'that day' if len(days) == 1 else 'those days'}: "
            f"{_why_newer(winner, loser)}"
        )
    return lines


def _why_newer(winner: ExportScan, loser: ExportScan) -> str:
    if winner.last_day != loser.last_day:
        return (
            f"it is newer by range (it covers up to {winner.last_day}, the other up to "
            f"{loser.last_day})"
        )
    if winner.mtime_ns != loser.mtime_ns:
        return (
            f"both cover up to {winner.last_day} and it was modified later "
            f"({_utc(winner.mtime_ns)}, the other {_utc(loser.mtime_ns)})"
        )
    return (
        f"both cover up to {winner.last_day} and were modified at the same time, so the "
        "later file name wins"
    )


def unfinished(plan: MonthPlan) -> ExportError | None:
    """The export a month takes a day from, if it was saved before that day ended: its
    rows of the day stop where the export did, and nothing later would correct them."""
    for piece in plan.pieces:
        day = piece.day.day
        if piece.scan.mtime_ns < unix_of(day + timedelta(days=1)) * 1_000_000_000:
            return ExportError(
                piece.scan.path,
                f"was saved at {_utc(piece.scan.mtime_ns)}, before {day} ended, so it cannot "
                f"hold that day whole; {plan.month} is not sealed: export it again (after "
                "00:00 UTC)",
            )
    return None


def _utc(mtime_ns: int) -> str:
    return datetime.fromtimestamp(mtime_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _check_mergeable(plan: MonthPlan) -> None:
    """Refuse to merge an older layout whose extra columns the newest one would drop."""
    for scan in {piece.scan.path: piece.scan for piece in plan.pieces}.values():
        dropped = [c for c in scan.layout.columns if c not in plan.layout.columns]
        if dropped:
            raise ExportError(
                scan.path,
                f"has column(s) {', '.join(dropped)} that the newer export of {plan.month} "
                "lacks, so the two cannot be merged; export the whole month again in one file",
            )
