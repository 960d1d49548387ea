"""The tap's message writer: records written in chunks, everything else at once."""

from __future__ import annotations

import atexit
import sys
from typing import Any

from singer_sdk.contrib.msgspec import MsgSpecWriter, encoder
from singer_sdk.singerlib import Message, RecordMessage

from openai_costs.pipes import widen_pipe


class BufferedMsgSpecWriter(MsgSpecWriter):
    """The SDK's msgspec writer, writing records in 64 KiB chunks instead of one by one.

    Standard output is often unbuffered (Meltano and CI set PYTHONUNBUFFERED), which makes
    every record a system call. Every other message (SCHEMA, STATE) writes out what is
    pending at once, in order, so state reaches the target as soon as it is written.
    Records still pending when the process dies are lost with it, like unsent ones: their
    month has no seal and is not uploaded.
    """

    CHUNK = 64 * 1024

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        widen_pipe(sys.stdout)  # room for sixteen chunks (openai_costs.pipes)
        atexit.register(self.flush)

    def write_message(self, message: Message) -> None:
        self._pending += self.format_message(message)
        if len(self._pending) >= self.CHUNK or not isinstance(message, RecordMessage):
            self.flush()

    def write_record(self, message: dict[str, Any]) -> None:
        """A RECORD message given as the dict the SDK's ``RecordMessage.to_dict`` returns,
        encoded as :meth:`write_message` would encode it (see record_messages)."""
        encoder.encode_into(message, self._pending, -1)
        self._pending += b"\n"
        if len(self._pending) >= self.CHUNK:
            self.flush()

    def flush(self) -> None:
        sys.stdout.buffer.write(self._pending)
        sys.stdout.flush()
        self._pending.clear()
