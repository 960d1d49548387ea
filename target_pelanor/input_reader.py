"""The target's input: Singer messages, one JSON object per line, counted as they come.

The SDK's reader logs a line it cannot use in full (cost rows, e-mail addresses) with a
traceback: a line that is not JSON, a message without a key its type needs, a type it does
not know. This one stops the run with one line that names the line number only, never the
line's content. No line is read past :data:`MAX_LINE_CHARACTERS`. The loop over the lines
is the SDK's own: :meth:`CheckedMessageReader.process_lines` only hands it the bounded
lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import IO, Any, NoReturn, cast

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader, decoder

from openai_costs.pipes import widen_pipe
from openai_costs.safe_files import bounded_lines
from target_pelanor.stopping import RunStopped

__all__ = ["MAX_LINE_CHARACTERS", "REQUIRED_KEYS", "CheckedMessageReader"]

#: The longest input line read: a line is read up to this many characters, so a line
#: without end never fills memory. A STATE message carries the tap's state (a state file
#: is at most 64 MiB) and a costs RECORD one row: far less.
MAX_LINE_CHARACTERS = 128 << 20

#: The keys each Singer message type needs before the SDK may look at it.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "RECORD": ("stream", "record"),
    "SCHEMA": ("stream", "schema"),
    "STATE": ("value",),
    "ACTIVATE_VERSION": ("stream", "version"),
    "BATCH": ("stream", "encoding", "manifest"),
}


class CheckedMessageReader(MsgSpecReader):
    """The SDK's msgspec reader (exact decimals), its lines read within a bound and counted,
    refusing a line that is not a message by its number."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0

    def process_lines(
        self, file_input: IO[str] | None, callbacks: dict[str, Callable[[dict[str, Any]], None]]
    ) -> Counter[str]:
        """The SDK's loop over the input's lines, each read up to the bound: a longer one
        arrives cut, and is refused (:meth:`deserialize_json`) as it cannot be a whole
        message. A pipe is widened first (:mod:`openai_costs.pipes`)."""
        source = file_input or self.default_input
        widen_pipe(source)
        lines = bounded_lines(source, MAX_LINE_CHARACTERS)
        # The SDK's loop only iterates over its input.
        return super().process_lines(cast("IO[str]", lines), callbacks)

    def deserialize_json(self, line: str) -> dict[str, Any]:
        self.line_number += 1
        try:
            message = decoder.decode(line)
        except msgspec.DecodeError:
            if len(line) > MAX_LINE_CHARACTERS:  # cut at the bound (bounded_lines)
                limit = f"{MAX_LINE_CHARACTERS:,} characters"
                raise RunStopped(self.problem(f"is longer than {limit}")) from None
            raise RunStopped(self.problem("is not JSON")) from None
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(kind, str):
            raise RunStopped(self.problem("is not a Singer message (a JSON object with a type)"))
        required = REQUIRED_KEYS.get(kind)
        if required is None:
            self._process_unknown_message(message)
        for key in required:
            if key not in message:
                missing = ", ".join(key for key in required if key not in message)
                raise RunStopped(self.problem(f"is a {kind} message without {missing}"))
        if kind == "SCHEMA":
            schema = message["schema"]
            if not (isinstance(schema, dict) and "properties" in schema):
                raise RunStopped(self.problem("is a SCHEMA message whose schema has no properties"))
        return cast("dict[str, Any]", message)

    def assert_line_requires(  # type: ignore[override]  # the SDK's is static: no line number
        self, line_dict: dict[str, Any], requires: set[str]
    ) -> None:
        """The SDK's check of a message's keys, as one line naming the line number (the
        SDK's own prints the whole message). The SDK calls it on its reader object."""
        if not isinstance(line_dict, dict) or not requires.issubset(line_dict):
            keys = ", ".join(sorted(requires))
            raise RunStopped(self.problem(f"is a Singer message without {keys}"))

    def _process_unknown_message(self, message_dict: dict[str, Any]) -> NoReturn:
        """A type that is none of Singer's: named by line number only (the type is input
        too)."""
        kinds = ", ".join(REQUIRED_KEYS)
        raise RunStopped(self.problem(f"has a message type that is not one of {kinds}"))

    def problem(self, what: str) -> str:
        """The line for a problem with the current input line (named by its number)."""
        return (
            f"input line {self.line_number} {what}; target-pelanor reads the messages of "
            "tap-openai-costs: check what feeds its input"
        )
