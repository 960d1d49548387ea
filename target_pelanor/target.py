"""target-pelanor: upload each sealed, complete OpenAI cost month to Pelanor, exactly."""

from __future__ import annotations

import sys
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

from openai_costs import contract
from openai_costs.user_errors import stop
from target_pelanor.client import DEFAULT_UPLOAD_PATH, resolve_base_url
from target_pelanor.delivery import Delivery
from target_pelanor.sinks import CostRowsSink, MonthLayoutSink, MonthSealSink

SINKS: dict[str, type[Sink]] = {
    contract.MONTH_LAYOUTS: MonthLayoutSink,
    contract.COSTS: CostRowsSink,
    contract.MONTH_SEALS: MonthSealSink,
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
        self.delivery = Delivery(self.config, self.logger)

    def _process_schema_message(self, message_dict: dict[str, Any]) -> None:
        """Note each stream the tap announces, for the sinks' check of deselected streams."""
        super()._process_schema_message(message_dict)
        self.delivery.streams.add(message_dict["stream"])

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        if stream_name not in SINKS:
            self.abort(
                f"stream {stream_name!r} is not one target-pelanor loads; pair it with "
                "tap-openai-costs (streams cost_month_layouts, costs, cost_months)"
            )
        return SINKS[stream_name]

    def abort(self, message: str) -> NoReturn:
        """Stop with one line on stderr and exit status 1."""
        stop(self.name, [message])

    def process_endofpipe(self) -> None:
        """Finish: months without a seal are withheld, then the report, then the verdict."""
        self.delivery.withhold_unsealed()
        super().process_endofpipe()
        print(self.delivery.finish(), file=sys.stderr)
        failed = sum(result.failed for result in self.delivery.results)
        if failed:
            self.abort(
                f"{failed} month(s) not uploaded (see the table); "
                "no state was saved, so the next run retries them"
            )

    def _write_state_message(self, state: dict[str, Any]) -> None:
        """Confirm state only while every month so far reached Pelanor.

        Months are uploaded as their seals arrive, before any later state message can be
        drained, so state written here never covers a month that is not in Pelanor. Once a
        month fails, no state is confirmed and the next run re-sends what changed since
        the last good state. A dry run uploads nothing, so it confirms nothing either.
        """
        if self.delivery.failed or self.config.get("dry_run"):
            return
        super()._write_state_message(state)

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


if __name__ == "__main__":
    TargetPelanor.cli()
