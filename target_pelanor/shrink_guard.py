"""The shrink guard: never replace a month in Pelanor with a smaller copy of it.

An upload replaces the whole month, so a download cut at a line ending, an old copy of an
export that won the merge, or any other partial file would silently erase data. The
target remembers what it last uploaded per month (:class:`UploadMemory`, kept in its
state) and refuses a month with fewer days, fewer rows, or a total lower by more than
the tolerance, unless ``allow_shrinking_months`` is set.

The tolerance is 0.5% of the total uploaded before, at least $0.01. OpenAI restates recent
days by small amounts (late usage, rounding of the float-repr amounts its exports carry),
so a slightly lower total is normal; a copy missing data is not caught by the total alone
anyway (it loses days or rows). What the total catches is an early copy of a month with
every row present but the last day's amounts not final: one day is about 3% of a month,
far above 0.5%. The $0.01 floor keeps a tiny month from being
refused over a rounding difference.

State values are ints and decimal text only: the SDK cannot write a Decimal in a STATE.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from openai_costs.contract import TARGET_BOOKMARK
from openai_costs.export import format_decimal

__all__ = ["TOLERANCE_MINIMUM", "TOLERANCE_SHARE", "UploadMemory", "Uploaded", "refusal"]

logger = logging.getLogger(__name__)

TOLERANCE_SHARE = Decimal("0.005")
TOLERANCE_MINIMUM = Decimal("0.01")
_UPLOADED = "uploaded"


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

    @classmethod
    def from_state(cls, value: object) -> Uploaded | None:
        """Read an entry back; None if it is not one this target wrote."""
        if not isinstance(value, dict):
            return None
        rows, days, total, digest = (
            value.get(k) for k in ("rows", "days", "total_usd", "rows_digest")
        )
        if not (isinstance(rows, int) and isinstance(days, int)):
            return None
        if not (isinstance(total, str) and isinstance(digest, str)):
            return None
        try:
            amount = Decimal(total)
        except InvalidOperation:
            return None
        return cls(rows, days, amount, digest) if amount.is_finite() else None

    def describe(self) -> str:
        return f"{self.rows} rows, {self.days} days, {format_decimal(self.total)} USD"


def tolerance(before: Uploaded) -> Decimal:
    """How much lower a total may be than the one uploaded before."""
    return max(abs(before.total) * TOLERANCE_SHARE, TOLERANCE_MINIMUM)


def refusal(before: Uploaded, now: Uploaded, *, from_api: bool = False) -> str | None:
    """Why ``now`` must not replace ``before`` in Pelanor; None if it may.

    ``from_api``: the month was read from OpenAI's Costs API, so a smaller copy is OpenAI
    restating it lower, not a cut download: the message says so and how to allow it.
    """
    reasons = []
    if now.days < before.days:
        reasons.append(f"{before.days - now.days} fewer day(s)")
    if now.rows < before.rows:
        reasons.append(f"{before.rows - now.rows} fewer row(s)")
    allowed = tolerance(before)
    if before.total - now.total > allowed:
        reasons.append(
            f"{format_decimal(before.total - now.total)} USD less, more than the "
            f"{format_decimal(allowed.quantize(Decimal('0.01')))} USD tolerance"
        )
    if not reasons:
        return None
    smaller = (
        f"is smaller than the copy uploaded before: {now.describe()} against "
        f"{before.describe()} ({', '.join(reasons)})"
    )
    if from_api:
        return (
            f"{smaller}; OpenAI's Costs API now reports this month lower than when it was "
            "uploaded (OpenAI restated it). If the lower figures are right, allow this one "
            "month to shrink: run once with allow_shrinking_months set"
        )
    return (
        f"{smaller}; a cut download or an older export? Export the whole month again, or "
        "set allow_shrinking_months to replace it anyway"
    )


class UploadMemory:
    """What was uploaded per state key: learnt from the state the tap passes on, and
    updated as Pelanor accepts months in this run."""

    def __init__(self) -> None:
        self.entries: dict[str, Uploaded] = {}
        self._this_run: set[str] = set()

    def learn(self, state: dict[str, Any]) -> None:
        """Take the entries of a state the tap passed on (this run's uploads win)."""
        bookmark = state.get("bookmarks", {}).get(TARGET_BOOKMARK, {})
        entries = bookmark.get(_UPLOADED, {}) if isinstance(bookmark, dict) else {}
        if not isinstance(entries, dict):
            return
        for key, value in entries.items():
            if key in self._this_run:
                continue
            uploaded = Uploaded.from_state(value)
            if uploaded is None:
                logger.warning("Ignoring an unreadable upload record for %s in the state", key)
            else:
                self.entries[key] = uploaded

    def get(self, key: str) -> Uploaded | None:
        return self.entries.get(key)

    def record(self, key: str, uploaded: Uploaded) -> None:
        """Pelanor accepted this upload."""
        self.entries[key] = uploaded
        self._this_run.add(key)

    @property
    def changed(self) -> bool:
        """True once Pelanor accepted a month in this run."""
        return bool(self._this_run)

    def merged_into(self, state: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``state`` with every entry known, under the target's own bookmark."""
        merged = copy.deepcopy(state)
        if not self.entries:
            return merged
        bookmarks = merged.setdefault("bookmarks", {})
        bookmarks[TARGET_BOOKMARK] = {
            _UPLOADED: {key: self.entries[key].to_state() for key in sorted(self.entries)}
        }
        return merged
