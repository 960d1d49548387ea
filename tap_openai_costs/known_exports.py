"""Export files seen by earlier runs, remembered in state, so a run reads only what changed.

A file that passed validation is remembered by its identity (size, modification time, the
SHA-256 of its bytes) and by what it contributes: its layout and, per UTC day, where the
day's rows sit and their digest. That is all planning needs, so an unchanged file is not
opened. Rules:

- same size and modification time: unchanged, not read; every ``CONTENT_CHECK_DAYS`` its
  bytes are hashed anyway, to catch an edit that kept both;
- same size, new modification time: hashed; same digest (a copy, a ``touch``): unchanged;
- anything else, or no record: validated in full again, like a new file; so is a file
  recorded for another organization or under other export rules (``RULES_VERSION``).

Files that will be re-read to build a changed month are hashed first (the planner asks),
so a file is never re-read on the strength of an old record. State is strings only
(bookmarks.costs.files: path -> record); a record that cannot be read is forgotten and
its file validated again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import msgspec

from openai_costs.export import DaySlice, ExportScan, Layout, file_sha256

#: How often an unchanged file's bytes are hashed anyway. Editors, downloads and copies
#: all set a new modification time, so an edit that keeps both size and time is rare (a
#: ``touch -r``, a coarse clock on a network drive); and until it is found nothing wrong is
#: uploaded, since a file re-read for a changed month is hashed first. Weekly, each file
#: costs one read of its bytes a week (about 2% of its first validation, so about 0.3% of
#: a backfill a day) and such an edit is found within the week.
CONTENT_CHECK_DAYS = 7
#: Which validation a record vouches for: raise it whenever the export rules get stricter,
#: so files recorded under the old rules are validated again.
RULES_VERSION = "2"


@dataclass
class KnownExports:
    """This run's view of the files remembered in state: which to validate, which to trust."""

    records: Mapping[str, Any]
    #: Rows were validated against this organization: a record made for another is void.
    organization_id: str
    today: date
    logger: logging.Logger
    #: When each trusted file's bytes were last hashed.
    _hashed: dict[str, date] = field(default_factory=dict, init=False)
    #: The trusted files hashed during this run.
    _hashed_now: set[str] = field(default_factory=set, init=False)

    def sort(self, paths: list[Path]) -> tuple[list[Path], dict[str, ExportScan]]:
        """The files to validate, and the scans of those unchanged since they were recorded."""
        to_read: list[Path] = []
        known: dict[str, ExportScan] = {}
        checked = 0
        for path in paths:
            scan, hashed = self._recall(str(path))
            try:
                stat = path.stat()
            except OSError:
                scan = None  # the scan reports why it cannot be read
            if scan is None or stat.st_size != scan.size:
                to_read.append(path)
                continue
            same_time = stat.st_mtime_ns == scan.mtime_ns
            if same_time and 0 <= (self.today - hashed).days < CONTENT_CHECK_DAYS:
                known[scan.path] = scan
                self._hashed[scan.path] = hashed
                continue
            if not self._same_bytes(scan):
                if same_time:
                    self.logger.info(
                        "%s: its content changed although its size and modification time did "
                        "not; validating it again",
                        path,
                    )
                to_read.append(path)
                continue
            if same_time:
                checked += 1
            else:
                self.logger.info(
                    "%s: modified, but its content is the same (SHA-256); not read again", path
                )
                scan.mtime_ns = stat.st_mtime_ns
            known[scan.path] = scan
        if checked:
            self.logger.info(
                "content check (every %d days): %d unchanged file(s) hashed, all the same",
                CONTENT_CHECK_DAYS,
                checked,
            )
        self.logger.info(
            "%d export file(s): %d unchanged since the last run (not read), %d to validate%s",
            len(paths),
            len(known),
            len(to_read),
            f": {', '.join(map(str, to_read))}" if to_read else "",
        )
        return to_read, known

    def still_same(self, scan: ExportScan) -> bool:
        """Whether a trusted file's bytes are still the ones recorded: the planner asks
        before re-reading it. Hashes it, unless that was done this run."""
        if scan.path in self._hashed_now or self._same_bytes(scan):
            return True
        self.logger.info("%s: changed since it was recorded; validating it again", scan.path)
        return False

    def _same_bytes(self, scan: ExportScan) -> bool:
        try:
            same = file_sha256(Path(scan.path)) == scan.sha256
        except OSError:
            return False  # validating it reports why it cannot be read
        if same:
            self._hashed[scan.path] = self.today
            self._hashed_now.add(scan.path)
        return same

    def records_of(
        self, validated: Iterable[ExportScan], trusted: Iterable[ExportScan]
    ) -> dict[str, dict[str, Any]]:
        """The state to keep: this run's files, validated (so hashed) now or trusted."""
        organization = self.organization_id
        records = {scan.path: to_record(scan, organization, self.today) for scan in validated}
        records.update((s.path, to_record(s, organization, self._hashed[s.path])) for s in trusted)
        return dict(sorted(records.items()))

    def _recall(self, path: str) -> tuple[ExportScan | None, date]:
        record = self.records.get(path)
        if record is None:
            return None, self.today
        if not isinstance(record, Mapping) or (
            record.get("organization_id"),
            record.get("rules"),
        ) != (self.organization_id, RULES_VERSION):
            self.logger.info(
                "%s: recorded for another organization or by other export rules; "
                "validating it again",
                path,
            )
            return None, self.today
        try:
            return from_record(path, record)
        except (KeyError, TypeError, ValueError, AttributeError, msgspec.ValidationError):
            self.logger.info("%s: its record in the state is unreadable; validating it again", path)
            return None, self.today


def to_record(scan: ExportScan, organization_id: str, hashed: date) -> dict[str, Any]:
    """A file's record in state, strings only."""
    return {
        "organization_id": organization_id,
        "rules": RULES_VERSION,
        "size": str(scan.size),
        "mtime_ns": str(scan.mtime_ns),
        "sha256": scan.sha256,
        "hashed": hashed.isoformat(),
        "layout": json.dumps(scan.layout.to_dict(), separators=(",", ":")),
        "days": [
            f"{day.day.isoformat()} {day.start} {day.end} {day.rows} {day.hexdigest}"
            for day in scan.days
        ],
    }


def from_record(path: str, record: Mapping[str, Any]) -> tuple[ExportScan, date]:
    """The scan a record stands for, and when its file was last hashed; raises (KeyError,
    ValueError, ...) for a record this version cannot read."""
    days = []
    for text in record["days"]:
        day, start, end, rows, hexdigest = text.split(" ")
        if len(hexdigest) != 64:
            msg = f"not a sha256: {hexdigest!r}"
            raise ValueError(msg)
        days.append(DaySlice(date.fromisoformat(day), int(start), int(end), int(rows), hexdigest))
    layout = Layout.from_dict(json.loads(record["layout"]))
    scan = ExportScan(
        path, layout, int(record["size"]), int(record["mtime_ns"]), record["sha256"], days
    )
    if not isinstance(scan.sha256, str) or len(scan.sha256) != 64:
        msg = "not a sha256"
        raise ValueError(msg)
    return scan, date.fromisoformat(record["hashed"])
