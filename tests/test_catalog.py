"""Discovery, selection and the catalog: the schemas are static, so discovery needs no
settings; the catalog says how the streams replicate; a deselected month stream is said at
the start of the tap's run; quantities are exact decimal text."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from tests.exports import ORG, SAMPLES, cost, export, write
from tests.singer import run, run_tap, run_target, target_config

SEPTEMBER = SAMPLES / "acme" / "cost_2025-09-01_2025-09-30.csv"
STREAMS = ["cost_month_layouts", "cost_months", "costs", "focus_costs"]
DESELECTED_WARNING = (
    "deselected: cost_months (meltano select, or the catalog); target-pelanor needs "
    "cost_month_layouts, costs, cost_months and uploads nothing without them; a warehouse "
    "load may leave out cost_month_layouts"
)


def tap_warning(line: str) -> bool:
    """A warning the tap logs (not one of Python's, such as the SDK's end-of-life notice
    for Python 3.10, which logging shows as py.warnings)."""
    fields = [field.strip() for field in line.split(" | ")]
    return len(fields) >= 4 and fields[1] == "WARNING" and fields[2].startswith("tap-openai")


def discover(tmp_path: Path, config: dict[str, Any] | None) -> dict[str, Any]:
    result = (
        run("tap-openai-costs", "--discover")
        if config is None
        else run("tap-openai-costs", "--discover", config=config, tmp=tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "Config validation" not in result.stderr
    catalog: dict[str, Any] = json.loads(result.stdout)
    return catalog


def root_metadata(entry: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = next(m for m in entry["metadata"] if m["breadcrumb"] == [])
    return metadata["metadata"]


def deselect(catalog: dict[str, Any], stream: str) -> dict[str, Any]:
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == stream:
            root_metadata(entry)["selected"] = False
    return catalog


def run_with_catalog(tmp_path: Path, config: dict[str, Any], catalog: dict[str, Any]):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return run("tap-openai-costs", "--catalog", str(path), config=config, tmp=tmp_path)


def test_discovery_needs_no_settings(tmp_path) -> None:
    """Without a config, with an empty one (a parent plugin in Meltano) and with a full
    one, discovery gives the same catalog and no complaint about settings."""
    full = {"organization_id": ORG, "paths": [str(SEPTEMBER)]}
    without = discover(tmp_path, None)
    assert [entry["tap_stream_id"] for entry in without["streams"]] == STREAMS
    assert discover(tmp_path, {}) == without
    assert discover(tmp_path, full) == without


def test_a_sync_still_needs_valid_settings(tmp_path) -> None:
    """Every problem on a line of its own, then the line naming them all, last: the one
    `meltano config test` shows."""
    result = run_tap(tmp_path, {})
    assert result.returncode == 1
    messages = [line.rsplit(" | ", 1)[-1] for line in result.stderr.splitlines()[-3:]]
    assert messages == [
        "organization_id is required: the OpenAI organization (org-...) this tap reads",
        "paths is required when source is files",
        "Config validation failed, 2 problems: (1) organization_id is required: the OpenAI "
        "organization (org-...) this tap reads (2) paths is required when source is files",
    ]
    assert result.stdout == ""


def test_the_catalog_says_the_streams_replicate_incrementally_without_a_replication_key(
    tmp_path,
) -> None:
    for entry in discover(tmp_path, None)["streams"]:
        assert entry["replication_method"] == "INCREMENTAL", entry["tap_stream_id"]
        assert "replication_key" not in entry or entry["replication_key"] is None
        metadata = root_metadata(entry)
        assert metadata["forced-replication-method"] == "INCREMENTAL"
        assert "valid-replication-keys" not in metadata
        assert "replication-key" not in metadata


def test_a_run_with_the_discovered_catalog_is_incremental_by_month(tmp_path) -> None:
    """The catalog Meltano hands back (INCREMENTAL, no key) runs as without a catalog: all
    months first, then nothing once the state says nothing changed."""
    config = {"organization_id": ORG, "paths": [str(SEPTEMBER)]}
    catalog = discover(tmp_path, None)
    first = run_with_catalog(tmp_path, config, catalog)
    assert first.returncode == 0, first.stderr
    assert len(first.records("costs")) == 409
    assert [seal["month"] for seal in first.records("cost_months")] == ["2025-09"]

    state = tmp_path / "state.json"
    state.write_text(json.dumps(first.last_state))
    again = run(
        "tap-openai-costs",
        "--catalog",
        str(tmp_path / "catalog.json"),
        "--state",
        str(state),
        config=config,
        tmp=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    assert again.records("costs") == []
    assert again.records("cost_months") == []


def test_deselecting_a_month_stream_is_one_warning_at_the_start_of_the_tap_run(
    tmp_path, pelanor
) -> None:
    config = {"organization_id": ORG, "paths": [str(SEPTEMBER)]}
    tap = run_with_catalog(tmp_path, config, deselect(discover(tmp_path, None), "cost_months"))
    assert tap.returncode == 0, tap.stderr
    warnings = [line for line in tap.stderr.splitlines() if tap_warning(line)]
    assert [line.split(" | ", 3)[3] for line in warnings] == [DESELECTED_WARNING]
    lines = tap.stderr.splitlines()
    first_read = next(i for i, line in enumerate(lines) if f"reading {SEPTEMBER}" in line)
    assert lines.index(warnings[0]) < first_read, "the warning comes before any file is read"

    target = run_target(tmp_path, target_config(pelanor), tap.stdout)
    assert target.returncode == 1
    assert "the tap sends no cost_months records: deselected" in target.stderr
    assert pelanor.uploads() == []


def test_a_selected_catalog_gives_no_deselection_warning(tmp_path) -> None:
    config = {"organization_id": ORG, "paths": [str(SEPTEMBER)]}
    tap = run_with_catalog(tmp_path, config, discover(tmp_path, None))
    assert tap.returncode == 0, tap.stderr
    # focus_costs is not selected by default: the SDK says it skips it, the tap says nothing.
    assert "deselected:" not in tap.stderr
    assert "Skipping deselected stream 'focus_costs'." in tap.stderr


def test_quantity_is_exact_decimal_text_as_the_export_writes_it(tmp_path) -> None:
    catalog = discover(tmp_path, None)
    costs = next(e for e in catalog["streams"] if e["tap_stream_id"] == "costs")
    assert costs["schema"]["properties"]["quantity"] == {
        "description": "Exact decimal text (x-singer.decimal), as the export writes it",
        "format": "x-singer.decimal",
        "type": ["string", "null"],
    }
    quantities = ["30.0", "0.000012345678901234567890", "1234567", ""]
    rows = [
        cost(date(2025, 10, 1), item=f"item {n}", quantity=q, quantity_unit="tokens")
        for n, q in enumerate(quantities)
    ]
    path = write(tmp_path / "oct.csv", export(rows))
    tap = run_tap(tmp_path, {"organization_id": ORG, "paths": [str(path)]})
    assert tap.returncode == 0, tap.stderr
    assert [r["quantity"] for r in tap.records("costs")] == [*quantities[:3], None]


def test_leaving_out_only_the_layouts_is_an_info_line_for_a_warehouse_and_a_warning_with_batch(
    tmp_path,
) -> None:
    """A warehouse load may leave out the layouts: one info line says what target-pelanor
    would do. With BATCH files, which only target-pelanor reads, it is a warning."""
    catalog = deselect(discover(tmp_path, None), "cost_month_layouts")
    expected = DESELECTED_WARNING.replace(
        "deselected: cost_months", "deselected: cost_month_layouts"
    )
    config = {"organization_id": ORG, "paths": [str(SEPTEMBER)]}
    warehouse = run_with_catalog(tmp_path, config, catalog)
    assert warehouse.returncode == 0, warehouse.stderr
    lines = [line.split(" | ") for line in warehouse.stderr.splitlines() if "deselected:" in line]
    assert [(level.strip(), message) for _, level, _, message in lines] == [("INFO", expected)]
    assert warehouse.records("cost_month_layouts") == []
    assert len(warehouse.records("costs")) == 409

    batches = tmp_path / "batches"
    batches.mkdir()
    batch_config = {
        "encoding": {"format": "jsonl", "compression": "none"},
        "storage": {"root": f"file://{batches}"},
    }
    pelanor = run_with_catalog(tmp_path, config | {"batch_config": batch_config}, catalog)
    assert pelanor.returncode == 0, pelanor.stderr
    lines = [line.split(" | ") for line in pelanor.stderr.splitlines() if "deselected:" in line]
    assert [(level.strip(), message) for _, level, _, message in lines] == [("WARNING", expected)]
