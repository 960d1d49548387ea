"""The costs stream's quick route, in both plugins, against the SDK's own per-record path.

Each plugin takes a quicker step inside the SDK's record loop when no stream map,
deselection or setting changes a record (openai_costs.record_route decides;
tap_openai_costs.record_messages, target_pelanor.validation). These tests run the same
input both ways, the SDK's path taken as it is on a singer-sdk version the plugins were
not tested with (the version injected): the tap's messages must be the same bytes, the
target's files, state, metrics and refusals the same.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import logging
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fastjsonschema
import msgspec
import pytest
import singer_sdk.streams.core

from local_sandboxes.pelanor import PelanorSandbox
from openai_costs.contract import CostRow
from openai_costs.export import RowsDigest
from target_pelanor.stopping import RunStopped
from target_pelanor.target import TargetPelanor
from tests.exports import ORG, SAMPLES, TODAY
from tests.pelanor_sandbox import sandbox_config
from tests.singer import tap_output, target_config

ACME_SEPT = SAMPLES / "acme" / "cost_2025-09-01_2025-09-30.csv"
ACME_OCT = SAMPLES / "acme" / "cost_2025-10-01_2025-10-31.csv"
RUN_STARTED = datetime(2025, 11, 5, 6, 30, tzinfo=timezone.utc)


# --- the tap -------------------------------------------------------------------------


#: A singer-sdk version outside the tested range: the quick route stands aside.
UNTESTED_SDK = "0.55.0"


def _sdk_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both plugins as they run on a singer-sdk version they were not tested with."""
    from openai_costs import record_route

    monkeypatch.setattr(record_route, "installed_sdk", lambda: UNTESTED_SDK)


def _tap_messages(
    monkeypatch: pytest.MonkeyPatch,
    *,
    quick: bool,
    config: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    catalog: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[bytes, int]:
    """The tap's stdout for both acme months, in-process with fixed clocks, and how many
    records went the quick route. ``catalog`` edits the discovered catalog before the run."""
    from tap_openai_costs import record_messages
    from tap_openai_costs.message_writer import BufferedMsgSpecWriter
    from tap_openai_costs.streams import CostsStream
    from tap_openai_costs.tap import TapOpenAICosts

    ticks = itertools.count()
    # Every record's time_extracted is a new instant: both paths must take one per record.
    clock = lambda: RUN_STARTED + timedelta(microseconds=next(ticks))  # noqa: E731
    monkeypatch.setattr(singer_sdk.streams.core, "utc_now", clock)
    monkeypatch.setattr(record_messages, "utc_now", clock)
    monkeypatch.setattr(CostsStream, "run_started", lambda self: RUN_STARTED)
    monkeypatch.setattr(CostsStream, "today", lambda self: TODAY)
    monkeypatch.setattr(CostsStream, "STATE_MSG_FREQUENCY", 7)  # STATE between the rows
    quick_records = itertools.count()
    write_record = BufferedMsgSpecWriter.write_record

    def counted(writer: BufferedMsgSpecWriter, message: dict[str, Any]) -> None:
        next(quick_records)
        write_record(writer, message)

    monkeypatch.setattr(BufferedMsgSpecWriter, "write_record", counted)
    if not quick:
        _sdk_path_only(monkeypatch)
    settings = {"paths": [str(ACME_SEPT), str(ACME_OCT)], "organization_id": ORG} | (config or {})
    discovered = None
    if catalog is not None:
        discovered = TapOpenAICosts(config=settings, parse_env_config=False).catalog_dict
        catalog(discovered)
    tap = TapOpenAICosts(
        config=settings, state=copy.deepcopy(state), catalog=discovered, parse_env_config=False
    )
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, write_through=True))
    tap.sync_all()
    tap.message_writer.flush()
    messages = out.getvalue()
    monkeypatch.undo()  # the clocks, stdout and the SDK's version are this run's only
    return messages, next(quick_records)


