"""Collect each (organization, month) on disk and decide whether it is safe to upload.

An upload replaces everything Pelanor has for the month, so a month leaves only when the
tap sealed it, what arrived matches the seal, it is complete, and the rebuilt file passes
the same checks the tap applies to an export. Rows are spooled to disk as they arrive, so
memory does not grow with the size of a month, and SDK drains cannot split one.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import msgspec

from tap_openai_costs.cost_export import (
    ExportError,
    Layout,
    describe_days,
    format_decimal,
    missing_days,
    rows_digest_update,
    scan_export,
    upload_filename,
    write_export,
)

_SPOOL_LINE = msgspec.json.Encoder()
_SPOOL_TEXT = msgspec.json.Decoder(str)


class Withheld(Exception):
    """A month that must not be uploaded; the message says why and what to do."""

    def __init__(self, reason: str, rows: int = 0, total: Decimal = Decimal(0)) -> None:
        super().__init__(reason)
        self.rows = rows
        self.total = total


@dataclass
class MonthSpool:
    """One month's rows as they arrive: the csv text on disk, the tallies in memory."""

    organization: str
    month: str
    path: Path
    handle: IO[bytes]
    rows: int = 0
    total: Decimal = Decimal(0)
    digest: Any = field(default_factory=hashlib.sha256)
    days: set[str] = field(default_factory=set)
    foreign: str | None = None

    def add(self, record: dict[str, Any], organization_id: str) -> None:
        text = record["csv_row"]
        self.handle.write(_SPOOL_LINE.encode(text))
        self.handle.write(b"\n")
        self.rows += 1
        amount = record.get("amount_value")
        if amount is not None:
            self.total += amount if isinstance(amount, Decimal) else Decimal(str(amount))
        rows_digest_update(self.digest, text)
        self.days.add(record["day"])
        row_organization = record.get("organization_id")
        if row_organization and row_organization != organization_id and self.foreign is None:
            self.foreign = row_organization

    def texts(self) -> Iterator[str]:
        """The spooled rows, in arrival order (a quoted value may hold a newline: hence
        one JSON string per line)."""
        self.handle.flush()
        with self.path.open("rb") as spool:
            for line in spool:
                yield _SPOOL_TEXT.decode(line)


@dataclass(frozen=True)
class ReadyMonth:
    """A checked month file, ready to be written out and uploaded."""

    organization: str
    month: str
    rows: int
    total: Decimal
    path: Path

    @property
    def filename(self) -> str:
        return upload_filename(self.month)


class MonthLedger:
    """Spools rows per (organization, month) and turns a seal into a checked file."""

    def __init__(
        self, organization_id: str, allow_partial_month: bool, work_dir: Path | None = None
    ) -> None:
        self.organization_id = organization_id
        self.allow_partial_month = allow_partial_month
        self._tmp = tempfile.TemporaryDirectory(prefix="target-pelanor-", dir=work_dir)
        self.work_dir = Path(self._tmp.name)
        self.open: dict[tuple[str, str], MonthSpool] = {}

    def add_row(self, record: dict[str, Any]) -> None:
        key = (record["organization"], record["month"])
        spool = self.open.get(key)
        if spool is None:
            path = self.work_dir / f"{key[0]}_{key[1]}.rows.jsonl"
            handle = path.open("wb")
            spool = self.open[key] = MonthSpool(key[0], key[1], path, handle)
        spool.add(record, self.organization_id)

    def seal(self, seal: dict[str, Any]) -> ReadyMonth:
        """Check a sealed month and build its upload file; raise Withheld if unsafe."""
        key = (seal["organization"], seal["month"])
        spool = self.open.pop(key, None)
        if spool is None:
            raise Withheld(
                f"sealed with {seal['row_count']} rows but no rows arrived; run the tap again"
            )
        try:
            self._check(spool, seal)
            return self._build(spool, Layout.from_dict(seal["layout"]))
        except Withheld as withheld:
            raise Withheld(str(withheld), spool.rows, spool.total) from None
        finally:
            spool.handle.close()
            spool.path.unlink()

    def unsealed(self) -> list[MonthSpool]:
        """Months whose rows arrived without a seal: the tap stopped before finishing them."""
        spools = list(self.open.values())
        for spool in spools:
            spool.handle.close()
        self.open.clear()
        return spools

    def close(self) -> None:
        self.unsealed()
        self._tmp.cleanup()

    def _check(self, spool: MonthSpool, seal: dict[str, Any]) -> None:
        if spool.organization != self.organization_id:
            raise Withheld(
                f"comes from the tap for organization {spool.organization}, but this target "
                f"uploads for {self.organization_id}; pair each tap with its own target"
            )
        if spool.foreign:
            raise Withheld(
                f"has rows of organization {spool.foreign}, not {self.organization_id}; "
                "check organization_id of the tap and the target"
            )
        arrived = (spool.rows, format_decimal(spool.total), spool.digest.hexdigest())
        sealed = (seal["row_count"], seal["total_usd"], seal["rows_digest"])
        if spool.rows != seal["row_count"] or spool.total != Decimal(seal["total_usd"]):
            raise Withheld(
                f"rows received ({arrived[0]} rows, {arrived[1]} USD) do not match the "
                f"tap's seal ({sealed[0]} rows, {sealed[1]} USD); run the pipeline again"
            )
        if arrived[2] != sealed[2]:
            raise Withheld(
                "rows received differ from the rows the tap sealed (digest mismatch); "
                "run the pipeline again"
            )
        missing = missing_days(spool.month, map(date.fromisoformat, spool.days))
        if missing and not self.allow_partial_month:
            raise Withheld(
                f"is incomplete: {len(missing)} day(s) missing ({describe_days(missing)}); "
                "export the whole month, or set allow_partial_month to upload it anyway"
            )

    def _build(self, spool: MonthSpool, layout: Layout) -> ReadyMonth:
        path = self.work_dir / upload_filename(spool.month)
        with path.open("wb") as out:
            write_export(out, layout, spool.texts())
        try:
            check = scan_export(path, self.organization_id)
        except ExportError as problem:
            where = f" at row {problem.row}" if problem.row else ""
            raise Withheld(
                f"rebuilt file fails the export checks{where}: {problem.message}"
            ) from None
        strays = [d.day for d in check.days if d.day.isoformat()[:7] != spool.month]
        if strays:
            raise Withheld(f"has rows outside the month ({describe_days(strays)})")
        return ReadyMonth(spool.organization, spool.month, spool.rows, spool.total, path)
