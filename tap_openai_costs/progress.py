"""Progress a person can follow while the tap reads: each file as it starts and ends, and a
line about every ten seconds on a long one (rows so far, rows per second). Each line also
carries fields for structured logs: file, rows, action."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TypeVar

_Row = TypeVar("_Row")
_Result = TypeVar("_Result")

#: Rows between two looks at the clock: reading it for every row would cost more than
#: the progress is worth.
_CHECK_EVERY = 4096


class ReadProgress:
    """Wraps a file's row generator with log lines; the generator's return value passes
    through unchanged."""

    def __init__(
        self,
        logger: logging.Logger,
        every_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every_seconds = every_seconds
        self.clock = clock

    def __call__(
        self, path: Path, rows: Generator[_Row, None, _Result]
    ) -> Generator[_Row, None, _Result]:
        self.logger.info("reading %s", path, extra={"file": str(path), "action": "reading"})
        started = last = self.clock()
        count = 0
        while True:
            try:
                row = next(rows)
            except StopIteration as done:
                elapsed = self.clock() - started
                self.logger.info(
                    "read %s: %s",
                    path,
                    _rate(count, elapsed),
                    extra={"file": str(path), "rows": count, "action": "read"},
                )
                return done.value  # type: ignore[no-any-return]
            count += 1
            if count % _CHECK_EVERY == 0:
                now = self.clock()
                if now - last >= self.every_seconds:
                    last = now
                    self.logger.info(
                        "reading %s: %s",
                        path,
                        _rate(count, now - started, so_far=True),
                        extra={"file": str(path), "rows": count, "action": "reading"},
                    )
            yield row


def _rate(rows: int, seconds: float, so_far: bool = False) -> str:
    speed = f", {rows / seconds:,.0f} rows/s" if seconds > 0 else ""
    return f"{rows:,} rows{' so far' if so_far else ''} in {seconds:.1f} s{speed}"
