"""The rows digest a seal carries: tap and target must compute it identically."""

from __future__ import annotations

import hashlib
from typing import Any


def rows_digest_update(digest: Any, row_text: str) -> None:
    """Fold one row into a day's digest; tap and target must agree on this exactly."""
    digest.update(f"{row_text}\n".encode())


class RowsDigest:
    """A seal's ``rows_digest``: sha256 over one line per day, ``YYYY-MM-DD <hex>``, where
    hex is the sha256 of that day's rows (:func:`rows_digest_update`).

    Built from days, so the tap vouches for a month with the day digests its scan computed
    anyway, instead of hashing every row twice; the target hashes the rows it receives.
    """

    def __init__(self) -> None:
        self._month = hashlib.sha256()
        self._day: str | None = None
        self._rows: Any = None

    def add_day(self, day: str, rows_hexdigest: str) -> None:
        self._end_day()
        self._month.update(f"{day} {rows_hexdigest}\n".encode())

    def add_row(self, day: str, row_text: str) -> None:
        if day != self._day:
            self._end_day()
            self._day, self._rows = day, hashlib.sha256()
        rows_digest_update(self._rows, row_text)

    def hexdigest(self) -> str:
        self._end_day()
        return str(self._month.hexdigest())

    def _end_day(self) -> None:
        if self._day is not None:
            day, self._day = self._day, None
            self.add_day(day, self._rows.hexdigest())