def _records(messages: bytes, stream: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in messages.splitlines()]
    return [m["record"] for m in lines if m["type"] == "RECORD" and m["stream"] == stream]


@pytest.mark.parametrize(
    "state",
    [
        None,  # a first run: both months drafted while validated, sealed as sent
        # October delivered before: read again after planning, under a new version.
        {"bookmarks": {"costs": {"months": {f"{ORG}/2025-10": "an older digest"}}}},
    ],
)
def test_the_tap_writes_the_same_bytes_on_the_quick_route_and_the_sdk_path(
    monkeypatch, state
) -> None:
    fast, quick_records = _tap_messages(monkeypatch, quick=True, state=state)
    sdk, sdk_records = _tap_messages(monkeypatch, quick=False, state=state)
    assert (quick_records, sdk_records) == (791, 0)
    assert len(_records(fast, "costs")) == 791  # both months' rows
    assert fast == sdk
    if state is not None:  # the files' state, learnt after validation, amid the rows
        lines = fast.splitlines()
        assert any(
            b'"type":"STATE"' in line and b'"stream":"costs"' in lines[i - 1] + lines[i + 1]
            for i, line in enumerate(lines)
        )


#: When the tap starts (ms): the SDK's stream version with emit_activate_version_messages.
STARTED_MS = 1762324200000


def _versioned_tap_messages(monkeypatch: pytest.MonkeyPatch, *, quick: bool) -> bytes:
    """The tap's messages with emit_activate_version_messages on, started at STARTED_MS."""
    import singer_sdk.plugin_base

    clock = SimpleNamespace(time=lambda: STARTED_MS / 1000)
    monkeypatch.setattr(singer_sdk.plugin_base, "time", clock)
    config = {"emit_activate_version_messages": True}
    messages, quick_records = _tap_messages(monkeypatch, quick=quick, config=config)
    assert quick_records == (791 if quick else 0)
    return messages


def test_the_tap_writes_the_stream_version_as_the_sdk_does_on_both_paths(monkeypatch) -> None:
    fast = _versioned_tap_messages(monkeypatch, quick=True)
    sdk = _versioned_tap_messages(monkeypatch, quick=False)
    assert fast == sdk
    lines = [json.loads(line) for line in fast.splitlines()]
    costs = [m for m in lines if m["type"] == "RECORD" and m["stream"] == "costs"]
    assert len(costs) == 791
    version = STARTED_MS // 1000  # the SDK's: the tap's start in seconds
    assert {m.get("version") for m in costs} == {version}
    assert {"type": "ACTIVATE_VERSION", "stream": "costs", "version": version} in lines


def test_the_target_takes_versioned_records_alike_on_both_paths(
    monkeypatch, tmp_path, capsys, caplog
) -> None:
    messages = _versioned_tap_messages(monkeypatch, quick=True).decode()
    config = {"organization_id": ORG, "dry_run": True}
    fast, sdk = (
        _run_target(
            config, messages, quick=f, capsys=capsys, caplog=caplog, output=tmp_path / f"out-{f}"
        )
        for f in (True, False)
    )
    assert (fast.quick_rows, sdk.quick_rows) == (791, 0)
    assert fast.stopped is sdk.stopped is None
    assert fast.files == sdk.files
    assert fast.files == {
        "cost_2025-09-01_2025-09-30.csv": ACME_SEPT.read_bytes(),
        "cost_2025-10-01_2025-10-31.csv": ACME_OCT.read_bytes(),
    }


def test_a_stream_map_on_the_tap_takes_the_sdk_path(monkeypatch) -> None:
    config = {"stream_maps": {"costs": {"user_email": None, "project_name": "'hidden'"}}}
    messages, quick_records = _tap_messages(monkeypatch, quick=True, config=config)
    assert quick_records == 0
    records = _records(messages, "costs")
    assert records
    assert all("user_email" not in r and r["project_name"] == "hidden" for r in records)


