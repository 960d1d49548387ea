"""target-pelanor: upload each sealed, complete OpenAI cost month to Pelanor, exactly.

However a run ends (the input's end, a problem that stops it, SIGTERM or SIGINT), the
target prints what became of every month it knows, confirms no state beyond what Pelanor
accepted, and removes its working files; any month not uploaded means exit status 1.

Its settings are declared, defaulted and checked in :mod:`target_pelanor.settings`; the
target builds them once (``settings``) and hands them to the delivery and the checks.
"""

from __future__ import annotations

import copy
import math
from decimal import Decimal
from types import FrameType
from typing import Any, ClassVar, NoReturn

import click
from singer_sdk import Target
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TargetCapabilities,
)
from singer_sdk.sinks import Sink

from openai_costs import contract
from openai_costs.log_levels import quiet_library_lines
from openai_costs.printable import escape_log_arguments
from openai_costs.user_errors import exit_on_problems, settings_not_usable
from openai_costs.work_folder import WorkFolderError
from target_pelanor.connection_check import MELTANO_TEST_STREAM, CheckFailed, run_checks
from target_pelanor.delivery import Delivery
from target_pelanor.input_reader import CheckedMessageReader
from target_pelanor.integration_binding import BindingProblem
from target_pelanor.settings import SCHEMA, TargetSettings, before_type_check
from target_pelanor.sinks import CostRowsSink, IgnoredSink, MonthLayoutSink, MonthSealSink
from target_pelanor.stopping import BeforeSchema, Interrupted, RunStopped

SINKS: dict[str, type[Sink]] = {
    contract.MONTH_LAYOUTS: MonthLayoutSink,
    contract.COSTS: CostRowsSink,
    contract.MONTH_SEALS: MonthSealSink,
}


