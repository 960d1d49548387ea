"""target-pelanor: upload each sealed, complete OpenAI cost month to Pelanor, exactly.

However a run ends (the input's end, a problem that stops it, SIGTERM or SIGINT), the
target prints what became of every month it knows, confirms no state beyond what Pelanor
accepted, and removes its working files; any month not uploaded means exit status 1.
"""

from __future__ import annotations

import copy
import sys
from types import FrameType
from typing import Any, ClassVar, NoReturn

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TargetCapabilities,
)
from singer_sdk.sinks import Sink

from openai_costs import contract
from openai_costs.user_errors import stop
from openai_costs.work_folder import WorkFolderError
from target_pelanor.client import DEFAULT_UPLOAD_PATH
from target_pelanor.delivery import Delivery
from target_pelanor.fast_records import FastRecords
from target_pelanor.input_reader import NumberedReader
from target_pelanor.settings_check import setting_errors
from target_pelanor.sinks import CostRowsSink, MonthLayoutSink, MonthSealSink
from target_pelanor.stopping import Interrupted, RunStopped

SINKS: dict[str, type[Sink]] = {
    contract.MONTH_LAYOUTS: MonthLayoutSink,
    contract.COSTS: CostRowsSink,
    contract.MONTH_SEALS: MonthSealSink,
}


