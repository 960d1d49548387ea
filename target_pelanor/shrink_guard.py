"""The shrink guard: never replace a month in Pelanor with a smaller copy of it.

An upload replaces the whole month, so a download cut at a line ending, an old copy of an
export that won the merge, or any other partial file would silently erase data. The
target remembers what it last uploaded per month, in its state (:class:`UploadMemory`)
and on this machine (:mod:`target_pelanor.upload_records`), and refuses a month with fewer
days, fewer rows, or a total lower by more than the tolerance, unless the month is listed
in ``allow_shrinking_months``.

It fails closed: a record it cannot read (a number where text belongs, a list instead of a
map, a total that is not plain decimal text or larger than its rows can add up to) stops
that month with one line naming the record and how to repair or override it. A figure read
back never reaches arithmetic before it is checked, so none can crash the guard.

The tolerance is 0.5% of the total uploaded before, at least $0.01. OpenAI restates recent
days by small amounts (late usage, rounding of the float-repr amounts its exports carry),
so a slightly lower total is normal; a copy missing data is not caught by the total alone
anyway (it loses days or rows). What the total catches is an early copy of a month with
every row present but the last day's amounts not final: one day is about 3% of a month,
far above 0.5%. The $0.01 floor keeps a tiny month from being
refused over a rounding difference.

State values are ints and text only: the SDK cannot write a Decimal in a STATE.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from openai_costs.contract import TARGET_BOOKMARK, describe_kind
from openai_costs.export import AMOUNT_LIMIT, EXACT, format_decimal, format_limit
from target_pelanor.destination import Destination, same_destination

__all__ = [
    "TOLERANCE_MINIMUM",
    "TOLERANCE_SHARE",
    "Remembered",
    "UnreadableRecord",
    "UploadMemory",
    "Uploaded",
    "read_record",
    "refusal",
]

logger = logging.getLogger(__name__)

UTC = timezone.utc  # datetime.UTC needs Python 3.11

TOLERANCE_SHARE = Decimal("0.005")
TOLERANCE_MINIMUM = Decimal("0.01")
_UPLOADED = "uploaded"
#: Where the records sit in the state, for messages.
STATE_PLACE = f"bookmarks.{TARGET_BOOKMARK}.{_UPLOADED}"
#: More rows than any month holds; keeps every figure the guard works with small enough
#: for exact arithmetic (a total is at most AMOUNT_LIMIT a row).
_MAX_ROWS = 10**9
#: A total as the target writes it (``format_decimal``): plain digits, no exponent.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
#: Longest total text read back (the exact sum of a month has at most about 4,000 digits).
_MAX_TOTAL_TEXT = 4100


class UnreadableRecord(Exception):
    """An upload record that cannot be read; ``str()`` is the one line for the month."""


@dataclass(frozen=True)
class Uploaded:
    """What one upload of a month held."""

    rows: int
    days: int
    total: Decimal
    rows_digest: str

    def to_state(self) -> dict[str, int | str]:
        return {
            "rows": self.rows,
            "days": self.days,
            "total_usd": format_decimal(self.total),
            "rows_digest": self.rows_digest,
        }

    def describe(self) -> str:
        return f"{self.rows} rows, {self.days} days, {format_decimal(self.total)} USD"


@dataclass(frozen=True)
class Remembered:
    """A record of an upload: what it held, which Pelanor it went to (its base URL, for
    people, and its destination, :mod:`target_pelanor.destination`) and when (unknown in
    records of earlier versions), and where the record was kept (for messages)."""

    uploaded: Uploaded
    where: str
    endpoint: str | None = None
    at: datetime | None = None
    destination: str | None = None

    def to_state(self) -> dict[str, int | str]:
        record = self.uploaded.to_state()
        if self.endpoint is not None:
            record["endpoint"] = self.endpoint
        if self.destination is not None:
            record["destination"] = self.destination
        if self.at is not None:
            record["uploaded_at"] = self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return record

    def speaks_of(self, destination: Destination | None) -> bool:
        """Whether this is a record of ``destination`` (when unsure, it is)."""
        return same_destination(self.destination, self.endpoint, destination)

    def origin(self) -> str:
        """``uploaded to https://api.pelanor.io at 2025-11-03 06:30:00 UTC, remembered in
        the state``."""
        where = f"remembered in {self.where}"
        if self.endpoint is None and self.at is None:
            return f"{where}, by an earlier version that did not note where or when"
        to = f" to {self.endpoint}" if self.endpoint else ""
        when = f" at {self.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if self.at else ""
        return f"uploaded{to}{when}, {where}"


def read_record(value: object, where: str) -> Remembered:
    """A record as the target writes it (state or this machine's file); raises
    :class:`UnreadableRecord` with the reason (a phrase) for anything else."""
    if not isinstance(value, dict):
        raise UnreadableRecord(f"it is {describe_kind(value)}, not a map")
    rows, days = (_count(value, key) for key in ("rows", "days"))
    total_text = value.get("total_usd")
    if not isinstance(total_text, str):
        raise UnreadableRecord(f"total_usd is {_shown(total_text)}, not decimal text")
    if len(total_text) > _MAX_TOTAL_TEXT or not _PLAIN_DECIMAL.fullmatch(total_text):
        raise UnreadableRecord(f"total_usd {_shown(total_text)} is not plain decimal text")
    total = Decimal(total_text)
    if total.copy_abs() > AMOUNT_LIMIT * max(rows, 1):
        raise UnreadableRecord(
            f"total_usd {_shown(total_text)} is more than {rows} row(s) can add up to"
        )
    digest = value.get("rows_digest")
    if not isinstance(digest, str):
        raise UnreadableRecord(f"rows_digest is {_shown(digest)}, not text")
    endpoint, destination = value.get("endpoint"), value.get("destination")
    for name, text in (("endpoint", endpoint), ("destination", destination)):
        if text is not None and not isinstance(text, str):
            raise UnreadableRecord(f"{name} is {_shown(text)}, not text")
    return Remembered(
        Uploaded(rows, days, total, digest),
        where,
        endpoint,
        _instant(value.get("uploaded_at")),
        destination,
    )


def _count(record: dict[str, Any], key: str) -> int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ROWS:
        raise UnreadableRecord(f"{key} is {_shown(value)}, not a whole number of {key}")
    return value


def _instant(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        # Python 3.10 reads no "Z", 3.11 does.
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise UnreadableRecord(f"uploaded_at is {_shown(value)}, not an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _shown(value: object) -> str:
    """A value read back, short, as JSON shows it (the target reads numbers as Decimal)."""
    if isinstance(value, Decimal):
        text = str(value)
        return text if len(text) <= 40 else text[:37] + "..."
    try:
        text = json.dumps(value, default=str)
    except ValueError:  # NaN from a lenient parser
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def tolerance(before: Uploaded) -> Decimal:
    """How much lower a total may be than the one uploaded before (exactly)."""
    return max(EXACT.multiply(before.total.copy_abs(), TOLERANCE_SHARE), TOLERANCE_MINIMUM)


def refusal(before: Remembered, now: Uploaded, month: str, *, from_api: bool = False) -> str | None:
    """Why ``now`` must not replace the copy ``before`` describes in Pelanor; None if it
    may. Rows that grew while the total fell (a credit booked) are said so.

    ``from_api``: the month was read from OpenAI's Costs API, so a smaller copy is OpenAI
    restating it lower, not a cut download: the message says so and how to allow it.
    """
    was = before.uploaded
    reasons = []
    if now.days < was.days:
        reasons.append(f"{was.days - now.days} fewer day(s)")
    if now.rows < was.rows:
        reasons.append(f"{was.rows - now.rows} fewer row(s)")
    allowed = tolerance(was)
    less = EXACT.subtract(was.total, now.total)
    lower = less > allowed
    if lower:
        reasons.append(
            f"{format_decimal(less)} USD less, more than the {format_limit(allowed)} USD tolerance"
        )
    if not reasons:
        return None
    compared = (
        f"is smaller than the copy {before.origin()}: {now.describe()} against "
        f"{was.describe()} ({', '.join(reasons)})"
    )
    if from_api:
        return (
            f"{compared}; OpenAI's Costs API now reports this month lower than when it was "
            "uploaded (OpenAI restated it). If the lower figures are right, list "
            f"{month} in allow_shrinking_months to upload it"
        )
    if lower and now.rows > was.rows and now.days >= was.days:
        return (
            f"{compared}, although it has {now.rows - was.rows} more row(s): a credit or "
            "refund (a negative amount) lowers the total; if OpenAI booked one, list "
            f"{month} in allow_shrinking_months to upload it, otherwise export the whole "
            "month again"
        )
    return (
        f"{compared}; a cut download or an older export? Export the whole month again, or "
        f"list {month} in allow_shrinking_months to replace it anyway"
    )


class UploadMemory:
    """What was uploaded per state key: learnt from the state the tap passes on, and
    updated as Pelanor accepts months in this run. Records it cannot read are kept as they
    came (written back unchanged) and make :meth:`recall` fail for their month."""

    def __init__(self) -> None:
        self.entries: dict[str, Remembered] = {}
        #: Records that cannot be read: why, and the value as it came.
        self.unreadable: dict[str, tuple[str, object]] = {}
        #: Why no record at all can be read (the records are not a map), if so.
        self.broken: str | None = None
        self._this_run: set[str] = set()

    def learn(self, state: dict[str, Any]) -> None:
        """Take the records of a state the tap passed on (this run's uploads win). The
        state's own shape (maps where maps belong) is the caller's to check."""
        bookmarks = state.get("bookmarks")
        bookmark = bookmarks.get(TARGET_BOOKMARK) if isinstance(bookmarks, dict) else None
        records = bookmark.get(_UPLOADED) if isinstance(bookmark, dict) else None
        if records is None:
            return
        if not isinstance(records, dict):
            self.broken = f"{STATE_PLACE} is {describe_kind(records)}, not a map of upload records"
            return
        self.broken = None
        for key, value in records.items():
            if key in self._this_run:
                continue
            try:
                self.entries[key] = read_record(value, "the state")
            except UnreadableRecord as problem:
                logger.warning("The state's upload record of %s cannot be read: %s", key, problem)
                self.entries.pop(key, None)
                self.unreadable[key] = (str(problem), copy.deepcopy(value))
            else:
                self.unreadable.pop(key, None)

    def recall(self, key: str, month: str, destination: Destination | None) -> Remembered | None:
        """The state's record of ``key`` for this destination (a record of another
        Pelanor or integration says nothing about this one); raises
        :class:`UnreadableRecord` (the month's one line) when it cannot be read."""
        fix = (
            "repair or remove it (meltano state get, then meltano state set), or list "
            f"{month} in allow_shrinking_months to upload it anyway"
        )
        if self.broken is not None and key not in self._this_run:
            raise UnreadableRecord(
                f"the upload records in the state cannot be read: {self.broken}; {fix}"
            )
        if key in self.unreadable:
            raise UnreadableRecord(
                f"the upload record of {key} in the state ({STATE_PLACE}) cannot be read: "
                f"{self.unreadable[key][0]}; {fix}"
            )
        remembered = self.entries.get(key)
        if remembered is None or not remembered.speaks_of(destination):
            return None
        return remembered

    def record(self, key: str, remembered: Remembered) -> None:
        """Pelanor accepted this upload."""
        self.entries[key] = remembered
        self.unreadable.pop(key, None)
        self._this_run.add(key)

    @property
    def changed(self) -> bool:
        """True once Pelanor accepted a month in this run."""
        return bool(self._this_run)

    def merged_into(self, state: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``state`` with every record known, under the target's own bookmark;
        records that cannot be read go back as they came."""
        merged = copy.deepcopy(state)
        if not (self.entries or self.unreadable) or (self.broken and not self._this_run):
            return merged
        records: dict[str, object] = {key: raw for key, (_, raw) in self.unreadable.items()}
        records.update((key, remembered.to_state()) for key, remembered in self.entries.items())
        bookmarks = merged.setdefault("bookmarks", {})
        bookmarks[TARGET_BOOKMARK] = {_UPLOADED: dict(sorted(records.items()))}
        return merged
