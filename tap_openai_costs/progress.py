"""Progress a person can follow while the tap reads: each file as it starts and ends, and a
line about every ten seconds on a long one (how far along: bytes read of the file's size;
rows so far, rows per second). Each line also carries fields for structured logs: file,
rows, action, and on a progress line bytes_read and bytes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from openai_costs.pace import Pace, byte_count


class ReadProgress:
    """Log lines about the files read; :meth:`reading` starts one file's."""

    def __init__(
        self,
        logger: logging.Logger,
        every_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every_seconds = every_seconds
        self.clock = clock

    def reading(self, path: Path) -> FileProgress:
        self.logger.info("reading %s", path, extra={"file": str(path), "action": "reading"})
        return FileProgress(self, path)


class FileProgress:
    """One file's progress. The reader reports how far along it is every few thousand rows
    (:meth:`rows`)."""

    def __init__(self, progress: ReadProgress, path: Path) -> None:
        self.logger, self.path = progress.logger, path
        self.pace = Pace(progress.every_seconds, progress.clock)
        self.pace.start()

    def rows(self, count: int, read: int, size: int) -> None:
        """``count`` rows, ``read`` bytes of the file's ``size`` read so far: a line if the
        last was long enough ago."""
        elapsed = self.pace.due()
        if elapsed is not None:
            share = f"{read * 100 // size}%" if size else "-"
            self.logger.info(
                "reading %s: %s (%s of %s), %s",
                self.path,
                share,
                byte_count(read),
                byte_count(size),
                _rate(count, elapsed, so_far=True),
                extra={
                    "file": str(self.path),
                    "rows": count,
                    "bytes_read": read,
                    "bytes": size,
                    "action": "reading",
                },
            )

    def done(self, count: int) -> None:
        """The file was read to its end: ``count`` rows."""
        self.logger.info(
            "read %s: %s",
            self.path,
            _rate(count, self.pace.elapsed()),
            extra={"file": str(self.path), "rows": count, "action": "read"},
        )


def _rate(rows: int, seconds: float, so_far: bool = False) -> str:
    speed = f", {rows / seconds:,.0f} rows/s" if seconds > 0 else ""
    return f"{rows:,} rows{' so far' if so_far else ''} in {seconds:.1f} s{speed}"