def _deselect_user_email(catalog: dict[str, Any]) -> None:
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == ["properties", "user_email"]:
                entry["metadata"]["selected"] = False


def test_a_deselected_property_takes_the_sdk_path(monkeypatch) -> None:
    messages, quick_records = _tap_messages(monkeypatch, quick=True, catalog=_deselect_user_email)
    assert quick_records == 0
    records = _records(messages, "costs")
    assert records
    assert all("user_email" not in r and "api_source" in r for r in records)


def _route_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith(("costs: ", "focus_costs: "))
    ]


QUICK_TAP = "the quick route (no map, deselection or conformance changes a record)"


def _select_focus_costs(catalog: dict[str, Any]) -> None:
    for stream in catalog["streams"]:
        if stream["tap_stream_id"] == "focus_costs":
            for entry in stream["metadata"]:
                if entry["breadcrumb"] == []:
                    entry["metadata"]["selected"] = True


@pytest.mark.parametrize(
    ("run", "lines"),
    [
        ({}, [f"costs: {QUICK_TAP}"]),
        (
            {"config": {"stream_maps": {"costs": {"user_email": None}}}},
            ["costs: the SDK's per-record path (a stream map is configured)"],
        ),
        (
            {"catalog": _deselect_user_email},
            ["costs: the SDK's per-record path (a property or the stream is deselected)"],
        ),
        # Once per stream, though focus_costs is synced a chunk at a time.
        ({"catalog": _select_focus_costs}, [f"costs: {QUICK_TAP}", f"focus_costs: {QUICK_TAP}"]),
        (
            {"untested_sdk": True},
            [
                "costs: the SDK's per-record path (singer-sdk 0.55.0 is not the ~=0.54.9 it "
                "was tested with)"
            ],
        ),
    ],
    ids=["quick", "stream map", "deselected property", "focus_costs too", "untested singer-sdk"],
)
def test_the_tap_says_once_per_stream_which_route_its_records_take(
    monkeypatch, caplog, run, lines
) -> None:
    with caplog.at_level(logging.INFO):
        _tap_messages(
            monkeypatch,
            quick=not run.get("untested_sdk"),
            config=run.get("config"),
            catalog=run.get("catalog"),
        )
    assert _route_lines(caplog) == lines


def test_the_tap_writes_the_same_focus_rows_on_both_routes(monkeypatch) -> None:
    fast, quick_records = _tap_messages(monkeypatch, quick=True, catalog=_select_focus_costs)
    sdk, sdk_records = _tap_messages(monkeypatch, quick=False, catalog=_select_focus_costs)
    focus_rows = len(_records(fast, "focus_costs"))
    assert focus_rows > 0
    assert (quick_records, sdk_records) == (791 + focus_rows, 0)
    assert fast == sdk


# --- the target ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def acme_messages(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tap's messages for both acme months, as the target reads them."""
    return tap_output(tmp_path_factory.mktemp("tap"), ACME_SEPT, ACME_OCT)


class TargetRun(msgspec.Struct):
    stdout: str
    stopped: str | None
    files: dict[str, bytes]
    metrics: list[dict[str, Any]]
    #: Each sink drained, in order, and how many records it held.
    drains: list[tuple[str, int]]
    #: Each stream's sink at the end: records read and written, as the SDK tallies them.
    tallies: dict[str, tuple[int, int]]
    #: Rows kept as the validator converted them (the quick route).
    quick_rows: int
    #: What became of each month (the end-of-run table's actions).
    actions: list[str]
    #: The lines saying which route the costs records took.
    routes: list[str]


