"""A stream's RECORD messages written straight to the tap's writer when nothing would
change a record on the SDK's way to it.

The SDK's record loop calls ``Stream._write_record_message(record)`` once per record. Its
own version looks up every property in the selection mask, conforms types, passes the
record through the stream's maps and builds a ``RecordMessage`` object only to turn it back
into a dict: for ``costs`` as it is usually run, none of it changes a record, and on a
backfill it is most of the tap's time. :class:`QuickRecordMessages` overrides that one
method: on the quick route it hands the dict the SDK would build (the same keys, in
``RecordMessage.to_dict``'s order, ``version`` only when set, a ``time_extracted`` per
record) to :meth:`BufferedMsgSpecWriter.write_record`, which encodes it as the SDK's
writer does: the same bytes. The loop itself (limits, bookmarks, STATE messages, counters,
child streams) stays the SDK's.

Which route a stream takes is decided once, at its first record, by
:func:`openai_costs.record_route.choose_route`, from the stream's settings only (never its
fields): a stream map or flattening, a deselected property, type conformance or another
message writer send the records the SDK's way, as does a singer-sdk version the tap was
not tested with. The answer is logged at INFO.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

from openai_costs.record_route import Route, choose_route, map_changes
from tap_openai_costs.message_writer import BufferedMsgSpecWriter

__all__ = ["QuickRecordMessages", "utc_now"]

#: Each record's ``time_extracted``, as the SDK takes it (a seam for tests).
utc_now: Callable[[], datetime] = functools.partial(datetime.now, timezone.utc)


class QuickRecordMessages(Stream):
    """A stream whose RECORD messages take the quick route when it applies (see the
    module docstring)."""

    #: This stream's route, decided at its first record.
    _record_route: Route | None = None
    #: The writer records go to on the quick route (None: the SDK's path).
    _quick_writer: BufferedMsgSpecWriter | None = None

    def record_route(self) -> Route:
        """Which way this stream's records go, and why (logged the first time)."""
        if self._record_route is None:
            writer = self._tap.message_writer
            route = choose_route(
                self.name,
                [
                    *map_changes(self.name, self.stream_maps),
                    (
                        not self.selected or not all(self.mask.values()),
                        "a property or the stream is deselected",
                    ),
                    (
                        self.TYPE_CONFORMANCE_LEVEL != TypeConformanceLevel.NONE,
                        "records are type-conformed",
                    ),
                    (
                        not isinstance(writer, BufferedMsgSpecWriter),
                        "another message writer is configured",
                    ),
                ],
            )
            self.logger.info("%s", route.line)
            self._record_route = route
            if route.quick and isinstance(writer, BufferedMsgSpecWriter):
                self._quick_writer = writer
        return self._record_route

    def _write_record_message(self, record: dict[str, Any]) -> None:
        """The SDK's, or on the quick route the same message written straight through."""
        writer = self._quick_writer
        if writer is None:
            if self._record_route is None:  # the first record: decide
                self.record_route()
                writer = self._quick_writer
            if writer is None:
                super()._write_record_message(record)
                return
        version = self._stream_version
        message: dict[str, Any]
        if version is None:
            message = {"type": "RECORD", "stream": self.name, "record": record}
        else:
            message = {"type": "RECORD", "stream": self.name, "record": record, "version": version}
        message["time_extracted"] = utc_now()
        writer.write_record(message)
        self.state_manager.is_flushed = False
