"""tap-openai-costs: OpenAI cost data as exact, month-sealed Singer records."""

from __future__ import annotations

import io
import json
from typing import IO, Any, ClassVar

import click
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    FLATTENING_CONFIG,
    CapabilitiesEnum,
    PluginCapabilities,
    TapCapabilities,
)

from openai_costs.contract import MONTH_PATTERN, STATE_FIX, state_problem
from openai_costs.log_levels import quiet_library_lines
from openai_costs.os_errors import reason
from openai_costs.printable import escape_log_arguments
from openai_costs.safe_files import UnsafeFile, read_regular
from openai_costs.user_errors import settings_not_usable, stop
from tap_openai_costs.costs_api import (
    API_LAYOUTS,
    DEFAULT_API_LAYOUT,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RETRY_SECONDS,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SETTLE_DAYS,
)
from tap_openai_costs.focus import FocusCostsStream
from tap_openai_costs.message_writer import BufferedMsgSpecWriter
from tap_openai_costs.settings_check import setting_errors
from tap_openai_costs.streams import CostsStream, MonthLayoutsStream, MonthSealsStream, TapStopped


class TapOpenAICosts(Tap):
    """Reads OpenAI cost data, validates all of it, and seals the months that changed."""

    name = "tap-openai-costs"
    package_name = "openai-costs-to-pelanor"
    message_writer_class = BufferedMsgSpecWriter
    # Not flattening: the seal's layout object must reach the target whole.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.STRUCTURED_LOGGING,
        PluginCapabilities.BATCH,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "source",
            th.StringType,
            default="files",
            allowed_values=["files", "api"],
            title="Source",
            description="files: dashboard CSV exports (paths). api: OpenAI's Costs API "
            "(admin_api_key).",
        ),
        th.Property(
            "paths",
            th.ArrayType(th.StringType),
            title="Export paths",
            description="Files, folders (every *.csv inside) or glob patterns of OpenAI Cost "
            "data exports (Usage > Export > Cost data, group by Line Item, 1 day, CSV). "
            "Required when source is files.",
        ),
        th.Property(
            "organization_id",
            th.StringType,
            title="OpenAI organization ID",
            description="The organization (org-...) this connector serves; "
            "a row of any other fails the run. Required.",
        ),
        th.Property(
            "start_month",
            th.StringType,
            title="Start month",
            description="YYYY-MM: ignore earlier months. With source api, the backfill start "
            "(default: the previous month).",
            pattern=MONTH_PATTERN,
        ),
        th.Property(
            "admin_api_key",
            th.StringType,
            secret=True,
            title="OpenAI admin API key",
            description="An organization admin key (sk-admin-...), for source api.",
        ),
        th.Property(
            "organization_name",
            th.StringType,
            title="OpenAI organization name",
            description="For source api: written in the organization_name column of rows "
            "whose API result does not name the organization (the live API's results may). "
            "Use the name the dashboard's exports show.",
        ),
        th.Property(
            "api_base_url",
            th.StringType,
            default=DEFAULT_BASE_URL,
            title="OpenAI API base URL",
            description="https only; http only for loopback addresses (a local fake).",
        ),
        th.Property(
            "api_layout",
            th.StringType,
            default=DEFAULT_API_LAYOUT,
            allowed_values=list(API_LAYOUTS),
            title="Layout of API months",
            description="For source api: the columns of each month's file. nine_columns: "
            "the nine Pelanor lists, as in most real downloads. wide: the current export's "
            "17 (quantity, user and API key columns too). Records carry every value either "
            "way.",
        ),
        th.Property(
            "check_against_api",
            th.BooleanType,
            default=False,
            title="Check exports against the API",
            description="For source files: before sealing an export month, compare each "
            "day's total with OpenAI's Costs API (admin_api_key; one request a month). A day "
            "more than 0.5% (at least $0.01) apart leaves the month unsealed.",
        ),
        th.Property(
            "request_timeout",
            th.IntegerType,
            default=DEFAULT_REQUEST_TIMEOUT,
            title="Request timeout (seconds)",
            description="Bounds each whole request to OpenAI's API: connecting, sending and "
            "receiving the whole answer. Must be positive.",
        ),
        th.Property(
            "max_retry_seconds",
            th.IntegerType,
            default=DEFAULT_MAX_RETRY_SECONDS,
            title="Retry budget (seconds)",
            description="Bounds all attempts of one request to OpenAI's API, waits between "
            "them included (the first attempt always gets its full request_timeout). 0 or "
            "more.",
        ),
        th.Property(
            "settle_days",
            th.IntegerType,
            default=DEFAULT_SETTLE_DAYS,
            title="Settle days",
            description="For source api: how many days after a month ends it is still "
            "re-read, since OpenAI restates recent days.",
        ),
        th.Property(
            "work_dir",
            th.StringType,
            title="Working folder",
            description="Where the tap keeps its working files (the months read from the "
            "Costs API, with cost rows and e-mail addresses), in a private folder per run, "
            "removed when the run ends; those of killed runs are removed at the next start. "
            "Default: <system temp>/tap-openai-costs-<uid>.",
        ),
        th.Property(
            "focus_user_email",
            th.BooleanType,
            default=False,
            title="FOCUS: user e-mail",
            description="Fill x_UserEmail in focus_costs records with the row's user_email "
            "(personal data). Off: x_UserEmail is null. The costs stream is not affected.",
        ),
    ).to_dict()

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict[str, Any]) -> None:
        """The SDK's built-in settings, without schema flattening: the SDK offers it to
        every tap, whatever its capabilities, but it is refused here."""
        super().append_builtin_config(config_jsonschema)
        for key in FLATTENING_CONFIG["properties"]:
            config_jsonschema["properties"].pop(key, None)

    def __init__(self, *args: Any, validate_config: bool = True, **kwargs: Any) -> None:
        quiet_library_lines(self.name)
        escape_log_arguments()
        super().__init__(*args, validate_config=validate_config, **kwargs)
        if not validate_config:
            return  # discovery: the schemas are static, so no setting is needed
        errors = setting_errors(self.config)
        if errors:
            raise ConfigValidationError("Config validation failed", errors=errors)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Discovery (``--discover``, ``meltano select --list``) runs without checking the
        settings, and without the SDK's warning that an empty config fails them."""
        if raise_errors:
            return super()._validate_config(raise_errors=raise_errors)
        self.append_builtin_config(self.config_jsonschema)
        return []

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command, with ``--state`` taken as a path that :meth:`invoke` opens
        (:func:`read_state`): the SDK's option opens it first, where a FIFO hangs the tap
        before it starts."""
        command = super().get_singer_command()
        for param in command.params:
            if param.name == "state":
                param.type = click.STRING
        return command

    @classmethod
    def invoke(cls, *, state: IO[str] | str | None = None, **kwargs: Any) -> None:
        """The SDK's invoke. A state that cannot be read (cut short, edited, not a regular
        file, too large) is stopped in one line before the SDK reads it (it would print a
        traceback, or wait on a FIFO); settings that cannot be used end in one line naming
        them all (:func:`settings_not_usable`); a run stopped by problems the user must fix
        reports them after everything else the tap writes (the SDK's metric lines), and
        exits 1."""
        if state is not None:
            text = read_state(state)
            where = f"the state ({getattr(state, 'name', state)})"
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                detail = f"{error.msg}: line {error.lineno}, column {error.colno}"
                stop(cls.name, [f"{where} is not valid JSON ({detail}); {STATE_FIX}"])
            if problem := state_problem(value):
                stop(cls.name, [f"{where} cannot be read: {problem}; {STATE_FIX}"])
            state = io.StringIO(text)
        try:
            super().invoke(state=state, **kwargs)
        except ConfigValidationError as invalid:
            settings_not_usable(cls.name, invalid.errors)
        except TapStopped as stopped:
            stop(cls.name, stopped.problems)

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """``--test``, whose sync reports a stop as :meth:`invoke` does."""
        try:
            super().cb_test(ctx, param, value)
        except TapStopped as stopped:
            stop(cls.name, stopped.problems)

    def load_state(self, state: dict[str, Any]) -> None:
        """The SDK's, refusing a state of the wrong shape in one line (the SDK's own load
        ends in a traceback on a list where a map belongs)."""
        if problem := state_problem(state):
            stop(self.name, [f"the state cannot be read: {problem}; {STATE_FIX}"])
        super().load_state(state)

    def discover_streams(self) -> list[Stream]:
        return [
            CostsStream(self),
            MonthLayoutsStream(self),
            MonthSealsStream(self),
            FocusCostsStream(self),
        ]


#: The largest state file read. A state records each export file in a few KiB (its days),
#: so this holds thousands of them; a larger file is not a state, and is not read whole.
MAX_STATE_BYTES = 64 << 20


def read_state(state: IO[str] | str) -> str:
    """The text of ``--state``: a path, read as a regular file of at most
    :data:`MAX_STATE_BYTES` (:mod:`openai_costs.safe_files`), or an open file. A state
    that cannot be read stops the tap with one line."""
    if not isinstance(state, str):
        return state.read()
    where = f"the state ({state})"
    fix = "give --state the state file (meltano passes one), or run without it"
    try:
        return read_regular(state, MAX_STATE_BYTES).decode("utf-8")
    except UnsafeFile as problem:
        stop(TapOpenAICosts.name, [f"{where} cannot be read: it {problem}; {fix}"])
    except OSError as error:
        stop(TapOpenAICosts.name, [f"{where} cannot be read ({reason(error)}); {fix}"])
    except UnicodeDecodeError:
        stop(TapOpenAICosts.name, [f"{where} is not UTF-8 text; {STATE_FIX}"])


if __name__ == "__main__":
    TapOpenAICosts.cli()
