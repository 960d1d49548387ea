"""A ``costs`` record checked and converted in one step: into a type built from the
stream's SCHEMA message, then into the :class:`~openai_costs.contract.CostRow` the sink
keeps.

:func:`record_type_of` builds, once per schema, a msgspec type that accepts exactly the
records the compiled validator (:mod:`target_pelanor.validation`) accepts with the key
properties present: types, required fields and key properties, patterns. A schema that says
more (bounds, nested objects, ``additionalProperties``) has no such type, and its records
are only validated. :func:`cost_row_reader` gives the function that turns a record into its
row through that type (one conversion, in C) when every field a row takes is typed as the
row needs; it refuses, with msgspec's error, what the type refuses, and the validator then
says why with its own message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Annotated, Any, Union

import msgspec
import msgspec.inspect

from openai_costs.contract import CostRow

__all__ = ["cost_row_reader", "record_type_of"]

#: The JSON types a schema property may have here, as Python types.
_TYPES: dict[str, Any] = {"string": str, "integer": int, "boolean": bool, "null": None}
#: Property keywords the compiled validator checks (``pattern``) or ignores (formats are
#: off, the rest is text for people); a property with any other keyword has no record type.
_PROPERTY_KEYS = frozenset({"type", "pattern", "format", "description", "title"})
_SCHEMA_KEYS = frozenset({"type", "properties", "required", "$schema", "description", "title"})


def _nullable(field: msgspec.inspect.Field) -> bool:
    return any(isinstance(t, msgspec.inspect.NoneType) for t in _members(field.type))


def _members(field_type: msgspec.inspect.Type) -> tuple[msgspec.inspect.Type, ...]:
    return field_type.types if isinstance(field_type, msgspec.inspect.UnionType) else (field_type,)


_COST_ROW = msgspec.inspect.type_info(CostRow)
assert isinstance(_COST_ROW, msgspec.inspect.StructType)
#: The fields of a CostRow, and whether each may be null (amount_value text becomes a
#: Decimal); :func:`cost_row_reader` builds the row from exactly these.
_COST_ROW_FIELDS = {field.name: _nullable(field) for field in _COST_ROW.fields}


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


def cost_row_reader(record_type: type[Any]) -> Callable[[dict[str, Any]], CostRow] | None:
    """A function that converts a record (a dict, as the SDK decoded it) into its
    :class:`CostRow` through ``record_type``, raising ``msgspec.ValidationError`` or
    ``InvalidOperation`` where the type or the amount refuses it; None if the record type
    does not give every field of a row as ``msgspec.convert(record, CostRow)`` would."""
    if not _fits_cost_row(record_type):
        return None
    convert = msgspec.convert

    def read(record: dict[str, Any]) -> CostRow:
        typed = convert(record, record_type)
        amount = typed.amount_value
        # What msgspec.convert(record, CostRow) gives (the types fit: _fits_cost_row).
        return CostRow(
            organization=typed.organization,
            month=typed.month,
            day=typed.day,
            csv_row=typed.csv_row,
            amount_value=None if amount is None else Decimal(amount),
            organization_id=typed.organization_id,
            amount_currency=typed.amount_currency,
        )

    return read
