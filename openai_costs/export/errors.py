"""The one error type of the export format: a problem with one input file, worded for the
person who exported it (file, row, what to do)."""

from __future__ import annotations


class ExportError(Exception):
    """A problem with one input file, worded for the person who exported it."""

    def __init__(self, path: str, message: str, row: int | None = None) -> None:
        self.path = path
        self.row = row
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}: row {self.row}" if self.row is not None else self.path
        return f"{where}: {self.message}"
