"""``costs`` RECORD lines taken without the SDK's generic per-record path.

For every RECORD the SDK decodes the line into a dict, copies it, passes it through the
stream map, removes ``_sdc_`` keys, validates it against the schema, checks its key
properties, and only then hands it to the sink, which converts it into a
:class:`~openai_costs.contract.CostRow`. On a backfill that is most of the target's time.

:class:`FastRecords` takes a ``costs`` line as the tap writes it instead: msgspec decodes
it straight into a type built from the stream's SCHEMA message (types, required fields and
key properties, patterns: what the compiled validator checks), so the line is parsed and
validated in one pass, then the row goes to the sink as the SDK would hand it. Counters,
drains and state are the SDK's. The SDK is told about the rows taken in steps
(:meth:`FastRecords.settle`): at the row that fills the sink, which is then drained as the
SDK would drain it, and before any other line is processed, so every other message finds
the tallies it would have found. The check for records waiting too long (a drain of every
sink after five minutes) runs at those steps too, rather than after every row.

It accepts only what the SDK's path accepts and gives the same row: anything else (a line
that does not decode into that type, a schema it cannot express) is left to the SDK's
path, which then refuses a bad record with its usual message. It stands aside entirely
when a stream map or flattening applies to the stream, record validation is off, the
target adds ``_sdc_`` metadata, or the sink is not the one it knows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import msgspec
import msgspec.inspect
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.sinks import RecordSink, Sink

from openai_costs import contract
from openai_costs.contract import CostRow
from target_pelanor.sinks import CostRowsSink
from target_pelanor.validation import CompiledValidator

if TYPE_CHECKING:
    from singer_sdk import Target

#: How the tap writes a ``costs`` record; any other spelling takes the SDK's path.
PREFIX = f'{{"type":"RECORD","stream":"{contract.COSTS}",'
#: The JSON types a schema property may have here, as Python types.
_TYPES: dict[str, Any] = {"string": str, "integer": int, "boolean": bool, "null": None}
#: Property keywords the compiled validator checks (``pattern``) or ignores (formats are
#: off, the rest is text for people); a property with any other keyword takes the SDK's path.
_PROPERTY_KEYS = frozenset({"type", "pattern", "format", "description", "title"})
_SCHEMA_KEYS = frozenset({"type", "properties", "required", "$schema", "description", "title"})


def _nullable(field: msgspec.inspect.Field) -> bool:
    return any(isinstance(t, msgspec.inspect.NoneType) for t in _members(field.type))


def _members(field_type: msgspec.inspect.Type) -> tuple[msgspec.inspect.Type, ...]:
    return field_type.types if isinstance(field_type, msgspec.inspect.UnionType) else (field_type,)


_COST_ROW = msgspec.inspect.type_info(CostRow)
assert isinstance(_COST_ROW, msgspec.inspect.StructType)
#: The fields of a CostRow, and whether each may be null (amount_value text becomes a
#: Decimal); :meth:`FastRecords.take` builds the row from exactly these.
_COST_ROW_FIELDS = {field.name: _nullable(field) for field in _COST_ROW.fields}


class FastRecords:
    """Takes the target's ``costs`` RECORD lines when it can; see the module docstring."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._sink: object = None
        self._plan: _Plan | None = None
        #: Rows taken that the SDK has not been told about, and how many the sink had room
        #: for when the first of them came.
        self._untold = 0
        self._room = 0

    def take(self, line: str) -> bool:
        """Process one input line, or return False, having done nothing, if it is not a
        ``costs`` record this path can take (the caller then gives it to the SDK, having
        called :meth:`settle`)."""
        if not line.startswith(PREFIX):
            return False
        target = self.target
        # A SCHEMA message that changes the stream's map also changes its sink: the SDK
        # makes a new sink whenever the mapped schema or key properties change.
        active = target._sinks_active.get(contract.COSTS)
        if active is not self._sink:
            self._replan(active)
        plan = self._plan
        if plan is None:
            return False
        try:
            record = plan.decode(line).record
            # What msgspec.convert(record, CostRow) gives (the schema's types fit: _plan).
            amount = record.amount_value
            row = CostRow(
                organization=record.organization,
                month=record.month,
                day=record.day,
                csv_row=record.csv_row,
                amount_value=None if amount is None else Decimal(amount),
                organization_id=record.organization_id,
                amount_currency=record.amount_currency,
            )
        except (msgspec.MsgspecError, InvalidOperation):
            return False  # the SDK's path refuses it with its own message
        sink = plan.sink
        if not self._untold:
            self._room = sink.max_size - sink.current_size
        sink.add_row(row)
        self._untold += 1
        if self._untold >= self._room or plan.after_each:
            self.settle()
        return True

    def settle(self, *, drain: bool = True) -> None:
        """Tell the SDK about the rows taken since the last call, as its per-record path
        would have: the sink's tallies and record counter, its after-record hook (for each
        row, unless its effect can be told at once), then, unless ``drain`` is false (the
        run is stopping), the drain of a full sink and the check for records waiting too
        long."""
        untold, self._untold = self._untold, 0
        if not untold or self._plan is None:
            return
        target, sink = self.target, self._plan.sink
        sink.tally_record_read(untold)
        sink.record_counter_metric.increment(untold)
        if self._plan.after_each:
            sink._after_process_record({})
        elif self._plan.tally_written:
            sink.tally_record_written(untold)
        if not drain:
            return
        if sink.is_full:
            target.logger.info(
                "Target sink for '%s' is full. Current size is '%s'. Draining...",
                sink.stream_name,
                sink.current_size,
            )
            target.drain_one(sink)
        target._handle_max_record_age()

    def _replan(self, sink: Sink | None) -> None:
        """A SCHEMA message gave the stream a new sink (and maybe map): plan for them."""
        self._sink = sink
        self._plan = _plan(self.target.mapper.stream_maps.get(contract.COSTS), sink)