class TargetPelanor(Target):
    """Rebuilds each month as the exact CSV OpenAI exports, checks it, uploads it."""

    name = "target-pelanor"
    package_name = "openai-costs-to-pelanor"
    message_reader_class = CheckedMessageReader
    # Not flattening: the seal's layout object must arrive whole.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.STRUCTURED_LOGGING,
        TargetCapabilities.VALIDATE_RECORDS,
    ]

    #: Declared, with each setting's default and check, in :mod:`target_pelanor.settings`;
    #: a copy, as the SDK adds its built-in settings to the plugin's schema in place.
    config_jsonschema = copy.deepcopy(SCHEMA)

    #: The target of this process, for :meth:`invoke` to finish a run that stopped early.
    _running: ClassVar[TargetPelanor | None] = None
    #: Set before ``__init__`` runs: the SDK installs the signal handler in its own.
    _signal: int | None = None
    _writing_state = False
    _finishing = False
    #: Meltano's ``config test`` sent its own stream: check, upload nothing.
    _meltano_test = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        quiet_library_lines(self.name)
        escape_log_arguments()
        super().__init__(*args, **kwargs)
        #: This run's settings, checked and typed (``ConfigValidationError`` naming every
        #: problem if they cannot be used); what the rest of the target reads.
        self.settings = TargetSettings.from_config(self.config)
        try:
            self.delivery = Delivery(self.settings, self.logger)
        except (WorkFolderError, BindingProblem) as problem:
            raise ConfigValidationError("Config validation failed", errors=[str(problem)]) from None
        #: The last state the tap passed on while every month so far had reached Pelanor.
        self._good_state: dict[str, Any] | None = None
        self._confirmed: dict[str, Any] | None = None
        TargetPelanor._running = self

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """The SDK's check of the settings' types, with lines of our own where the SDK's
        would mislead (:func:`~target_pelanor.settings.before_type_check`)."""
        ours = before_type_check(self._config)
        try:
            errors = super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as invalid:
            invalid.errors.extend(ours)
            raise
        if ours and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=ours)
        return errors + ours

    @classmethod
    def invoke(cls, **kwargs: Any) -> None:
        """The SDK's invoke; settings that cannot be used end in one line naming them all
        (:func:`settings_not_usable`); a run that stops early (a signal, a problem no month
        can get past) is finished here: report, state, working files, exit status 1."""
        try:
            super().invoke(**kwargs)
        except ConfigValidationError as invalid:
            settings_not_usable(cls.name, invalid.errors)
        except (Interrupted, RunStopped) as stopped:
            target = cls._running
            if target is None:  # while starting: nothing was read, nothing uploaded
                what = f"stopped by {stopped.name}" if isinstance(stopped, Interrupted) else ""
                exit_on_problems(cls.name, [what or str(stopped)])
            target.stop_early(stopped)

    def _process_schema_message(self, message_dict: dict[str, Any]) -> None:
        """Note each stream the tap announces, for the sinks' check of deselected streams."""
        super()._process_schema_message(message_dict)
        self.delivery.streams.add(message_dict["stream"])

    def _assert_sink_exists(self, stream_name: str) -> None:
        """A record of a stream before its SCHEMA message: one line (the SDK's record loop
        asks here first)."""
        if not self.sink_exists(stream_name):
            self._before_schema("RECORD", stream_name)

    def _process_batch_message(self, message_dict: dict[str, Any]) -> None:
        """The SDK's, after the check it lacks: the stream's SCHEMA message came first."""
        stream_name = message_dict["stream"]
        if stream_name not in self.mapper.stream_maps:
            self._before_schema("BATCH", stream_name)
        super()._process_batch_message(message_dict)

    def _before_schema(self, kind: str, stream_name: str) -> NoReturn:
        what = f"is a {kind} message of stream {stream_name!r} before that stream's SCHEMA message"
        reader = self.message_reader
        line = reader.problem(what) if isinstance(reader, CheckedMessageReader) else what
        raise BeforeSchema(line)

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        """The stream's sink (there is no default one); another stream stops the run, which
        then ends as any stop does: the table, state of the months uploaded so far.
        Meltano's test stream, alone, makes the run a check (:meth:`_finish_meltano_test`);
        ``focus_costs`` (the tap's FOCUS rows) is taken and dropped."""
        if (stream_name == MELTANO_TEST_STREAM) != self._meltano_test:
            if self._meltano_test or self.delivery.streams - {MELTANO_TEST_STREAM}:
                raise RunStopped(
                    f"{MELTANO_TEST_STREAM} (Meltano's config test) comes alone: a run that "
                    "tests target-pelanor loads no other stream"
                )
            self._meltano_test = True
        if self._meltano_test:
            return IgnoredSink
        if stream_name == contract.FOCUS_COSTS:
            self.logger.info(
                "%s: not uploaded (Pelanor takes the export's own rows); deselect it for this "
                "job to spare the tap the work (meltano select)",
                stream_name,
            )
            return IgnoredSink
        if stream_name not in SINKS:
            raise RunStopped(
                f"stream {stream_name!r} is not one target-pelanor loads; pair it with "
                "tap-openai-costs (streams cost_month_layouts, costs, cost_months)"
            )
        return SINKS[stream_name]

    def abort(self, message: str) -> NoReturn:
        """Stop with one line on stderr and exit status 1."""
        exit_on_problems(self.name, [message])

    def process_endofpipe(self) -> None:
        """Finish: months without a seal are withheld, then the report, then the verdict."""
        if self._meltano_test:
            self._finish_meltano_test()
            return
        self.delivery.withhold_unsealed()
        super().process_endofpipe()
        self._finishing = True
        self.delivery.finish()
        failed = sum(result.failed for result in self.delivery.results)
        if failed:
            saved = self._confirm_good_state()
            self.abort(f"{failed} month(s) not uploaded (see the table); {saved}")

    def _finish_meltano_test(self) -> None:
        """Meltano's ``config test`` sent its stream: check, upload nothing."""
        self._finishing = True
        self.check_connection()

    def check_connection(self) -> None:
        """The checks of ``meltano config test`` and ``--check``
        (:mod:`target_pelanor.connection_check`); a check that fails stops the run with its
        one line. Nothing is uploaded."""
        try:
            run_checks(self.settings, self.logger, lambda: self.delivery.client)
        except CheckFailed as failed:
            self.delivery.close()
            self.abort(str(failed))
        self.delivery.close()

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command, with ``--check``."""
        command = super().get_singer_command()
        command.params.append(
            click.Option(
                ["--check"],
                is_flag=True,
                expose_value=False,
                callback=cls.cb_check,
                help="Check the settings, that Pelanor answers, and with check_path that it "
                "takes the token; read no input, upload nothing.",
            )
        )
        return command

    @classmethod
    def cb_check(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """``--check``: what ``meltano config test`` checks, without input (Meltano runs
        it as ``meltano invoke target-pelanor:check``)."""
        if not value:
            return
        given = ctx.params.get("config")
        try:
            target = cls(
                config=getattr(given, "config", None),
                parse_env_config=getattr(given, "parse_env", False),
                validate_config=True,
            )
        except ConfigValidationError as invalid:
            settings_not_usable(cls.name, invalid.errors)
        target.check_connection()
        ctx.exit()

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
        self.delivery.finish("no month was uploaded")
        saved = self._confirm_good_state()
        if isinstance(stopped, RunStopped):
            self.abort(str(stopped))
        failed = sum(result.failed for result in self.delivery.results)
        self.abort(
            f"stopped by {stopped.name}: {failed} month(s) not uploaded (see the table); {saved}"
        )

    def _process_state_message(self, message_dict: dict[str, Any]) -> None:
        """Learn what was uploaded before (the tap passes the target's bookmark on), and
        remember the state as good while every month so far reached Pelanor. A state of
        the wrong shape stops the run: nothing in it can be trusted, the upload records
        least of all."""
        if self._meltano_test:
            return  # Meltano's test state: nothing of it is ever confirmed
        state = message_dict["value"]
        if problem := contract.state_problem(state):
            raise RunStopped(
                f"the state the tap passed on cannot be read: {problem}; {contract.STATE_FIX}"
            )
        super()._process_state_message(message_dict)
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
        if self.delivery.failed or self.settings.dry_run or self._meltano_test:
            return
        self._emit_state(self.delivery.memory.merged_into(state))

    def _confirm_good_state(self) -> str:
        """After a failure: confirm the last good state, with every upload Pelanor
        accepted in this run recorded (the shrink guard needs them next run). Returns
        what the user is told about it."""
        if self.settings.dry_run or not self.delivery.memory.changed:
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
        """Write one state line; a signal arriving meanwhile is acted on after it. Numbers
        in it (the reader makes them Decimal, which the SDK cannot write) go back as JSON
        numbers."""
        self._writing_state = True
        try:
            super()._write_state_message(json_numbers(state))
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


def json_numbers(value: Any) -> Any:
    """``value`` with every Decimal as an int or float (the text of one that has no float,
    such as ``1E+999``): a state passes numbers on only in entries this target cannot read,
    which must go back as they came, still unreadable."""
    if isinstance(value, dict):
        return {key: json_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_numbers(item) for item in value]
    if isinstance(value, Decimal):
        if value.is_finite() and value.adjusted() < 30 and value == value.to_integral_value():
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else str(value)
    return value


if __name__ == "__main__":
    TargetPelanor.cli()