def _run_target(
    config: dict[str, Any], messages: str, *, quick: bool, capsys, caplog, output: Path
) -> TargetRun:
    """The target in-process on ``messages``, on the quick route where it applies or on the
    SDK's path only."""
    from target_pelanor.validation import CompiledValidator

    capsys.readouterr()
    caplog.clear()
    quick_rows = itertools.count()
    with pytest.MonkeyPatch.context() as patch:
        if not quick:
            _sdk_path_only(patch)
        converted = CompiledValidator.converted
        last: list[dict[str, Any]] = []  # asked about more than once per record

        def counted(validator: CompiledValidator, record: dict[str, Any]) -> Any:
            row = converted(validator, record)
            if row is not None and not (last and last[0] is record):
                next(quick_rows)
                last[:] = [record]
            return row

        patch.setattr(CompiledValidator, "converted", counted)
        run = _run_target_patched(config, messages, capsys=capsys, caplog=caplog, output=output)
    return msgspec.structs.replace(run, quick_rows=next(quick_rows))


def _run_target_patched(
    config: dict[str, Any], messages: str, *, capsys, caplog, output: Path
) -> TargetRun:
    target = TargetPelanor(config=config | {"output_dir": str(output)}, parse_env_config=False)
    drains: list[tuple[str, int]] = []
    drain_one = target.drain_one

    def recording_drain(sink: Any) -> None:
        drains.append((sink.stream_name, sink.current_size))
        drain_one(sink)

    target.drain_one = recording_drain  # type: ignore[method-assign]
    stopped = None
    with caplog.at_level(logging.INFO, logger="singer_sdk.metrics"), caplog.at_level(logging.INFO):
        try:
            target.listen(io.StringIO(messages))
        except RunStopped as stop:
            stopped = str(stop)
        except SystemExit as exit:  # a month not uploaded: reported, exit status 1
            stopped = None if exit.code == 1 else f"exit status {exit.code}"
    metrics = [
        json.loads(r.getMessage().removeprefix("METRIC: "))
        for r in caplog.records
        if r.name == "singer_sdk.metrics"
    ]
    for metric in metrics:
        metric["tags"].pop("pid", None)
        if metric["type"] == "timer":
            metric.pop("value")  # seconds
    return TargetRun(
        stdout=capsys.readouterr().out,
        stopped=stopped,
        files={p.name: p.read_bytes() for p in sorted(output.iterdir())} if output.exists() else {},
        metrics=metrics,
        drains=drains,
        tallies={
            name: (sink._total_records_read, sink._total_records_written)
            for name, sink in target._sinks_active.items()
        },
        quick_rows=0,
        actions=[result.action for result in target.delivery.results],
        routes=[r.getMessage() for r in caplog.records if r.getMessage().startswith("costs: ")],
    )


@pytest.mark.parametrize("batch_size_rows", [None, 7])
def test_the_target_uploads_the_same_files_and_confirms_the_same_state_on_both_paths(
    tmp_path, acme_messages, capsys, caplog, batch_size_rows
) -> None:
    runs = []
    for fast in (True, False):
        with PelanorSandbox(sandbox_config(), tmp_path / f"pelanor-{fast}") as sandbox:
            config = target_config(sandbox)
            if batch_size_rows is not None:  # the SDK told of rows every 7 rows
                config["batch_size_rows"] = batch_size_rows
            run = _run_target(
                config,
                acme_messages,
                quick=fast,
                capsys=capsys,
                caplog=caplog,
                output=tmp_path / f"out-{fast}",
            )
            stored = {p.name: p.read_bytes() for p in sandbox.stored_files()}
        runs.append((run, stored))
    (fast_run, fast_stored), (sdk_run, sdk_stored) = runs
    assert fast_run.quick_rows == 791
    assert sdk_run.quick_rows == 0
    assert fast_run.routes == ["costs: the quick route (no map or setting changes a record)"]
    assert sdk_run.routes == [
        "costs: the SDK's per-record path (singer-sdk 0.55.0 is not the ~=0.54.9 it was "
        "tested with)"
    ]
    assert (
        fast_stored
        == sdk_stored
        == {
            "2025-09.csv": ACME_SEPT.read_bytes(),
            "2025-10.csv": ACME_OCT.read_bytes(),
        }
    )
    assert fast_run.files == sdk_run.files
    # The state confirmed: the same, but for where and when each upload went (each path
    # uploaded to its own sandbox, a second apart).
    assert _without_where_and_when(fast_run.stdout) == _without_where_and_when(sdk_run.stdout)
    assert '"org-acme/2025-10"' in fast_run.stdout
    assert fast_run.metrics == sdk_run.metrics
    # Drained at the same records (a sink that writes each record as it comes is never
    # full: at STATE messages and at the end), or every 7 rows: the SDK's loop on both.
    assert fast_run.drains == sdk_run.drains
    assert ("costs", 0) in fast_run.drains
    assert fast_run.tallies == sdk_run.tallies
    assert fast_run.tallies["costs"] == (791, 791)
    assert {"type": "counter", "metric": "record_count", "value": 791} in [
        {k: m[k] for k in ("type", "metric", "value")} for m in fast_run.metrics
    ]


