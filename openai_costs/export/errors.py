"""The one error type of the export format: a problem with one input file, worded for the
person who exported it (file, row, what to do)."""

from __future__ import annotations

from openai_costs.printable import printable


class ExportError(Exception):
    """A problem with one input file, worded for the person who exported it."""

    def __init__(self, path: str, message: str, row: int | None = None) -> None:
        self.path = path
        self.row = row
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        """One line: the file's name and any value quoted from it shown printable."""
        where = f"{self.path}: row {self.row}" if self.row is not None else self.path
        return printable(f"{where}: {self.message}")
