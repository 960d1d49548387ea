"""The columns of a cost export and the file-level facts needed to write it back exactly.

The header is data: its order is kept and unknown columns are carried. Pelanor requires
nine columns; everything else in the header is whatever OpenAI's export had.
"""

from __future__ import annotations

import csv
from typing import Any

import msgspec

from openai_costs.export.errors import ExportError

BOM = "\ufeff"

#: Columns Pelanor requires (its OpenAI integration documentation).
REQUIRED_COLUMNS = (
    "start_time",
    "end_time",
    "amount_value",
    "amount_currency",
    "line_item",
    "project_id",
    "organization_id",
    "project_name",
    "organization_name",
)
TIME_COLUMNS = ("start_time", "end_time", "start_time_iso", "end_time_iso")
#: The ISO copies of the Unix times: absent from some real exports (the nine-column layout).
ISO_COLUMNS = {"start_time_iso": "start_time", "end_time_iso": "end_time"}
#: Columns that measure rather than identify a cost: left out of the duplicate-row key.
MEASURE_COLUMNS = frozenset({"amount_value", "quantity"})
#: The current export layout (seen 2026-09); the API source writes rows in it.
CURRENT_COLUMNS = (
    "start_time",
    "end_time",
    "start_time_iso",
    "end_time_iso",
    "amount_value",
    "amount_currency",
    "quantity",
    "quantity_unit",
    "line_item",
    "user_id",
    "api_key_id",
    "project_id",
    "organization_id",
    "project_name",
    "organization_name",
    "user_email",
    "api_source",
)


class Layout(msgspec.Struct, frozen=True):
    """The file-level facts needed to write an export back byte for byte."""

    columns: tuple[str, ...]
    header: str
    line_terminator: str = "\n"
    bom: bool = False
    final_newline: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "header": self.header,
            "line_terminator": self.line_terminator,
            "bom": self.bom,
            "final_newline": self.final_newline,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        return msgspec.convert(data, cls)

    def render(self, values: dict[str, str]) -> str:
        """Write a row of another layout in this one, quoting as OpenAI does (when needed)."""
        return render_fields([values.get(column, "") for column in self.columns])


class _Line:
    """Where :func:`render_fields` has its one CSV writer put a line: a writer writes a
    row in one call, and building one per row costs more than the writing."""

    text = ""

    def write(self, text: str) -> None:
        self.text = text


_LINE = _Line()
_LINE_WRITER = csv.writer(_LINE, lineterminator="")


def render_fields(fields: list[str]) -> str:
    """One row's CSV text (no terminator), quoted as OpenAI quotes: only when needed."""
    _LINE_WRITER.writerow(fields)
    return _LINE.text


def check_columns(path: str, columns: list[str]) -> None:
    if "start_time" not in columns:
        raise ExportError(
            path,
            "does not look like an OpenAI export (no start_time column); "
            "use the CSV from Usage > Export > Cost data",
        )
    if "amount_value" not in columns:
        raise ExportError(
            path,
            "is an Activity export (no amount_value column), not cost data; "
            "export the Cost data tab (Usage > Export > Cost data, group by Line Item)",
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ExportError(path, f"repeats column(s) {', '.join(repeated)}; export it again")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ExportError(
            path,
            f"lacks column(s) {', '.join(missing)} that Pelanor requires; export the Cost "
            "data grouped by Line Item (and project) with a 1 day interval",
        )
