"""openai_costs.record_route: which way a stream's records go, and the line that says why."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from singer_sdk.mapper import PluginMapper

from openai_costs import record_route
from openai_costs.record_route import QUICK, choose_route, map_changes

NOTHING_CHANGES = [(False, "a stream map is configured"), (False, "records are type-conformed")]


@pytest.mark.parametrize("version", ["0.54.9", "0.54.10", "0.54.31"])
def test_the_quick_route_is_taken_on_the_tested_sdk_versions(version) -> None:
    route = choose_route("costs", NOTHING_CHANGES, sdk_version=version)
    assert route.quick
    assert route.line == (
        "costs: the quick route (no map, deselection or conformance changes a record)"
    )


@pytest.mark.parametrize(
    "version", ["0.55.0", "0.54.8", "1.0.0", "0.54.10rc1", "0.54.9+local", "x"]
)
def test_the_quick_route_stands_aside_on_any_other_sdk_version(version) -> None:
    route = choose_route("costs", NOTHING_CHANGES, sdk_version=version)
    assert not route.quick
    assert route.line == (
        f"costs: the SDK's per-record path (singer-sdk {version} is not the ~=0.54.9 it was "
        "tested with)"
    )


def test_the_installed_sdk_is_asked_unless_a_version_is_given(monkeypatch) -> None:
    assert record_route.installed_sdk().startswith("0.54.")  # pyproject.toml's pin
    monkeypatch.setattr(record_route, "installed_sdk", lambda: "0.56.0")
    assert not choose_route("costs", NOTHING_CHANGES).quick
    assert choose_route("costs", NOTHING_CHANGES, sdk_version="0.54.9").quick


def test_the_first_change_that_applies_names_the_reason() -> None:
    changes = [
        (False, "a stream map is configured"),
        (True, "a property or the stream is deselected"),
        (True, "records are type-conformed"),
    ]
    route = choose_route("focus_costs", changes, sdk_version="0.54.9")
    assert not route.quick
    assert route.line == (
        "focus_costs: the SDK's per-record path (a property or the stream is deselected)"
    )


def test_a_version_outside_the_tested_ones_is_named_before_any_change() -> None:
    route = choose_route("costs", [(True, "a stream map is configured")], sdk_version="0.55.0")
    assert route.reason == "singer-sdk 0.55.0 is not the ~=0.54.9 it was tested with"


def test_the_quick_routes_reason_is_the_callers() -> None:
    quick = "no map or setting changes a record"
    route = choose_route("costs", [], quick=quick, sdk_version="0.54.9")
    assert route.line == "costs: the quick route (no map or setting changes a record)"


def test_the_tested_versions_are_those_pyproject_pins() -> None:
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert f'"singer-sdk[msgspec]{record_route.TESTED_SDK}"' in pyproject


def stream_maps(config: dict) -> list:
    """The SDK's maps of a ``costs`` stream under a plugin's map and flattening settings."""
    mapper = PluginMapper(plugin_config=config, logger=logging.getLogger("test"))
    schema = {"type": "object", "properties": {"day": {"type": ["string"]}}}
    mapper.register_raw_stream_schema("costs", schema, ["day"])
    return mapper.stream_maps["costs"]


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({}, QUICK),
        ({"stream_maps": {"costs": {"note": "'kept apart'"}}}, "a stream map is configured"),
        ({"stream_maps": {"costs": {"__alias__": "spend"}}}, "a stream map is configured"),
        ({"stream_maps": {"costs": None}}, "a stream map is configured"),
        ({"stream_maps": {"copy": {"__source__": "costs"}}}, "a stream map is configured"),
        (
            {"flattening_enabled": True, "flattening_max_depth": 1},
            "a stream map renames or flattens the stream",
        ),
    ],
)
def test_every_map_that_changes_a_record_sends_it_the_sdks_way(config, reason) -> None:
    changes = map_changes("costs", stream_maps(config))
    assert choose_route("costs", changes, sdk_version="0.54.9").reason == reason
