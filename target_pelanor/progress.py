"""Progress while a long month's rows arrive: a line about every ten seconds (rows so far,
rows per second), as the tap logs while it reads a long file."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Rows between two looks at the clock: reading it for every row would cost more than
#: the progress is worth.
_CHECK_EVERY = 4096


class WriteProgress:
    """Counts the rows of the month being written; :meth:`row` runs once per row."""

    def __init__(
        self,
        logger: logging.Logger,
        every_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every_seconds = every_seconds
        self.clock = clock
        self.organization = self.month = ""
        self.rows = 0
        self.started = self.last = 0.0

    def start(self, organization: str, month: str) -> None:
        """A month's rows begin (its layout record arrived)."""
        self.organization, self.month, self.rows = organization, month, 0
        self.started = self.last = self.clock()

    def row(self) -> None:
        self.rows += 1
        if self.rows % _CHECK_EVERY == 0:
            now = self.clock()
            if now - self.last >= self.every_seconds:
                self.last = now
                elapsed = now - self.started
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
                        "action": "writing",
                    },
                )
