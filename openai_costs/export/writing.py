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


def format_limit(value: Decimal) -> str:
    """A limit worked out from a total (a share of it), exactly as applied but without
    the trailing zeros the multiplication leaves: ``0.13509``, ``0.01``, ``3``."""
    text = format_decimal(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


class ExportWriter:
    """Writes a month in the export's exact layout, one row at a time.

    With ``gather`` (bytes), rows are written in pieces of about that size: for a month
    of a million rows a call to the file for each row costs more than the row. What is
    gathered is written by :meth:`finish`, not before. Without it each row is written as
    it comes.
    """

    def __init__(self, out: BinaryIO, layout: Layout, gather: int = 0) -> None:
        self.out = out
        self.layout = layout
        self.gather = gather
        self.terminator = layout.line_terminator.encode()
        self._pending = bytearray((BOM if layout.bom else "").encode("utf-8"))
        self._pending += layout.header.encode("utf-8")
        self._write_pending()

    def write_row(self, text: str) -> None:
        pending = self._pending
        pending += self.terminator
        pending += text.encode("utf-8")
        if len(pending) >= self.gather:
            self._write_pending()

    def finish(self) -> None:
        if self.layout.final_newline:
            self._pending += self.terminator
        self._write_pending()

    def _write_pending(self) -> None:
        self.out.write(self._pending)
        self._pending.clear()


def write_export(out: BinaryIO, layout: Layout, rows: Iterable[str]) -> None:
    """Write a whole month in the export's exact layout."""
    writer = ExportWriter(out, layout)
    for text in rows:
        writer.write_row(text)
    writer.finish()
