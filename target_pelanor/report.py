"""The end-of-run table: what happened to every month, in one place a person reads."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from openai_costs.export import format_decimal

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

    def cells(self) -> tuple[str, ...]:
        return (
            self.organization,
            self.month,
            "" if self.rows is None else str(self.rows),
            "" if self.total is None else format_decimal(self.total),
            self.action,
            self.response_id or "",
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
