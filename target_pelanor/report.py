"""The end-of-run table: what happened to every month, in one place a person reads.

Run by hand, the table goes to stderr as it is. Run by Meltano (which hands the plugin a
logging configuration in ``SINGER_SDK_LOG_CONFIG``), each line of it is a log record of its
own, so each carries Meltano's prefix (the plugin's name) and can be found by grepping
the plugin or the organization: the headings' record lists every month in its fields
(organization, month, rows, total_usd, status, reason, action, response_id), each month's
line carries its organization. A run that had no month says so in one line instead of an
empty table.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openai_costs.export import format_decimal
from openai_costs.month_status import FAILED, UNCHANGED, UPLOADED, WITHHELD, WRITTEN
from openai_costs.printable import printable

HEADINGS = ("organization", "month", "rows", "total USD", "action", "Pelanor response id")


@dataclass(frozen=True)
class MonthResult:
    """What became of a month: a final status (:mod:`openai_costs.month_status`), why when
    it was not sent, and where its file was also written (``output_dir``)."""

    organization: str
    month: str
    rows: int | None
    total: Decimal | None
    status: str
    reason: str | None = None
    response_id: str | None = None
    written_to: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in (WITHHELD, FAILED)

    @property
    def action(self) -> str:
        """The table's text for the month."""
        written = f"written to {self.written_to}" if self.written_to else ""
        if self.status == UPLOADED:
            return ", ".join(filter(None, [UPLOADED, written]))
        if self.status == WRITTEN:
            return written or "checked (dry run)"
        if self.status == UNCHANGED:
            return "; ".join(filter(None, [f"{UNCHANGED}: {self.reason}", written]))
        return "; ".join(filter(None, [f"{self.status}: {self.reason}", written]))

    def fields(self) -> dict[str, Any]:
        """The month's result as structured log fields."""
        return {
            "organization": self.organization,
            "month": self.month,
            "rows": self.rows,
            "total_usd": None if self.total is None else format_decimal(self.total),
            "status": self.status,
            "reason": self.reason,
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
    return "\n".join(table_lines(results))


def table_lines(results: list[MonthResult]) -> list[str]:
    """The table's lines: the headings, then one per month."""
    rows = [HEADINGS, *(result.cells() for result in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADINGS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return [line.rstrip() for line in lines]


def publish(results: list[MonthResult], logger: logging.Logger, no_month: str) -> None:
    """Show the table (or, without any month, the one line ``no_month``)."""
    if "SINGER_SDK_LOG_CONFIG" not in os.environ:
        print(render_table(results) if results else no_month, file=sys.stderr)
        return
    if not results:
        logger.info(no_month, extra={"results": []})
        return
    headings, *lines = table_lines(results)
    logger.info(headings, extra={"results": [result.fields() for result in results]})
    for line, result in zip(lines, results, strict=True):
        # Not a month event (no month, no status): alert rules count each month once.
        logger.info(line, extra={"organization": result.organization, "table": "results"})
