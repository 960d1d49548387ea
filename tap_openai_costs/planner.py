"""Turn a pile of overlapping exports into whole months, before any month is sealed.

People export a mid-month file, then the full month, sometimes a quarter at once. For each
UTC day the newest export wins (newest by the last day it covers, then by modification
time), and each month is built from its days in order, in the newest export's layout.
"""

from __future__ import annotations

import collections
import glob
import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from openai_costs.contract import state_key
from openai_costs.export import (
    DaySlice,
    ExportError,
    ExportScan,
    Layout,
    Row,
    RowsDigest,
    month_of,
    peek_layout,
    read_rows,
    rows_digest_update,
    scan_rows,
)
from tap_openai_costs.known_exports import KnownExports


@dataclass(frozen=True)
class Piece:
    """One day of a month, and the export it is taken from."""

    scan: ExportScan
    day: DaySlice


@dataclass
class MonthPlan:
    """One (organization, month): its days in order, each from the export that wins it."""

    organization_id: str
    month: str
    layout: Layout
    pieces: list[Piece] = field(default_factory=list)
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
                continue
            digest = hashlib.sha256()
            for row in map(self._in_layout, rows):
                rows_digest_update(digest, row.text)
                yield row
            self._converted[piece.day.day] = digest.hexdigest()

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

    def _in_layout(self, row: Row) -> Row:
        values = row.values
        fields = [values.get(column, "") for column in self.layout.columns]
        return Row(row.day, self.layout.render(values), fields, self.layout.columns)


def expand_paths(patterns: list[str]) -> list[Path]:
    """Files, directories (their ``*.csv``) and glob patterns, each required to match."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            matches = sorted(path.glob("*.csv"))
        elif path.is_file():
            matches = [path]
        else:
            # Path.glob cannot take an absolute pattern; glob.glob can.
            matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]  # noqa: PTH207
        if not matches:
            raise ExportError(
                pattern, "matches no export file; check the paths setting (files, folders, globs)"
            )
        found.update(dict.fromkeys(m for m in matches if m.is_file()))
    return list(found)


class ExportErrors(Exception):
    """Every problem found in the inputs, reported together before any month is sealed."""

    def __init__(self, problems: list[ExportError]) -> None:
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


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
        known: KnownExports | None = None,
    ) -> None:
        self.organization_id = organization_id
        self.start_month = start_month
        self.delivered = delivered
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
            month_runs = itertools.groupby(self._scan(path), key=lambda row: month_of(row.day))
            for month, rows in month_runs:
                draft = self._draft(month, path)
                if draft is None:
                    collections.deque(rows, maxlen=0)  # validated, not passed on
                else:
                    yield draft, rows

    def plans(self) -> list[MonthPlan]:
        """Every month, once every export has passed; raises ExportErrors otherwise.

        An unchanged file that a changed month will be re-read from is hashed first; if it
        did change after all, it is validated in full and the months are planned again.
        """
        while True:
            if self.problems:
                raise ExportErrors(self.problems)
            try:
                plans = plan_months(self.all_scans, self.organization_id, self.start_month)
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
            self.scans.append((yield from scan_rows(path, self.organization_id)))
        except ExportError as problem:
            self.problems.append(problem)
        except OSError as exc:
            self.problems.append(ExportError(str(path), f"cannot be read ({exc.strerror})"))

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
        draft = self.drafts[month] = Draft(self.organization_id, month, layout, str(path))
        return draft


def plan_months(
    scans: list[ExportScan], organization_id: str, start_month: str | None = None
) -> list[MonthPlan]:
    """Pick the newest export for every day and group the days into months."""
    newest_first = sorted(
        scans, key=lambda s: (s.last_day or date.min, s.mtime_ns, s.path), reverse=True
    )
    winners: dict[date, Piece] = {}
    for scan in newest_first:
        for day_slice in scan.days:
            winners.setdefault(day_slice.day, Piece(scan, day_slice))
    months: dict[str, MonthPlan] = {}
    for day in sorted(winners):
        month = month_of(day)
        if start_month and month < start_month:
            continue
        piece = winners[day]
        if month not in months:
            newest = next(s for s in newest_first if any(month_of(d.day) == month for d in s.days))
            months[month] = MonthPlan(organization_id, month, newest.layout)
        months[month].pieces.append(piece)
    for plan in months.values():
        _check_mergeable(plan)
    return list(months.values())


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
