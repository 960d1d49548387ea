"""The ``costs`` stream's RECORD messages without the SDK's generic per-record path.

The SDK's ``Stream._sync_records`` passes every record through machinery that, for this
stream as it is usually run, changes nothing: deselected properties are looked up one by
one and none is removed, type conformance is off, the one stream map returns the record
as it is, and a ``RecordMessage`` object is built only to be turned back into a dict. On a
backfill that is most of the tap's time. When nothing would change a record,
:func:`sync_records` runs the same loop and writes each message itself: the dict the SDK
would build, encoded by the SDK's own msgspec encoder into the tap's buffered writer.

The bytes are the same, STATE messages come at the same places, the record count and the
sync timer are the SDK's (the count is given a STATE message's rows at a time).
:func:`fallback_reason` says when the SDK's path is taken instead, unchanged: a stream map
or flattening, a deselected property, type conformance, a bookmark per record
(incremental), partitions, a record limit (``--test``), or another message writer. Driven
by the stream's settings only, never by its fields.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform

from tap_openai_costs.message_writer import BufferedMsgSpecWriter

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


#: Each record's ``time_extracted``, as the SDK takes it (a seam for tests).
utc_now: Callable[[], datetime] = functools.partial(datetime.now, timezone.utc)


def fallback_reason(stream: Stream, context: Context | None) -> str | None:
    """Why this sync must take the SDK's per-record path, or None if nothing would change
    a record on it."""
    maps = stream.stream_maps
    if len(maps) != 1 or type(maps[0]) is not SameRecordTransform:
        return "a stream map is configured"
    if maps[0].stream_alias != stream.name or maps[0].flattening_enabled:
        return "a stream map renames or flattens the stream"
    if not stream.selected or not all(stream.mask.values()):
        return "a property or the stream is deselected"
    if stream.TYPE_CONFORMANCE_LEVEL != TypeConformanceLevel.NONE:
        return "records are type-conformed"
    if stream.replication_method == "INCREMENTAL":
        return "records move a bookmark"
    if context is not None or stream.partitions:
        return "the stream is partitioned"
    if stream.ABORT_AT_RECORD_COUNT is not None:
        return "a record limit applies (connection test)"
    if not isinstance(stream._tap.message_writer, BufferedMsgSpecWriter):
        return "another message writer is configured"
    return None


def sync_records(stream: Stream, *, children: bool = True) -> Generator[dict[str, Any], Any, None]:
    """The SDK's ``_sync_records`` for one unpartitioned pass, when
    :func:`fallback_reason` is None: the same calls, in the same order, except those that
    would return the record unchanged. ``children=False`` says the stream syncs no child
    streams from its records, so the SDK's per-record ``_process_record`` would do nothing.

    The record counter is given each STATE message's rows at once (and the rest at the
    end, however the loop ends), rather than one by one: the same total, and its log lines
    at most one STATE message's rows late."""
    writer = stream._tap.message_writer
    assert isinstance(writer, BufferedMsgSpecWriter)  # checked by fallback_reason
    name, version, clock = stream.name, stream._stream_version, utc_now
    every = stream.STATE_MSG_FREQUENCY
    state_manager = stream.state_manager
    # Looked up once: this loop runs for every row of a backfill.
    post_process = None if type(stream).post_process is Stream.post_process else stream.post_process
    write = writer.write_record
    record_counter, timer = stream.get_record_counter(), stream.get_sync_timer()
    with record_counter, timer:
        record_counter.with_context({})
        timer.with_context({})
        partition_context = stream._get_state_partition_context(None)
        stream._write_starting_replication_value(None)
        process = stream._process_record if children or partition_context else None
        written = counted = 0
        try:
            for raw in stream.get_records(None):
                # A (record, context) tuple, deprecated in the SDK, is never yielded here.
                record = cast("dict[str, Any]", raw)
                if post_process is not None:
                    processed = post_process(record, None)
                    if processed is None:
                        continue
                    record = processed
                if process is not None:
                    process(record, partition_context=partition_context)
                # RecordMessage.to_dict's keys, in its order.
                if version is None:
                    write(
                        {
                            "type": "RECORD",
                            "stream": name,
                            "record": record,
                            "time_extracted": clock(),
                        }
                    )
                else:
                    write(
                        {
                            "type": "RECORD",
                            "stream": name,
                            "record": record,
                            "version": version,
                            "time_extracted": clock(),
                        }
                    )
                state_manager.is_flushed = False
                written += 1
                if written % every == 0:
                    stream._write_state_message()
                    record_counter.increment(written - counted)
                    counted = written
                yield record
        finally:
            if written > counted:
                record_counter.increment(written - counted)
        if partition_context is None:
            stream._finalize_state(stream.get_context_state(None))
    stream._finalize_state(stream.stream_state)
    stream._write_state_message()
