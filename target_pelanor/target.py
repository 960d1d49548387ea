"""target-pelanor: upload each sealed, complete OpenAI cost month to Pelanor, exactly."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TargetCapabilities,
)
from singer_sdk.sinks import Sink

from target_pelanor.client import (
    DEFAULT_UPLOAD_PATH,
    PelanorClient,
    PelanorError,
    resolve_base_url,
)
from target_pelanor.months import MonthLedger, ReadyMonth, Withheld
from target_pelanor.report import MonthResult, render_table
from target_pelanor.sinks import CostRowsSink, MonthLayoutSink, MonthSealSink

SINKS: dict[str, type[Sink]] = {
    "cost_month_layouts": MonthLayoutSink,
    "costs": CostRowsSink,
    "cost_months": MonthSealSink,
}


class TargetPelanor(Target):
    """Rebuilds each month as the exact CSV OpenAI exports, checks it, uploads it."""

    name = "target-pelanor"
    package_name = "openai-costs-to-pelanor"
    message_reader_class = MsgSpecReader
    default_sink_class = CostRowsSink
    # Not flattening: the seal's layout object must arrive whole.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.STRUCTURED_LOGGING,
        TargetCapabilities.VALIDATE_RECORDS,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "organization_id",
            th.StringType,
            required=True,
            title="OpenAI organization ID",
            description="The organization this Pelanor integration belongs to (org-...).",
        ),
        th.Property(
            "integration_id",
            th.StringType,
            title="Pelanor integration ID",
            description="The Pelanor OpenAI integration for this organization. "
            "Required unless dry_run.",
        ),
        th.Property(
            "api_token",
            th.StringType,
            secret=True,
            title="Pelanor API token",
            description="Sent as 'Authorization: Bearer <api_token>' (Pelanor issues "
            "'<token_id>:<token_secret>'). Required unless dry_run.",
        ),
        th.Property(
            "region",
            th.StringType,
            default="us",
            allowed_values=["us", "eu"],
            title="Pelanor region",
            description="us: https://api.pelanor.io, eu: https://api-eu.pelanor.io.",
        ),
        th.Property(
            "api_url",
            th.StringType,
            title="API base URL override",
            description="Replaces the region's URL. https only; http only for loopback "
            "addresses (a local sandbox).",
        ),
        th.Property(
            "upload_path",
            th.StringType,
            default=DEFAULT_UPLOAD_PATH,
            title="Upload path",
            description="Path of the upload endpoint; Pelanor does not publish it, so it is "
            "configurable. {integration_id} is replaced.",
        ),
        th.Property(
            "output_dir",
            th.StringType,
            title="Output directory",
            description="Also write each month's file here, named as OpenAI names a "
            "one-month export: cost_<first day>_<first day of the next month>.csv (the end "
            "date is exclusive, as in the names OpenAI gives its exports).",
        ),
        th.Property(
            "dry_run",
            th.BooleanType,
            default=False,
            title="Dry run",
            description="Check and write files, upload nothing, confirm no state.",
        ),
        th.Property(
            "allow_partial_month",
            th.BooleanType,
            default=False,
            title="Allow partial month",
            description="Upload months with missing days. An upload replaces the whole "
            "month in Pelanor: only for a month that really has no more data.",
        ),
        th.Property(
            "request_timeout",
            th.NumberType,
            default=60,
            title="Request timeout (seconds)",
            description="Per HTTP request.",
        ),
        th.Property(
            "max_retry_seconds",
            th.NumberType,
            default=600,
            title="Retry budget (seconds)",
            description="Total time one month's upload may spend retrying.",
        ),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._check_upload_settings()
        self.ledger = MonthLedger(
            self.config["organization_id"], bool(self.config.get("allow_partial_month"))
        )
        self.results: list[MonthResult] = []

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        if stream_name not in SINKS:
            self.abort(
                f"stream {stream_name!r} is not one target-pelanor loads; pair it with "
                "tap-openai-costs (streams cost_month_layouts, costs, cost_months)"
            )
        return SINKS[stream_name]

    def abort(self, message: str) -> NoReturn:
        """Stop with one line on stderr and exit status 1."""
        print(f"{self.name}: error: {message}", file=sys.stderr)
        sys.exit(1)

    @property
    def failed(self) -> bool:
        return any(result.failed for result in self.results)

    def deliver(self, seal: dict[str, Any]) -> None:
        """Check a sealed month, then write and upload it; record what happened."""
        organization, month = seal["organization"], seal["month"]
        try:
            ready = self.ledger.seal(seal)
        except Withheld as withheld:
            self._withhold(organization, month, withheld.rows, withheld.total, str(withheld))
            return
        try:
            self._record(self._send(ready))
        finally:
            ready.path.unlink()

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

    @cached_property
    def client(self) -> PelanorClient:
        return PelanorClient(
            base_url=resolve_base_url(self.config.get("region", "us"), self.config.get("api_url")),
            integration_id=self.config["integration_id"],
            api_token=self.config["api_token"],
            upload_path=self.config.get("upload_path", DEFAULT_UPLOAD_PATH),
            request_timeout=float(self.config.get("request_timeout", 60)),
            max_retry_seconds=float(self.config.get("max_retry_seconds", 600)),
        )

    def process_endofpipe(self) -> None:
        """Finish: months without a seal are withheld, then the report, then the verdict."""
        for month in self.ledger.unsealed():
            self._withhold(
                month.organization,
                month.month,
                month.rows,
                month.total,
                "was not sealed by the tap (it stopped before finishing the month); "
                "nothing uploaded, the next run sends it again",
            )
        super().process_endofpipe()
        self.ledger.close()
        if "client" in self.__dict__:
            self.client.close()
        print(render_table(self.results), file=sys.stderr)
        if self.failed:
            self.abort(
                f"{sum(r.failed for r in self.results)} month(s) not uploaded (see the table); "
                "no state was saved, so the next run retries them"
            )

    def _write_state_message(self, state: dict[str, Any]) -> None:
        """Confirm state only while every month so far reached Pelanor.

        Months are uploaded as their seals arrive, before any later state message can be
        drained, so state written here never covers a month that is not in Pelanor. Once a
        month fails, no state is confirmed and the next run re-sends what changed since
        the last good state. A dry run uploads nothing, so it confirms nothing either.
        """
        if self.failed or self.config.get("dry_run"):
            return
        super()._write_state_message(state)

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

    def _check_upload_settings(self) -> None:
        if self.config.get("dry_run"):
            return
        missing = [key for key in ("integration_id", "api_token") if not self.config.get(key)]
        errors = [f"{key} is required unless dry_run is true" for key in missing]
        try:
            resolve_base_url(self.config.get("region", "us"), self.config.get("api_url"))
        except ValueError as problem:
            errors.append(str(problem))
        if errors:
            raise ConfigValidationError("Config validation failed", errors=errors)


def _publish(source: Path, destination: Path) -> None:
    """Copy atomically, so a reader of output_dir never sees half a file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    shutil.copyfile(source, partial)
    partial.replace(destination)


if __name__ == "__main__":
    TargetPelanor.cli()
