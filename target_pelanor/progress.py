"""Progress while a long month's rows arrive: a line about every ten seconds (rows so far,
rows per second), as the tap logs while it reads a long file."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from openai_costs.export import ROWS_BETWEEN_REPORTS
from openai_costs.month_status import WRITING
from openai_costs.pace import Pace


class WriteProgress:
    """Counts the rows of the month being written; :meth:`row` runs once per row and looks
    at the clock every :data:`ROWS_BETWEEN_REPORTS` rows, as the tap's reading does."""

    def __init__(
        self,
        logger: logging.Logger,
        every_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.pace = Pace(every_seconds, clock)
        self.organization = self.month = ""
        self.rows = 0

    def start(self, organization: str, month: str) -> None:
        """A month's rows begin (its layout record arrived)."""
        self.organization, self.month, self.rows = organization, month, 0
        self.pace.start()

    def row(self) -> None:
        self.rows += 1
        if self.rows % ROWS_BETWEEN_REPORTS == 0 and (elapsed := self.pace.due()) is not None:
            self.logger.info(
                "%s %s: writing, %s rows so far in %.1f s, %s rows/s",
                self.organization,
                self.month,
                f"{self.rows:,}",
                elapsed,
                f"{self.rows / elapsed:,.0f}" if elapsed > 0 else "-",
                extra={
                    "organization": self.organization,
                    "month": self.month,
                    "rows": self.rows,
                    "status": WRITING,
                    "action": WRITING,
                },
            )
