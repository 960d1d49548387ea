"""What the tests read from the tap's output: the months it sealed, rebuilt as files."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from openai_costs.export import Layout, write_export
from tests.singer import Run


def built_months(output: Run | Iterable[dict[str, Any]]) -> dict[str, bytes]:
    """Rebuild every sealed month from the tap's output (a run, or its messages), as the
    target does: a layout record starts the month afresh (a draft replaced by its plan), a
    seal finishes it."""
    messages = output.messages if isinstance(output, Run) else output
    rows: dict[str, list[str]] = {}
    built = {}
    for message in messages:
        if message["type"] != "RECORD":
            continue
        stream, record = message["stream"], message["record"]
        if stream == "cost_month_layouts":
            rows[record["month"]] = []
        elif stream == "costs":
            rows[record["month"]].append(record["csv_row"])
        elif stream == "cost_months":
            out = io.BytesIO()
            write_export(out, Layout.from_dict(record["layout"]), rows[record["month"]])
            built[record["month"]] = out.getvalue()
    return built
