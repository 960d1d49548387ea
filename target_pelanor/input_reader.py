"""The target's input: Singer messages, one JSON object per line, counted as they come.

The SDK's reader logs a line it cannot parse in full (cost rows, e-mail addresses) with a
traceback; this one stops the run with one line that names the line number only.
"""

from __future__ import annotations

from typing import Any

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader, decoder

from target_pelanor.stopping import RunStopped

__all__ = ["NumberedReader"]


class NumberedReader(MsgSpecReader):
    """The SDK's msgspec reader (exact decimals), refusing a line that is not a message."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0

    def deserialize_json(self, line: str) -> dict[str, Any]:
        self.line_number += 1
        try:
            message = decoder.decode(line)
        except msgspec.DecodeError:
            raise RunStopped(self._problem("is not JSON")) from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise RunStopped(self._problem("is not a Singer message (a JSON object with a type)"))
        return message

    def _problem(self, what: str) -> str:
        return (
            f"input line {self.line_number} {what}; target-pelanor reads the messages of "
            "tap-openai-costs: check what feeds its input"
        )