def _without_where_and_when(stdout: str) -> str:
    """The target's output with each upload record's endpoint, destination and time
    blanked."""
    return re.sub(r'"(endpoint|destination|uploaded_at)": "[^"]*"', r'"\1": "…"', stdout)


def _edit_row(number: int, edit: Callable[[str], str]) -> Callable[[str], str]:
    """Edit the text of the costs record of one row."""

    def apply(messages: str) -> str:
        lines = messages.splitlines(keepends=True)
        for i, line in enumerate(lines):
            if line.startswith('{"type":"RECORD","stream":"costs"') and f'"row":{number},' in line:
                lines[i] = edit(line)
                return "".join(lines)
        raise AssertionError(f"no costs record of row {number}")

    return apply


def _set(field: str, value: Any) -> Callable[[str], str]:
    def edit(line: str) -> str:
        message = json.loads(line)
        if value is _DROP:
            del message["record"][field]
        else:
            message["record"][field] = value
        return json.dumps(message, separators=(",", ":")) + "\n"

    return edit


_DROP = object()


@pytest.mark.parametrize(
    ("edit", "outcome"),
    [
        (_set("row", "7"), "data.row must be integer"),
        (_set("row", 7.0), "data.row must be integer"),
        (_set("month", "2025-13"), "data.month must match pattern"),
        (_set("organization", None), "data.organization must be string"),
        (_set("csv_row", _DROP), "data must contain ['csv_row'] properties"),
        (_set("month_version", _DROP), "data must contain ['month_version'] properties"),
        (_set("amount_value", 0.5), "data.amount_value must be string or null"),
        (_set("day", 20251002), "data.day must be string"),
        (_set("amount_value", "a lot"), "Invalid decimal string"),
        (_set("note", "an extra property"), None),
        (_set("user_email", None), None),
        # A repeated key: the last one counts, as in the SDK's decoder.
        (lambda line: line.replace('"row":', '"row":"first","row":', 1), None),
        # Another spelling of the message than the tap's.
        (
            lambda line: line.replace(
                '"type":"RECORD","stream":"costs"', '"stream":"costs","type":"RECORD"'
            ),
            None,
        ),
    ],
)
def test_a_costs_record_is_judged_alike_on_both_paths(
    tmp_path, acme_messages, capsys, caplog, edit, outcome
) -> None:
    messages = _edit_row(5, edit)(acme_messages)
    config = {"organization_id": ORG, "dry_run": True}
    fast, sdk = (
        _run_target(
            config, messages, quick=f, capsys=capsys, caplog=caplog, output=tmp_path / f"out-{f}"
        )
        for f in (True, False)
    )
    assert fast.stopped == sdk.stopped
    assert fast.files == sdk.files
    if outcome is None:
        assert fast.stopped is None
        assert fast.files["cost_2025-09-01_2025-09-30.csv"] == ACME_SEPT.read_bytes()
    else:
        assert fast.stopped is not None
        assert outcome in fast.stopped
        assert fast.stopped.startswith("a costs record")


