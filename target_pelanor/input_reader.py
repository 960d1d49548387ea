"""The target's input: Singer messages, one JSON object per line, counted as they come.

The SDK's reader logs a line it cannot use in full (cost rows, e-mail addresses) with a
traceback: a line that is not JSON, a message without a key its type needs, a type it does
not know. This one stops the run with one line that names the line number only, never the
line's content.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from typing import IO, Any, NoReturn

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader, decoder

from target_pelanor.stopping import RunStopped

__all__ = ["REQUIRED_KEYS", "NumberedReader"]

#: The keys each Singer message type needs before the SDK may look at it.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "RECORD": ("stream", "record"),
    "SCHEMA": ("stream", "schema"),
    "STATE": ("value",),
    "ACTIVATE_VERSION": ("stream", "version"),
    "BATCH": ("stream", "encoding", "manifest"),
}


class NumberedReader(MsgSpecReader):
    """The SDK's msgspec reader (exact decimals), refusing a line that is not a message."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        #: Takes a line and returns True if it processed it (target_pelanor.fast_records);
        #: every other line goes the SDK's way.
        self.fast_lines: Callable[[str], bool] | None = None

    def process_lines(
        self, file_input: IO[str] | None, callbacks: dict[str, Callable[[dict[str, Any]], None]]
    ) -> Counter[str]:
        """The SDK's loop, offering each line to :attr:`fast_lines` first."""
        fast = self.fast_lines
        if fast is None:
            return super().process_lines(file_input, callbacks)
        stats: dict[str, int] = defaultdict(int)
        for line in file_input or self.default_input:
            self._current_message = line
            if fast(line):
                self.line_number += 1
                stats["RECORD"] += 1
                continue
            message = self.deserialize_json(line)
            self.assert_line_requires(message, requires={"type"})
            kind = message["type"]
            if callback := callbacks.get(kind):
                callback(message)
            else:
                self._process_unknown_message(message)
            stats[kind] += 1
        return Counter(**stats)

    def deserialize_json(self, line: str) -> dict[str, Any]:
        self.line_number += 1
        try:
            message = decoder.decode(line)
        except msgspec.DecodeError:
            raise RunStopped(self._problem("is not JSON")) from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise RunStopped(self._problem("is not a Singer message (a JSON object with a type)"))
        kind = message["type"]
        if kind not in REQUIRED_KEYS:
            self._process_unknown_message(message)
        if missing := [key for key in REQUIRED_KEYS[kind] if key not in message]:
            raise RunStopped(self._problem(f"is a {kind} message without {', '.join(missing)}"))
        schema = message.get("schema")
        if kind == "SCHEMA" and not (isinstance(schema, dict) and "properties" in schema):
            raise RunStopped(self._problem("is a SCHEMA message whose schema has no properties"))
        return message

    def assert_line_requires(  # type: ignore[override]  # the SDK's is static: no line number
        self, line_dict: dict[str, Any], requires: set[str]
    ) -> None:
        """The SDK's check of a message's keys, as one line naming the line number (the
        SDK's own prints the whole message). The SDK calls it on its reader object."""
        if not isinstance(line_dict, dict) or not requires.issubset(line_dict):
            keys = ", ".join(sorted(requires))
            raise RunStopped(self._problem(f"is a Singer message without {keys}"))

    def _process_unknown_message(self, message_dict: dict[str, Any]) -> NoReturn:
        """A type that is none of Singer's: named by line number only (the type is input
        too)."""
        kinds = ", ".join(REQUIRED_KEYS)
        raise RunStopped(self._problem(f"has a message type that is not one of {kinds}"))

    def _problem(self, what: str) -> str:
        return (
            f"input line {self.line_number} {what}; target-pelanor reads the messages of "
            "tap-openai-costs: check what feeds its input"
        )
