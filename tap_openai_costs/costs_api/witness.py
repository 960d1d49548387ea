"""``check_against_api``: each export month compared, day by day, with the Costs API before
its seal.

An export goes to Pelanor as downloaded, and a download can be cut short, saved before its
last day ended, or older than a restatement by OpenAI. With an admin key the tap asks the
Costs API for the same organization and days and compares each day's total with the
exports'. Rules:

- One range request a month, not one a day: ungrouped (one result a day), a page as long
  as the range, so a month is normally one HTTP request (more only if OpenAI pages it).
- A day whose totals differ by more than 0.5% of the larger one (at least $0.01, as the
  target's shrink guard allows) stops that month: it is not sealed, and one line names
  the day, both totals and the likely causes.
- An API that cannot be read (unreachable, the key refused, an answer off its shape) stops
  the month too, and the months after it are not checked, so not sealed either.
- The API's answer is checked as strictly as when it is the source
  (:mod:`tap_openai_costs.costs_api.rendering`): no missing day is taken as zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

from openai_costs.export import (
    DAY_SECONDS,
    EXACT,
    describe_days,
    format_decimal,
    format_limit,
    unix_of,
)
from tap_openai_costs.costs_api.client import RETRY_ADVICE, OpenAIAPIError, OpenAICostsClient
from tap_openai_costs.costs_api.rendering import FieldNotes, checked_days, cost_amount

__all__ = [
    "TOLERANCE_MINIMUM",
    "TOLERANCE_SHARE",
    "ApiWitness",
    "cannot_check",
    "disagreement",
    "tolerance",
]

TOLERANCE_SHARE: Final = Decimal("0.005")
TOLERANCE_MINIMUM: Final = Decimal("0.01")


class ApiWitness:
    """Reads the Costs API's daily totals for the days an export month holds."""

    def __init__(self, client: OpenAICostsClient, organization_id: str, notes: FieldNotes) -> None:
        self.client = client
        self.organization_id = organization_id
        self.notes = notes

    def day_totals(self, days: list[date]) -> dict[date, Decimal]:
        """Each day from the first to the last of ``days`` with the API's total for it.

        Raises OpenAIAPIError when the API cannot be read or answers off its shape.
        """
        first, last = min(days), max(days)
        span = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        buckets = self.client.cost_buckets(
            unix_of(first), unix_of(last) + DAY_SECONDS, group_by=(), limit=len(span)
        )
        totals: dict[date, Decimal] = {}
        for day, results in checked_days(buckets, span, self.notes):
            total = Decimal(0)
            for number, result in enumerate(results, start=1):
                amount = cost_amount(day, number, result, self.organization_id, self.notes)
                total = EXACT.add(total, Decimal(amount))
            totals[day] = total
        return totals


def tolerance(ours: Decimal, theirs: Decimal) -> Decimal:
    """How far apart two totals of a day may be: 0.5% of the larger, at least $0.01
    (worked out exactly, whatever the totals' digits)."""
    larger = max(ours.copy_abs(), theirs.copy_abs())
    return max(EXACT.multiply(larger, TOLERANCE_SHARE), TOLERANCE_MINIMUM)


def _apart(ours: Decimal, theirs: Decimal) -> Decimal:
    return EXACT.subtract(ours, theirs).copy_abs()


def disagreement(
    month: str,
    exported: Mapping[date, Decimal],
    reported: Mapping[date, Decimal],
    sources: Mapping[date, str],
) -> str | None:
    """Why ``month`` must not be sealed: the first day its exports' total (``exported``)
    is too far from the API's (``reported``); None when every day agrees."""
    apart = [
        day
        for day in sorted(exported)
        if _apart(exported[day], reported[day]) > tolerance(exported[day], reported[day])
    ]
    if not apart:
        return None
    day = apart[0]
    ours, theirs = exported[day], reported[day]
    more = f"; {describe_days(apart[1:])} differ too" if len(apart) > 1 else ""
    allowed = format_limit(tolerance(ours, theirs))
    return (
        f"{month} not sealed (check_against_api): on {day} the export "
        f"({sources.get(day, '?')}) totals {format_decimal(ours)} USD but OpenAI's Costs "
        f"API {format_decimal(theirs)} USD, {format_decimal(_apart(ours, theirs))} USD apart, "
        f"more than the {allowed} USD allowed (0.5%, at least 0.01){more}; "
        "likely the download was cut short, the export was saved before that day ended, or "
        "OpenAI restated the day since: export the month again"
    )


def cannot_check(month: str, error: OpenAIAPIError, unchecked: list[str]) -> str:
    """Why ``month`` (and the ``unchecked`` months after it) must not be sealed: the API
    could not be read."""
    reason = str(error).removesuffix(f"; {RETRY_ADVICE}")
    later = f"; not checked, so not sealed either: {', '.join(unchecked)}" if unchecked else ""
    return (
        f"{month} not sealed (check_against_api): the OpenAI Costs API could not be read to "
        f"check it: {reason}{later}; run the tap again later, or unset check_against_api to "
        "seal the exports unchecked"
    )