def _resealed(messages: str, edit: Callable[[dict[str, Any]], None]) -> str:
    """The messages with ``edit`` applied to every costs record and each month's seal made
    to match the rows as edited (count, total and digest), as a tap would seal them if it
    had sent them so: only the target's comparison of fields and text stands in the way."""
    digests: dict[str, RowsDigest] = {}
    lines = []
    for line in messages.splitlines(keepends=True):
        if line.startswith(
            ('{"type":"RECORD","stream":"costs"', '{"type":"RECORD","stream":"cost_months"')
        ):
            message = json.loads(line)
            record = message["record"]
            if message["stream"] == "costs":
                edit(record)
                digests.setdefault(record["month"], RowsDigest()).add_row(
                    record["day"], record["csv_row"]
                )
            else:
                record["rows_digest"] = digests.pop(record["month"]).hexdigest()
            line = json.dumps(message, separators=(",", ":")) + "\n"
        lines.append(line)
    return "".join(lines)


def _in_row_5(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(record: dict[str, Any]) -> None:
        if record["month"] == "2025-09" and record["row"] == 5:
            edit(record)

    return apply


def _field(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return _in_row_5(lambda record: record.__setitem__(name, value))


def _cut_amount_text(record: dict[str, Any]) -> None:
    record["csv_row"] = record["csv_row"].replace(",0.00000001,", ",0.0001,")


#: Row 5 of September (line 6 of its file): 0.00000001 USD of 2025-09-01, org-acme, usd.
_FIELDS_AND_TEXT = {
    "the amount cut in the text only": (
        _in_row_5(_cut_amount_text),
        "row 6's amount_value '0.00000001' is not the amount_value in its csv_row ('0.0001')",
    ),
    "another typed amount": (
        _field("amount_value", "0.0001"),
        "row 6's amount_value '0.0001' is not the amount_value in its csv_row ('0.00000001')",
    ),
    "a null typed amount": (
        _field("amount_value", None),
        "row 6's amount_value null is not the amount_value in its csv_row ('0.00000001')",
    ),
    "another typed day": (
        _field("day", "2025-09-02"),
        "row 6's day '2025-09-02' is not the day of start_time in its csv_row ('2025-09-01')",
    ),
    "another typed organization_id": (
        _field("organization_id", "org-globex"),
        "row 6's organization_id 'org-globex' is not the organization_id in its csv_row "
        "('org-acme')",
    ),
    "another typed currency": (
        _field("amount_currency", "eur"),
        "row 6's amount_currency 'eur' is not the amount_currency in its csv_row ('usd')",
    ),
}


@pytest.mark.parametrize(("edit", "reason"), _FIELDS_AND_TEXT.values(), ids=_FIELDS_AND_TEXT)
def test_a_row_whose_fields_differ_from_its_text_withholds_its_month_on_both_paths(
    tmp_path, acme_messages, capsys, caplog, edit, reason
) -> None:
    messages = _resealed(acme_messages, edit)
    config = {"organization_id": ORG, "dry_run": True}
    fast, sdk = (
        _run_target(
            config, messages, quick=f, capsys=capsys, caplog=caplog, output=tmp_path / f"out-{f}"
        )
        for f in (True, False)
    )
    assert fast.quick_rows == 791
    for run in (fast, sdk):
        assert run.stopped is None
        assert run.actions[0] == (
            f"withheld: {reason}: what the target reports must be what it uploads; pair "
            "target-pelanor with tap-openai-costs, without stream maps that change a costs "
            "record, and run the pipeline again"
        )
        assert run.actions[1].startswith("written to ")  # October, untouched
        assert list(run.files) == ["cost_2025-10-01_2025-10-31.csv"]


def test_an_amount_spelt_otherwise_in_the_text_is_the_same_amount(
    tmp_path, acme_messages, capsys, caplog
) -> None:
    """Amounts are compared as numbers: the tap sends an export's 1e-08 as 0.00000001."""
    spelt = _in_row_5(
        lambda r: r.__setitem__("csv_row", r["csv_row"].replace(",0.00000001,", ",1e-08,"))
    )
    messages = _resealed(acme_messages, spelt)
    config = {"organization_id": ORG, "dry_run": True}
    for fast in (True, False):
        run = _run_target(
            config, messages, quick=fast, capsys=capsys, caplog=caplog, output=tmp_path / f"{fast}"
        )
        assert [action.split(" ")[0] for action in run.actions] == ["written", "written"]
        assert b",1e-08,usd," in run.files["cost_2025-09-01_2025-09-30.csv"]


def _nullable_in_schema(messages: str, field: str) -> str:
    """The messages with the costs SCHEMA saying ``field`` (still required) may be null."""
    lines = messages.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if '"SCHEMA","stream":"costs"' in line)
    schema = json.loads(lines[at])
    assert field in schema["schema"]["required"]
    schema["schema"]["properties"][field]["type"] = ["string", "null"]
    lines[at] = json.dumps(schema, separators=(",", ":")) + "\n"
    return "".join(lines)


@pytest.mark.parametrize("field", ["csv_row", "organization", "day"])
def test_a_required_text_field_the_schema_lets_be_null_is_refused_alike_on_both_paths(
    tmp_path, acme_messages, capsys, caplog, field
) -> None:
    messages = _nullable_in_schema(acme_messages, field)
    config = {"organization_id": ORG, "dry_run": True}
    runs = {
        edited: [
            _run_target(
                config,
                text,
                quick=fast,
                capsys=capsys,
                caplog=caplog,
                output=tmp_path / f"{edited}-{fast}",
            )
            for fast in (True, False)
        ]
        for edited, text in [
            ("as sent", messages),
            ("null", _edit_row(5, _set(field, None))(messages)),
        ]
    }
    (fast, sdk) = runs["as sent"]
    assert fast.stopped is sdk.stopped is None
    assert fast.files == sdk.files
    assert fast.files["cost_2025-09-01_2025-09-30.csv"] == ACME_SEPT.read_bytes()
    (fast, sdk) = runs["null"]
    assert (
        fast.stopped
        == sdk.stopped
        == (
            f"a costs record: Expected `str`, got `null` - at `$.{field}`; pair target-pelanor "
            "with tap-openai-costs"
        )
    )
    assert fast.files == sdk.files == {}


def test_a_new_schema_midway_is_applied_on_both_paths(
    tmp_path, acme_messages, capsys, caplog
) -> None:
    lines = acme_messages.splitlines(keepends=True)
    schema = json.loads(next(line for line in lines if '"SCHEMA","stream":"costs"' in line))
    schema["schema"]["properties"]["note"] = {"type": ["string"]}
    schema["schema"]["required"].append("note")
    fifth = next(
        i for i, line in enumerate(lines) if '"stream":"costs"' in line and '"row":5,' in line
    )
    lines.insert(fifth, json.dumps(schema, separators=(",", ":")) + "\n")
    config = {"organization_id": ORG, "dry_run": True}
    fast, sdk = (
        _run_target(
            config, "".join(lines), quick=f, capsys=capsys, caplog=caplog, output=tmp_path / f"{f}"
        )
        for f in (True, False)
    )
    assert fast.quick_rows == 4  # the rows before the new schema
    assert fast.stopped == sdk.stopped
    assert fast.stopped is not None
    assert "data must contain ['note'] properties" in fast.stopped


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ({"stream_maps": {"costs": {"note": "'kept apart'"}}}, "a stream map is configured"),
        ({"validate_records": False}, "validate_records is off"),
        ({"add_record_metadata": True}, "add_record_metadata is on"),
    ],
)
def test_a_map_or_setting_that_changes_records_takes_the_sdk_path_on_the_target(
    tmp_path, acme_messages, capsys, caplog, setting, reason
) -> None:
    config = {"organization_id": ORG, "dry_run": True} | setting
    run = _run_target(
        config, acme_messages, quick=True, capsys=capsys, caplog=caplog, output=tmp_path / "out"
    )
    assert (run.stopped, run.quick_rows) == (None, 0)
    assert run.routes == [f"costs: the SDK's per-record path ({reason})"]
    assert run.files["cost_2025-10-01_2025-10-31.csv"] == ACME_OCT.read_bytes()