class _Plan(msgspec.Struct, frozen=True):
    sink: CostRowsSink
    #: Decodes a line into a message whose record has the stream schema's type.
    decode: Callable[[str], Any]
    #: Whether the sink's after-record hook must be called for each row: unless it is
    #: the SDK's Sink's (it logs at debug only) or RecordSink's (below).
    after_each: bool
    #: Whether the hook is RecordSink's, which tallies one record written: told at once.
    tally_written: bool


def _plan(maps: list[Any] | None, sink: Sink | None) -> _Plan | None:
    """How to take the stream's lines, or None if only the SDK's path is right."""
    if not maps or len(maps) != 1 or type(maps[0]) is not SameRecordTransform:
        return None
    if maps[0].stream_alias != contract.COSTS or maps[0].flattening_enabled:
        return None
    if type(sink) is not CostRowsSink or sink.include_sdc_metadata_properties:
        return None
    if (
        CostRowsSink.preprocess_record is not Sink.preprocess_record
        or CostRowsSink._get_context is not Sink._get_context
    ):
        return None  # a hook the SDK's path would call
    if not isinstance(sink._validator, CompiledValidator):  # validation off
        return None
    record_type = record_type_of(sink.schema, sink.key_properties)
    if record_type is None or not _fits_cost_row(record_type):
        return None
    line_type = msgspec.defstruct(
        "CostsRecordLine",
        [("type", Literal["RECORD"]), ("stream", Literal["costs"]), ("record", record_type)],
    )
    hook = type(sink)._after_process_record
    tally_written = hook is RecordSink._after_process_record
    after_each = hook is not Sink._after_process_record and not tally_written
    after_each |= sink.logger.isEnabledFor(logging.DEBUG)
    return _Plan(sink, msgspec.json.Decoder(line_type).decode, after_each, tally_written)


def _fits_cost_row(record_type: type[Any]) -> bool:
    """Whether the record type has every field a CostRow takes, typed so that the row
    built from a record is the one ``msgspec.convert`` would give or refuse: text where
    the row needs text (required, never null), text or null where it may be null. A row
    field outside the schema would be read unvalidated, and a constructor checks nothing."""
    info = msgspec.inspect.type_info(record_type)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {field.name: field for field in info.fields}
    text, null = msgspec.inspect.StrType, msgspec.inspect.NoneType
    for name, nullable in _COST_ROW_FIELDS.items():
        field = fields.get(name)
        if field is None:
            return False
        kinds = {type(member) for member in _members(field.type)}
        fits = kinds <= {text, null} if nullable else (kinds == {text} and field.required)
        if not fits:
            return False
    return True


def record_type_of(schema: dict[str, Any], key_properties: Sequence[str]) -> type[Any] | None:
    """A msgspec type that accepts exactly the records the compiled validator accepts
    (with key properties present), or None if the schema uses anything else.

    Properties not required default to None: absent or null, the row gets the same value.
    """
    if set(schema) - _SCHEMA_KEYS or schema.get("type", "object") not in ("object", ["object"]):
        return None
    properties = schema.get("properties")
    if not isinstance(properties, dict) or any(key.startswith("_sdc_") for key in properties):
        return None
    required = set(schema.get("required", ())) | set(key_properties)
    if not required <= set(properties):
        return None
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for name, definition in properties.items():
        field_type = _field_type(definition)
        if field_type is None:
            return None
        fields.append((name, field_type) if name in required else (name, field_type, None))
    fields.sort(key=len)  # msgspec wants fields without defaults first
    try:
        return msgspec.defstruct("CostsRecord", fields)
    except (TypeError, ValueError):
        return None


def _field_type(definition: Any) -> Any:
    """The property's type, or None if the compiled validator checks more than types and
    a pattern here."""
    if not isinstance(definition, dict) or set(definition) - _PROPERTY_KEYS:
        return None
    names = definition.get("type")
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
        return None
    members = [_TYPES[name] for name in names]
    if "pattern" in definition:
        pattern = definition["pattern"]
        try:
            text = Annotated[str, msgspec.Meta(pattern=pattern)]
        except (re.error, TypeError):  # a pattern msgspec cannot take: the SDK's path
            return None
        members = [text if member is str else member for member in members]
    return Union[tuple(members)]  # noqa: UP007  # built at run time
