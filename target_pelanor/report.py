"""The end-of-run table: what happened to every month, in one place a person reads.

Run by hand, the table goes to stderr as it is. Run by Meltano (which hands the plugin a
logging configuration in ``SINGER_SDK_LOG_CONFIG``), it is one log line whose fields list
every month (organization, month, rows, total_usd, action, response_id), so structured
logs carry it too. A run that had no month says so in one line instead of an empty table.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openai_costs.export import format_decimal
from openai_costs.printable import printable

HEADINGS = ("organization", "month", "rows", "total USD", "action", "Pelanor response id")


@dataclass(frozen=True)
class MonthResult:
    organization: str
    month: str
    rows: int | None
    total: Decimal | None
    action: str
    response_id: str | None = None
    failed: bool = False

    def fields(self) -> dict[str, Any]:
        """The month's result as structured log fields."""
        return {
            "organization": self.organization,
            "month": self.month,
            "rows": self.rows,
            "total_usd": None if self.total is None else format_decimal(self.total),
            "action": self.action,
            "response_id": self.response_id,
        }

    def cells(self) -> tuple[str, ...]:
        """The table's cells, each one printable line (names and Pelanor's answers are
        text from outside)."""
        return (
            printable(self.organization),
            printable(self.month),
            "" if self.rows is None else str(self.rows),
            "" if self.total is None else format_decimal(self.total),
            printable(self.action),
            printable(self.response_id or ""),
        )


def render_table(results: list[MonthResult]) -> str:
    """A plain-text table, left-aligned, one month per line."""
    rows = [HEADINGS, *(result.cells() for result in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADINGS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def publish(results: list[MonthResult], logger: logging.Logger, no_month: str) -> None:
    """Show the table (or, without any month, the one line ``no_month``)."""
    text = render_table(results) if results else no_month
    if "SINGER_SDK_LOG_CONFIG" in os.environ:
        logger.info(text, extra={"results": [result.fields() for result in results]})
    else:
        print(text, file=sys.stderr)