class TargetPelanor(Target):
    """Rebuilds each month as the exact CSV OpenAI exports, checks it, uploads it."""

    name = "target-pelanor"
    package_name = "openai-costs-to-pelanor"
    message_reader_class = NumberedReader
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
            "'<token_id>:<token_secret>'). Required unless dry_run (or api_token_env).",
        ),
        th.Property(
            "api_token_env",
            th.StringType,
            title="API token variable",
            description="Instead of api_token: the name of an environment variable that "
            "holds the token, read at start, so the token itself is in no config file "
            "(Meltano writes plugin configs to .meltano/run/ during a run).",
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
            "configurable. Starts with '/'; {integration_id} is replaced (the only "
            "placeholder).",
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
            "allow_shrinking_months",
            th.BooleanType,
            default=False,
            title="Allow shrinking months",
            description="Upload a month even if it has fewer days or rows, or a total more "
            "than 0.5% (at least $0.01) lower, than the copy this target uploaded before. "
            "Only when the smaller month is known to be right (OpenAI corrected it).",
        ),
        th.Property(
            "request_timeout",
            th.NumberType,
            default=60,
            title="Request timeout (seconds)",
            description="Bounds each whole HTTP request: connecting, sending the file and "
            "receiving the whole answer. Must be positive.",
        ),
        th.Property(
            "max_retry_seconds",
            th.NumberType,
            default=600,
            title="Upload budget (seconds)",
            description="Bounds one month's whole upload: every attempt, every wait between "
            "attempts and an answer still arriving (the first attempt always gets its full "
            "request_timeout). Also how long to wait for another target-pelanor process "
            "uploading the same month. 0 or more.",
        ),
        th.Property(
            "work_dir",
            th.StringType,
            title="Working folder",
            description="Where the target keeps each month's file until it is uploaded "
            "(cost rows, e-mail addresses), in a private folder per run removed when the "
            "run ends; leftovers of killed runs are removed at the next start. Also holds "
            "the upload locks. Default: <system temp>/target-pelanor-<uid>.",
        ),
    ).to_dict()

    #: The target of this process, for :meth:`invoke` to finish a run that stopped early.
    _running: ClassVar[TargetPelanor | None] = None
    #: Set before ``__init__`` runs: the SDK installs the signal handler in its own.
    _signal: int | None = None
    _writing_state = False
    _finishing = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        errors = setting_errors(self.config)
        if errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        try:
            self.delivery = Delivery(self.config, self.logger)
        except WorkFolderError as problem:
            raise ConfigValidationError("Config validation failed", errors=[str(problem)]) from None
        #: The last state the tap passed on while every month so far had reached Pelanor.
        self._good_state: dict[str, Any] | None = None
        self._confirmed: dict[str, Any] | None = None
        if isinstance(self.message_reader, NumberedReader):  # costs rows without the SDK's
            self.message_reader.fast_lines = FastRecords(self).take  # per-record path
        TargetPelanor._running = self

    @classmethod
    def invoke(cls, **kwargs: Any) -> None:
        """The SDK's invoke; a run that stops early (a signal, a problem no month can get
        past) is finished here: report, state, working files, exit status 1."""
        try:
            super().invoke(**kwargs)
        except (Interrupted, RunStopped) as stopped:
            target = cls._running
            if target is None:  # while starting: nothing was read, nothing uploaded
                what = f"stopped by {stopped.name}" if isinstance(stopped, Interrupted) else ""
                stop(cls.name, [what or str(stopped)])
            target.stop_early(stopped)

    def _process_schema_message(self, message_dict: dict[str, Any]) -> None:
        """Note each stream the tap announces, for the sinks' check of deselected streams."""
        super()._process_schema_message(message_dict)
        self.delivery.streams.add(message_dict["stream"])

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        """The stream's sink (there is no default one); another stream stops the run, which
        then ends as any stop does: the table, state of the months uploaded so far."""
        if stream_name not in SINKS:
            raise RunStopped(
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
        self._finishing = True
        print(self.delivery.finish(), file=sys.stderr)
        failed = sum(result.failed for result in self.delivery.results)
        if failed:
            saved = self._confirm_good_state()
            self.abort(f"{failed} month(s) not uploaded (see the table); {saved}")

    def stop_early(self, stopped: Interrupted | RunStopped) -> NoReturn:
        """The run stops before its input ended: every month not done says why."""
        self._finishing = True
        if isinstance(stopped, Interrupted):
            self.logger.warning("Received %s: stopping", stopped.name)
            not_done = (
                f"not uploaded: target-pelanor was stopped ({stopped.name}) before the month "
                "was finished; the next run sends it again"
            )
        else:
            not_done = "not uploaded: the run stopped before the month was finished (see below)"
        self.delivery.withhold_unsealed(not_done)
        print(self.delivery.finish(), file=sys.stderr)
        saved = self._confirm_good_state()
        if isinstance(stopped, RunStopped):
            self.abort(str(stopped))
        failed = sum(result.failed for result in self.delivery.results)
        self.abort(
            f"stopped by {stopped.name}: {failed} month(s) not uploaded (see the table); {saved}"
        )

    def _process_state_message(self, message_dict: dict[str, Any]) -> None:
        """Learn what was uploaded before (the tap passes the target's bookmark on), and
        remember the state as good while every month so far reached Pelanor."""
        super()._process_state_message(message_dict)
        state = message_dict["value"]
        if isinstance(state, dict):
            self.delivery.memory.learn(state)
            if not self.delivery.failed:
                self._good_state = copy.deepcopy(state)

    def _write_state_message(self, state: dict[str, Any]) -> None:
        """Confirm state only while every month so far reached Pelanor, with the record of
        what this target uploaded merged in.

        Months are uploaded as their seals arrive, before any later state message can be
        drained, so state written here never covers a month that is not in Pelanor. Once a
        month fails, state is confirmed once more at the end only: the last good state
        (see :meth:`_confirm_good_state`). A dry run uploads nothing, so it confirms
        nothing either.
        """
        if self.delivery.failed or self.config.get("dry_run"):
            return
        self._emit_state(self.delivery.memory.merged_into(state))

    def _confirm_good_state(self) -> str:
        """After a failure: confirm the last good state, with every upload Pelanor
        accepted in this run recorded (the shrink guard needs them next run). Returns
        what the user is told about it."""
        if self.config.get("dry_run") or not self.delivery.memory.changed:
            # Nothing new reached Pelanor: the state saved before this run stands.
            return "no state was saved, so the next run retries them"
        state = self.delivery.memory.merged_into(self._good_state or {})
        if state != self._confirmed:
            self._emit_state(state)
        return (
            "the state saved covers only the months Pelanor accepted, so the next run "
            "retries the others"
        )

    def _emit_state(self, state: dict[str, Any]) -> None:
        """Write one state line; a signal arriving meanwhile is acted on after it."""
        self._writing_state = True
        try:
            super()._write_state_message(state)
            self._confirmed = state
        finally:
            self._writing_state = False
        if self._signal is not None and not self._finishing:
            raise Interrupted(self._signal)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM or SIGINT: stop now, even inside an upload; the run is then finished by
        :meth:`stop_early`. Later signals are ignored while it does."""
        if self._signal is not None:
            return
        self._signal = signum  # nothing else here: no output from inside a signal handler
        if not (self._writing_state or self._finishing):
            raise Interrupted(signum)


if __name__ == "__main__":
    TargetPelanor.cli()