# --- the record type built from a schema ---------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": ["integer"]},
        "month": {"type": ["string"], "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"},
        "text": {"type": ["string", "null"], "format": "x-singer.decimal"},
        "flag": {"type": ["boolean", "null"]},
        "key": {"type": ["string", "null"]},
    },
    "required": ["n", "month"],
}


@pytest.mark.parametrize(
    "record",
    [
        '{"n":1,"month":"2025-10","key":"k"}',
        '{"n":1,"month":"2025-10","key":"k","text":"0.5","flag":true,"extra":[1,{"a":2}]}',
        '{"n":99999999999999999999999,"month":"2025-10","key":"k"}',
        '{"n":1,"month":"2025-10","key":"k","text":null,"flag":null}',
        '{"n":1,"month":"2025-10"}',  # the key property missing
        '{"n":1,"month":"2025-10","key":null}',
        '{"n":1.0,"month":"2025-10","key":"k"}',
        '{"n":1e3,"month":"2025-10","key":"k"}',
        '{"n":true,"month":"2025-10","key":"k"}',
        '{"n":"1","month":"2025-10","key":"k"}',
        '{"n":1,"month":"2025-13","key":"k"}',
        '{"n":1,"month":"x2025-10","key":"k"}',
        '{"n":1,"key":"k"}',
        '{"n":1,"month":"2025-10","key":"k","text":0.5}',
        '{"n":1,"month":"2025-10","key":"k","flag":1}',
        '{"n":1,"month":"2025-10","key":"k","flag":"true"}',
        '{"n":"x","n":1,"month":"2025-10","key":"k"}',
        "[1]",
    ],
)
def test_the_record_type_accepts_only_what_the_validator_accepts(record) -> None:
    from singer_sdk.contrib.msgspec import decoder

    from target_pelanor.typed_rows import record_type_of

    record_type = record_type_of(SCHEMA, ["key"])
    assert record_type is not None
    value = decoder.decode(record)  # as the SDK's reader decodes it
    try:
        msgspec.convert(value, record_type)
    except msgspec.ValidationError:
        quick = False
    else:
        quick = True
    try:
        fastjsonschema.compile(SCHEMA, use_formats=False)(value)
    except fastjsonschema.JsonSchemaValueException:
        sdk = False
    else:
        sdk = "key" in value  # the SDK's key property check
    assert quick == sdk


