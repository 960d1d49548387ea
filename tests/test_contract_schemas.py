"""The month streams' JSON schemas agree with the contract types the tap writes them from
and the target reads them into: a field added to one and not the other fails here."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from openai_costs import contract
from openai_costs.contract import MonthOpened, Seal
from openai_costs.export import Layout
from tap_openai_costs.streams import MonthLayoutsStream, MonthSealsStream

STREAMS = {
    contract.MONTH_LAYOUTS: (MonthLayoutsStream, MonthOpened),
    contract.MONTH_SEALS: (MonthSealsStream, Seal),
}


def singer_shape(schema: dict[str, Any]) -> Any:
    """A schema property as JSON types only: ``"string"``, ``["array", item]`` or
    ``{name: shape}``; "null" in a type list, patterns and descriptions left out."""
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    (json_type,) = [t for t in types if t != "null"]
    if json_type == "object":
        return {name: singer_shape(value) for name, value in schema["properties"].items()}
    if json_type == "array":
        return ["array", singer_shape(schema["items"])]
    return json_type


def type_shape(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The same for msgspec's JSON schema of a contract type."""
    if "$ref" in schema:
        return type_shape(defs[schema["$ref"].removeprefix("#/$defs/")], defs)
    if schema["type"] == "object":
        return {name: type_shape(value, defs) for name, value in schema["properties"].items()}
    if schema["type"] == "array":
        return ["array", type_shape(schema["items"], defs)]
    return schema["type"]


def type_schema(record_type: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """msgspec's schema of a contract type, and its definitions."""
    schema = msgspec.json.schema(record_type)
    defs = schema["$defs"]
    return defs[record_type.__name__], defs


def nullable(schema: dict[str, Any]) -> bool:
    return isinstance(schema["type"], list) and "null" in schema["type"]


def test_every_month_stream_has_a_contract_type():
    assert set(STREAMS) == set(contract.STREAMS) - {contract.COSTS}
    assert [stream.name for stream, _ in STREAMS.values()] == list(STREAMS)


@pytest.mark.parametrize(("stream", "record_type"), STREAMS.values(), ids=STREAMS.keys())
def test_a_month_streams_properties_and_json_types_are_its_contract_types(stream, record_type):
    schema, defs = type_schema(record_type)
    assert singer_shape(stream.schema) == type_shape(schema, defs)
    # Field order too: the records the tap writes follow the type's order.
    assert list(stream.schema["properties"]) == list(record_type.__struct_fields__)


@pytest.mark.parametrize(("stream", "record_type"), STREAMS.values(), ids=STREAMS.keys())
def test_a_month_stream_requires_what_its_contract_type_requires_and_allows_no_null(
    stream, record_type
):
    schema, _ = type_schema(record_type)
    assert stream.schema["required"] == schema["required"]
    assert [name for name, value in stream.schema["properties"].items() if nullable(value)] == []


@pytest.mark.parametrize(("stream", "record_type"), STREAMS.values(), ids=STREAMS.keys())
def test_the_layout_in_a_month_stream_is_the_layout_type_and_requires_no_more(stream, record_type):
    """The layout's schema is looser than :class:`Layout`: it requires none of the fields
    (the type requires columns and header) and lets each be null. The tap always writes
    every field, so this is a loose schema, never a record it rejects; tightening it would
    change the SCHEMA messages the tap sends."""
    layout_schema = stream.schema["properties"]["layout"]
    layout_type, defs = type_schema(Layout)
    assert singer_shape(layout_schema) == type_shape(layout_type, defs)
    assert set(layout_schema.get("required", [])) <= set(layout_type["required"])
    assert layout_type["required"] == ["columns", "header"]


@pytest.mark.parametrize(("stream", "record_type"), STREAMS.values(), ids=STREAMS.keys())
def test_a_record_written_from_a_contract_type_has_exactly_the_schemas_properties(
    stream, record_type
):
    layout = Layout(("start_time", "amount_value"), "start_time,amount_value")
    values: dict[str, Any] = {
        "organization": "org-acme",
        "month": "2025-10",
        "month_version": "20251105T063000.123456Z-0001",
        "layout": layout,
        "row_count": 62,
        "total_usd": "42.6",
        "days_covered": 31,
        "days_expected": 31,
        "missing_days": [],
        "complete": True,
        "rows_digest": "0" * 64,
        "input_digest": "1" * 64,
        "source_files": ["cost_2025-10-01_2025-11-01.csv"],
    }
    record = contract.to_record(
        record_type(**{f: values[f] for f in record_type.__struct_fields__})
    )
    assert list(record) == list(stream.schema["properties"])
    assert list(record["layout"]) == list(stream.schema["properties"]["layout"]["properties"])
