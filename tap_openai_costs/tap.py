"""tap-openai-costs: OpenAI cost data as exact, month-sealed Singer records.

Its settings are declared, defaulted and checked in :mod:`tap_openai_costs.settings`; the
tap builds them once (``settings``), which its streams read.
"""

from __future__ import annotations

import copy
import io
import json
from functools import cached_property
from typing import IO, Any, ClassVar

import click
from singer_sdk import Stream, Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    FLATTENING_CONFIG,
    CapabilitiesEnum,
    PluginCapabilities,
    TapCapabilities,
)

from openai_costs.contract import STATE_FIX, state_problem
from openai_costs.log_levels import quiet_library_lines
from openai_costs.os_errors import reason
from openai_costs.printable import escape_log_arguments
from openai_costs.safe_files import UnsafeFile, read_regular
from openai_costs.user_errors import exit_on_problems, settings_not_usable
from tap_openai_costs.focus import FocusCostsStream
from tap_openai_costs.message_writer import BufferedMsgSpecWriter
from tap_openai_costs.settings import SCHEMA, TapSettings
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

    #: Declared, with each setting's default and check, in :mod:`tap_openai_costs.settings`;
    #: a copy, as the SDK adds its built-in settings to the plugin's schema in place.
    config_jsonschema = copy.deepcopy(SCHEMA)

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
        if validate_config:  # discovery: the schemas are static, so no setting is needed
            _ = self.settings  # every problem said now, before anything runs

    @cached_property
    def settings(self) -> TapSettings:
        """This run's settings, checked and typed (``ConfigValidationError`` if they
        cannot be used); what the streams read."""
        return TapSettings.from_config(self.config)

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
                exit_on_problems(cls.name, [f"{where} is not valid JSON ({detail}); {STATE_FIX}"])
            if problem := state_problem(value):
                exit_on_problems(cls.name, [f"{where} cannot be read: {problem}; {STATE_FIX}"])
            state = io.StringIO(text)
        try:
            super().invoke(state=state, **kwargs)
        except ConfigValidationError as invalid:
            settings_not_usable(cls.name, invalid.errors)
        except TapStopped as stopped:
            exit_on_problems(cls.name, stopped.problems)

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """``--test``, whose sync reports a stop as :meth:`invoke` does."""
        try:
            super().cb_test(ctx, param, value)
        except TapStopped as stopped:
            exit_on_problems(cls.name, stopped.problems)

    def load_state(self, state: dict[str, Any]) -> None:
        """The SDK's, refusing a state of the wrong shape in one line (the SDK's own load
        ends in a traceback on a list where a map belongs)."""
        if problem := state_problem(state):
            exit_on_problems(self.name, [f"the state cannot be read: {problem}; {STATE_FIX}"])
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
        exit_on_problems(TapOpenAICosts.name, [f"{where} cannot be read: it {problem}; {fix}"])
    except OSError as error:
        exit_on_problems(TapOpenAICosts.name, [f"{where} cannot be read ({reason(error)}); {fix}"])
    except UnicodeDecodeError:
        exit_on_problems(TapOpenAICosts.name, [f"{where} is not UTF-8 text; {STATE_FIX}"])


if __name__ == "__main__":
    TapOpenAICosts.cli()