@pytest.mark.parametrize(
    "change",
    [
        {"n": {"type": ["number"]}},
        {"n": {"type": ["integer"], "minimum": 0}},
        {"n": {"type": ["integer"], "default": 0}},
        {"n": {"type": ["object"], "properties": {}}},
        {"n": {"type": ["array"], "items": {"type": "string"}}},
        {"n": {"anyOf": [{"type": "integer"}]}},
        {"n": {"type": ["string"], "pattern": "("}},
        {"_sdc_extracted_at": {"type": ["string"]}},
    ],
)
def test_a_schema_with_more_than_types_and_patterns_has_no_record_type(change) -> None:
    from target_pelanor.typed_rows import record_type_of

    schema = SCHEMA | {"properties": SCHEMA["properties"] | change}
    assert record_type_of(schema, []) is None
    assert record_type_of(SCHEMA | {"additionalProperties": False}, []) is None


def test_the_quick_route_builds_every_field_of_a_cost_row() -> None:
    """typed_rows.cost_row_reader builds each CostRow from these fields by name: a field
    added to CostRow must be added there too, or the quick route would leave it at its
    default."""
    assert CostRow.__struct_fields__ == (
        "organization",
        "month",
        "day",
        "csv_row",
        "amount_value",
        "organization_id",
        "amount_currency",
    )
