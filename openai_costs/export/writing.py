"""Writing a month in an export's exact layout, and the one rule for decimal text."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import BinaryIO

from openai_costs.export.layout import BOM, Layout

#: Where totals are summed: amounts are at most 64 characters with exponents of at most
#: three digits (:data:`openai_costs.export.rules.AMOUNT_TEXT`), so 4,000 digits hold any
#: sum exactly; the traps make a rounding an error, never a silent one.
EXACT = Context(prec=4000, traps=[Inexact, InvalidOperation, Overflow])


def format_decimal(value: Decimal) -> str:
    """Plain decimal text (never ``1E-8``), for totals shown to people and kept in seals."""
    return format(value, "f")


class ExportWriter:
    """Writes a month in the export's exact layout, one row at a time."""

    def __init__(self, out: BinaryIO, layout: Layout) -> None:
        self.out = out
        self.layout = layout
        self.terminator = layout.line_terminator.encode()
        out.write((BOM if layout.bom else "").encode("utf-8") + layout.header.encode("utf-8"))

    def write_row(self, text: str) -> None:
        self.out.write(self.terminator + text.encode("utf-8"))

    def finish(self) -> None:
        if self.layout.final_newline:
            self.out.write(self.terminator)


def write_export(out: BinaryIO, layout: Layout, rows: Iterable[str]) -> None:
    """Write a whole month in the export's exact layout."""
    writer = ExportWriter(out, layout)
    for text in rows:
        writer.write_row(text)
    writer.finish()
