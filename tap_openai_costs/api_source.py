"""Read months from OpenAI's Costs API into export files, so the file pipeline takes over.

Each month fetched becomes the CSV the dashboard would export for it, in the current
layout, validated and merged exactly like a hand-made export. Which months to read:
the current one always (its full days so far); the previous one until ``settle_days``
after it ended, because OpenAI still restates recent days; an older month only once.
A month is streamed to its file a day at a time (:func:`costs_api.export_month`), never
held in memory; a month the API answers wrongly stops the run (nothing is sealed).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date, timedelta
from pathlib import Path

from tap_openai_costs.cost_export import full_days, month_days, month_of, upload_filename
from tap_openai_costs.costs_api import OpenAICostsClient, export_month


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


def fetch_exports(
    client: OpenAICostsClient,
    months: list[str],
    today: date,
    organization_id: str,
    organization_name: str,
    directory: Path,
    log: Callable[[str], None],
) -> list[Path]:
    """Write one export per month into directory, named as the dashboard names them."""
    names = client.project_names() if months else {}
    paths = []
    for month in months:
        days = full_days(month, today)
        if not days:
            continue
        path = directory / upload_filename(month)
        try:
            with path.open("wb") as out:
                rows = export_month(
                    client,
                    out,
                    days=days,
                    project_names=names,
                    organization_id=organization_id,
                    organization_name=organization_name,
                )
        except BaseException:
            path.unlink(missing_ok=True)  # a partial month must not look like an export
            raise
        log(f"read {month} from the OpenAI Costs API: {len(days)} day(s), {rows} row(s)")
        paths.append(path)
    return paths


def _days_between(start_month: str, today: date) -> list[date]:
    first = date.fromisoformat(f"{start_month}-01")
    return [first + timedelta(days=n) for n in range((today - first).days + 1)]
