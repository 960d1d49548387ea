"""Build small cost exports for tests, in the layouts OpenAI writes."""

from __future__ import annotations

import csv
import io
import os
from datetime import date, timedelta
from pathlib import Path

from openai_costs.export import CURRENT_COLUMNS, REQUIRED_COLUMNS, iso_of, month_days, unix_of

NEW = CURRENT_COLUMNS
#: The nine-column layout of most real 2025 downloads: exactly Pelanor's fields.
NINE = REQUIRED_COLUMNS
#: The 2025 layout grouped by line item and project, with project_name.
OLD = (
    "start_time",
    "end_time",
    "start_time_iso",
    "end_time_iso",
    "amount_value",
    "amount_currency",
    "line_item",
    "project_id",
    "organization_id",
    "project_name",
    "organization_name",
)
#: The 2025 layout as one published copy had it: no project_name.
OLD_WITHOUT_PROJECT_NAME = tuple(c for c in OLD if c != "project_name")

ORG = "org-acme"
#: The current UTC date for tests that run the export rules in-process: after every day
#: these tests' exports hold.
TODAY = date(2026, 1, 1)
SAMPLES = Path(__file__).parent.parent / "samples"


def times(day: date) -> dict[str, str]:
    start = unix_of(day)
    return {
        "start_time": str(start),
        "end_time": str(start + 86400),
        "start_time_iso": iso_of(start),
        "end_time_iso": iso_of(start + 86400),
    }


def cost(
    day: date, amount: str = "0.5", item: str = "gpt-4o-2024-08-06, input", **values: str
) -> dict[str, str]:
    row = {
        **times(day),
        "amount_value": amount,
        "amount_currency": "usd",
        "line_item": item,
        "project_id": "proj_abc",
        "organization_id": ORG,
        "project_name": "Acme App",
        "organization_name": "Acme, Inc.",
    }
    row.update(values)
    return row


def export(
    rows: list[dict[str, str]],
    columns: tuple[str, ...] = NEW,
    terminator: str = "\n",
    bom: bool = False,
) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=terminator)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(column, "") for column in columns])
    return (("\ufeff" if bom else "") + buffer.getvalue()).encode()


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def month_rows(
    month: str, amount: str = "1.25", idle: tuple[int, ...] = ()
) -> list[dict[str, str]]:
    """Two costs a day, or an idle row on the given days of the month."""
    rows: list[dict[str, str]] = []
    for day in month_days(month):
        if day.day in idle:
            rows.append(times(day))
        else:
            rows.append(cost(day, amount))
            rows.append(cost(day, "0.10", "gpt-4o-2024-08-06, output"))
    return rows


def write(path: Path, content: bytes, mtime: float | None = None) -> Path:
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def seal_day(day: int) -> date:
    """A day of October 2025, the month most tests seal."""
    return date(2025, 10, day)


def sparse_file(path: Path, size: int) -> None:
    """A file of ``size`` bytes that takes no room on the disk (a huge state file or upload
    record, for the bounds on reading them)."""
    path.touch(mode=0o600)
    os.truncate(path, size)
