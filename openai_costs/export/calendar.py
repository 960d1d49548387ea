"""UTC days and months as cost exports count them: one-day buckets from 00:00 UTC, never
the host's time zone."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

UTC = timezone.utc  # datetime.UTC needs Python 3.11

DAY_SECONDS = 86_400


def day_of(unix_seconds: int) -> date:
    return datetime.fromtimestamp(unix_seconds, UTC).date()


def unix_of(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def iso_of(unix_seconds: int) -> str:
    """ISO time as OpenAI writes it: ``2025-10-05T00:00:00+00:00``."""
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat()


@functools.cache  # called for every row while a file is read: few distinct days
def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_days(month: str) -> list[date]:
    first = date.fromisoformat(f"{month}-01")
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return [first + timedelta(days=n) for n in range((following - first).days)]


def today_utc() -> date:
    """The current UTC date; a month is complete only up to the last full day before it."""
    return datetime.now(UTC).date()


def full_days(month: str, today: date | None = None) -> list[date]:
    """The days of the month that are over: all of a past month, those before today of
    the current one (today's costs are still growing)."""
    today = today or today_utc()
    return [day for day in month_days(month) if day < today]


def missing_days(month: str, present: Iterable[date], today: date | None = None) -> list[date]:
    """Days a complete month needs but lacks. No day of a month after the current one
    has ended, whatever rows claim them: all are missing, so it is never complete."""
    today = today or today_utc()
    if month > month_of(today):
        return month_days(month)
    have = set(present)
    return [day for day in full_days(month, today) if day not in have]


def describe_days(days: list[date]) -> str:
    """``2025-10-16 to 2025-10-31`` style, short enough for one line of an error."""
    runs: list[list[date]] = []
    for day in days:
        if runs and (day - runs[-1][-1]).days == 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]} to {run[-1]}" for run in runs)


def upload_filename(month: str) -> str:
    """The name OpenAI gives a one-month export, which Pelanor's users upload as-is: the
    end date is inclusive, as in most real downloads (October is
    ``cost_2025-10-01_2025-10-31.csv``; a few name the day after instead). Nothing reads
    coverage from a name: the rows say which days a file holds."""
    days = month_days(month)
    return f"cost_{days[0].isoformat()}_{days[-1].isoformat()}.csv"
