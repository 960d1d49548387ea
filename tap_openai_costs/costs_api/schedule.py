"""Which months a run reads from the Costs API: those that may still change, and those
never read.

OpenAI restates recent days, so a month is read again on every run until ``settle_days``
after it ended; a month already over by then is read once, by the first run that reaches
it. The months run from ``start_month`` (by default the previous month) to today's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, timedelta

from openai_costs.export import month_days, month_of

__all__ = ["months_due", "months_to_read", "previous_month"]


def months_due(
    organization_id: str,
    start_month: str | None,
    settle_days: int,
    delivered: Iterable[str],
    today: date,
) -> list[str]:
    """The months to read this run; ``delivered`` holds the state keys of the months
    sealed before (``<organization>/<YYYY-MM>``)."""
    prefix = f"{organization_id}/"
    read_before = {key.removeprefix(prefix) for key in delivered if key.startswith(prefix)}
    # The API is read from here on, so the months planned never start earlier.
    return months_to_read(start_month or previous_month(today), today, settle_days, read_before)


def previous_month(today: date) -> str:
    return month_of(today.replace(day=1) - timedelta(days=1))


def months_to_read(
    start_month: str, today: date, settle_days: int, read_before: Collection[str]
) -> list[str]:
    """Months from start_month to today's that may still change or were never read."""
    months = sorted({month_of(day) for day in _days_between(start_month, today)})
    chosen = []
    for month in months:
        last_day = month_days(month)[-1]
        settled = today > last_day + timedelta(days=settle_days)
        if not settled or month not in read_before:
            chosen.append(month)
    return chosen


def _days_between(start_month: str, today: date) -> list[date]:
    first = date.fromisoformat(f"{start_month}-01")
    return [first + timedelta(days=n) for n in range((today - first).days + 1)]
