"""When a progress line is due: about every ten seconds while a long file is read or a
long month written. Callers ask only every few thousand rows, since reading the clock for
every row would cost more than the progress is worth. Also how progress lines write an
amount of data."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pace:
    """The clock of one stretch of work (a file read, a month written): :meth:`start` it
    when the work begins."""

    def __init__(
        self, every_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every_seconds = every_seconds
        self.clock = clock
        self.started = self.last = 0.0

    def start(self) -> None:
        self.started = self.last = self.clock()

    def due(self) -> float | None:
        """Seconds since the start if a line is due now (it is then taken as given), or
        None."""
        now = self.clock()
        if now - self.last < self.every_seconds:
            return None
        self.last = now
        return now - self.started

    def elapsed(self) -> float:
        return self.clock() - self.started


def byte_count(size: int) -> str:
    """``2.4 MB``, ``812 bytes``: an amount of data in a progress line."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:,} byte{'' if size == 1 else 's'}"
