"""The ``focus_costs`` stream: each ``costs`` row that carries an amount, as a FOCUS 1.2
CostAndUsage row, written as the ``costs`` rows go out (before their month's seal).

Not selected by default: the Pelanor jobs never pay for it. When it is not selected the
``costs`` stream does not even look at it (``CostsStream._month_records``), so its own
paths stay as they are. When it is, rows are written in chunks, each a sync of this child
stream (the SDK's own record loop: stream maps, property selection; its RECORD messages
on the quick route when nothing changes a record), and every chunk is out before the
``costs`` stream moves on to the month's seal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from tap_openai_costs.focus.rows import SCHEMA, STREAM, FocusRows
from tap_openai_costs.record_messages import QuickRecordMessages
from tap_openai_costs.streams import RowFollower

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: FOCUS rows written per sync of the stream: few SCHEMA and STATE messages, little memory.
CHUNK = 5000


class FocusCostsStream(QuickRecordMessages, RowFollower):
    """One FOCUS row per ``costs`` row with an amount, versioned as that row."""

    name = STREAM
    selected_by_default = False
    primary_keys = ("BillingAccountId", "x_Month", "x_MonthVersion", "x_CostsRow")
    schema = SCHEMA

    _chunk: list[dict[str, Any]] | None = None
    _focus_rows: FocusRows | None = None

    def follow(self, records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Pass the ``costs`` records on unchanged, writing the FOCUS row of each on the
        way; the month's last chunk goes out once its records are exhausted."""
        rows = self._rows()
        chunk: list[dict[str, Any]] = []
        for record in records:
            row = rows.row(record)
            if row is not None:
                chunk.append(row)
                if len(chunk) >= CHUNK:
                    self._write(chunk)
                    chunk = []
            yield record
        if chunk:
            self._write(chunk)

    def finish(self) -> None:
        """Line items whose spelling is not known: one warning for the run."""
        if self._focus_rows is not None:
            self._focus_rows.unknown.say(self.logger, self.name)

    def _rows(self) -> FocusRows:
        if self._focus_rows is None:
            user_email = self.settings.focus_user_email
            self._focus_rows = FocusRows(user_email=user_email)
        return self._focus_rows

    def _write(self, chunk: list[dict[str, Any]]) -> None:
        self._chunk = chunk
        try:
            self.sync()
        finally:
            self._chunk = None

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        return self._chunk or ()
