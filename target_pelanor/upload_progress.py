"""A month's file as httpx reads it for one upload attempt, with a line about every ten
seconds on how much has been sent, so a large upload is seen to move.

httpx takes the body's length from the file's descriptor, as from the plain file, so the
request is the same (a Content-Length, never chunked); each attempt opens the file again
and counts from zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import BinaryIO

from openai_costs.month_status import SENDING
from openai_costs.pace import Pace, byte_count

#: How much httpx asks for at a time (its CHUNK_SIZE), when a caller iterates the file.
_CHUNK = 1 << 16


class SendingFile:
    """``file`` (opened for reading, ``size`` bytes), logging to ``logger`` when a line is
    due by ``pace`` (started here) as httpx reads it."""

    def __init__(
        self,
        file: BinaryIO,
        size: int,
        what: tuple[str, str],
        logger: logging.Logger,
        clock: Callable[[], float],
    ) -> None:
        self._file, self._size, self._logger = file, size, logger
        self._organization, self._month = what
        self._pace = Pace(10.0, clock)
        self._pace.start()
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self.sent += len(chunk)
        if chunk and (elapsed := self._pace.due()) is not None:
            self._report(elapsed)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(_CHUNK):
            yield chunk

    def fileno(self) -> int:
        return self._file.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        self.sent = self._file.seek(offset, whence)
        return self.sent

    def tell(self) -> int:
        return self._file.tell()

    def _report(self, elapsed: float) -> None:
        share = f"{self.sent * 100 // self._size}%" if self._size else "-"
        self._logger.info(
            "%s %s: sending, %s (%s of %s) sent in %.1f s",
            self._organization,
            self._month,
            share,
            byte_count(self.sent),
            byte_count(self._size),
            elapsed,
            extra={
                "organization": self._organization,
                "month": self._month,
                "bytes_sent": self.sent,
                "bytes": self._size,
                "status": SENDING,
                "action": SENDING,
            },
        )
