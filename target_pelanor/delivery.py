"""Delivery: each sealed month checked, written out and uploaded, and what became of it.

The sinks hand records here; the target only wires settings in. A month leaves only when
the ledger passes it (sealed, matching, complete, every row checked). Results are kept for
the end-of-run table, and any failure means the target confirms no state for the run.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from openai_costs.contract import STREAMS, CostRow, MonthOpened, Seal
from target_pelanor.client import DEFAULT_UPLOAD_PATH, PelanorClient, PelanorError, resolve_base_url
from target_pelanor.month_ledger import MonthLedger, ReadyMonth, Withheld
from target_pelanor.report import MonthResult, render_table

__all__ = ["Delivering", "Delivery"]


class Delivery:
    """One run's months, from layout record to upload, and their results."""

    def __init__(self, config: Mapping[str, Any], logger: logging.Logger) -> None:
        self.config = config
        self.logger = logger
        self.ledger = MonthLedger(
            config["organization_id"], bool(config.get("allow_partial_month"))
        )
        self.results: list[MonthResult] = []
        #: Streams whose SCHEMA arrived: the tap announces every selected one up front.
        self.streams: set[str] = set()

    @property
    def failed(self) -> bool:
        return any(result.failed for result in self.results)

    def missing_streams(self) -> list[str]:
        """The tap's streams that were not announced (deselected), in the tap's order."""
        return [stream for stream in STREAMS if stream not in self.streams]

    def open_month(self, opened: MonthOpened) -> None:
        self.ledger.open_month(opened)

    def add_row(self, row: CostRow) -> None:
        self.ledger.add_row(row)

    def deliver(self, seal: Seal) -> None:
        """Check a sealed month, then write and upload it; record what happened."""
        try:
            ready = self.ledger.seal(seal)
        except Withheld as withheld:
            self._withhold(
                seal.organization, seal.month, withheld.rows, withheld.total, str(withheld)
            )
            return
        try:
            self._record(self._send(ready))
        finally:
            ready.path.unlink()

    def withhold_unsealed(self) -> None:
        """The input ended: months that never got a seal are withheld (before any state is
        confirmed, so it never covers them)."""
        for month in self.ledger.unsealed():
            self._withhold(
                month.organization,
                month.month,
                month.rows,
                month.total,
                "was not sealed by the tap (it stopped before finishing the month); "
                "nothing uploaded, the next run sends it again",
            )

    def finish(self) -> str:
        """Clean up, and return the results table."""
        self.ledger.close()
        if "client" in self.__dict__:
            self.client.close()
        return render_table(self.results)

    @cached_property
    def client(self) -> PelanorClient:
        config = self.config
        return PelanorClient(
            base_url=resolve_base_url(config.get("region", "us"), config.get("api_url")),
            integration_id=config["integration_id"],
            api_token=config["api_token"],
            upload_path=config.get("upload_path", DEFAULT_UPLOAD_PATH),
            request_timeout=float(config.get("request_timeout", 60)),
            max_retry_seconds=float(config.get("max_retry_seconds", 600)),
        )

    def _send(self, ready: ReadyMonth) -> MonthResult:
        actions = []
        output_dir = self.config.get("output_dir")
        if output_dir:
            _publish(ready.path, Path(output_dir) / ready.filename)
            actions.append(f"written to {output_dir}")
        result = MonthResult(ready.organization, ready.month, ready.rows, ready.total, "")
        if self.config.get("dry_run"):
            return replace(result, action=", ".join(actions) or "checked (dry run)")
        try:
            receipt = self.client.upload(
                month=ready.month, filename=ready.filename, content=ready.path
            )
        except PelanorError as error:
            return replace(result, action="; ".join([f"failed: {error}", *actions]), failed=True)
        action = ", ".join(["uploaded", *actions])
        return replace(result, action=action, response_id=receipt.response_id)

    def _withhold(
        self, organization: str, month: str, rows: int, total: Decimal, reason: str
    ) -> None:
        self._record(
            MonthResult(organization, month, rows, total, f"withheld: {reason}", failed=True)
        )

    def _record(self, result: MonthResult) -> None:
        log = self.logger.error if result.failed else self.logger.info
        log("%s %s: %s", result.organization, result.month, result.action)
        self.results.append(result)


class Delivering(Protocol):
    """What the sinks need of their target: its delivery."""

    delivery: Delivery


def _publish(source: Path, destination: Path) -> None:
    """Copy atomically, so a reader of output_dir never sees half a file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    shutil.copyfile(source, partial)
    partial.replace(destination)
