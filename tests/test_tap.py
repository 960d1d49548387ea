"""tap-openai-costs as a user runs it: records, seals, merges, state, and refusals."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from tests.exports import OLD, ORG, SAMPLES, cost, days, export, month_rows, seal_day, write
from tests.singer import run, run_tap
from tests.tap_output import built_months

ACME = {"paths": [str(SAMPLES / "acme")], "organization_id": "org-acme"}
OCTOBER = SAMPLES / "acme" / "cost_2025-10-01_2025-10-31.csv"
#: A month_version: the run's UTC start, then the sending's number in the run.
VERSION = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9]{4}")


def test_records_are_typed_and_exact(tmp_path) -> None:
    result = run_tap(tmp_path, ACME | {"start_month": "2025-10"})
    assert result.returncode == 0, result.stderr
    lines = [
        line
        for line in result.stdout.splitlines()
        if '"stream":"costs"' in line and '"RECORD"' in line
    ]
    first = json.loads(lines[0], parse_float=Decimal)["record"]
    source = OCTOBER.read_text().splitlines()
    assert VERSION.fullmatch(first["month_version"])
    assert first == {
        "organization": "org-acme",
        "month": "2025-10",
        "month_version": first["month_version"],
        "row": 1,
        "day": "2025-10-01",
        "start_time": 1759276800,
        "end_time": 1759363200,
        "start_time_iso": "2025-10-01T00:00:00+00:00",
        "end_time_iso": "2025-10-02T00:00:00+00:00",
        "amount_value": "0.2747543622152208",
        "amount_currency": "usd",
        "quantity": None,
        "quantity_unit": None,
        "line_item": "gpt-4o-2024-08-06, input",
        "user_id": None,
        "api_key_id": None,
        "project_id": "proj_Ab12Cd34Ef56",
        "organization_id": "org-acme",
        "project_name": "Acme App",
        "organization_name": "Acme, Inc.",
        "user_email": None,
        "api_source": None,
        "csv_row": source[1],
    }
    # Amounts travel as the export's digits, trailing zeros too, as text: never a float.
    amounts = [line.split(",")[4] for line in source[1:] if line.split(",")[4]]
    emitted = [json.loads(line)["record"]["amount_value"] for line in lines]
    assert [a for a in emitted if a is not None] == amounts
    assert "1.530500" in amounts
    idle = [json.loads(line)["record"] for line in lines if '"day":"2025-10-04"' in line]
    assert idle == [
        {
            **{k: None for k in first if k not in {"organization", "month", "row", "day"}},
            "organization": "org-acme",
            "month": "2025-10",
            "month_version": first["month_version"],
            "row": idle[0]["row"],
            "day": "2025-10-04",
            "start_time": 1759536000,
            "end_time": 1759622400,
            "start_time_iso": "2025-10-04T00:00:00+00:00",
            "end_time_iso": "2025-10-05T00:00:00+00:00",
            "csv_row": "1759536000,1759622400,2025-10-04T00:00:00+00:00,"
            "2025-10-05T00:00:00+00:00,,,,,,,,,,,,,",
        }
    ]


def test_months_go_out_while_validated_and_are_sealed_once_every_file_passed(tmp_path) -> None:
    result = run_tap(tmp_path, ACME)
    order = [(m["stream"], m["record"]["month"]) for m in result.messages if m["type"] == "RECORD"]
    assert order == [
        ("cost_month_layouts", "2025-09"),
        *[("costs", "2025-09")] * 409,
        ("cost_month_layouts", "2025-10"),
        *[("costs", "2025-10")] * 382,
        ("cost_months", "2025-09"),
        ("cost_months", "2025-10"),
    ]
    layouts = result.records("cost_month_layouts")
    assert [layout["layout"] for layout in layouts] == [
        seal["layout"] for seal in result.records("cost_months")
    ]
    total = sum(Decimal(line.split(",")[4] or 0) for line in OCTOBER.read_text().splitlines()[1:])
    seal = result.records("cost_months")[1]
    assert seal["month_version"] == layouts[1]["month_version"]
    assert seal | {"rows_digest": "", "input_digest": "", "layout": {}} == {
        "organization": "org-acme",
        "month": "2025-10",
        "month_version": layouts[1]["month_version"],
        "row_count": 382,
        "total_usd": str(total),
        "days_covered": 31,
        "days_expected": 31,
        "missing_days": [],
        "complete": True,
        "rows_digest": "",
        "input_digest": "",
        "source_files": [str(OCTOBER)],
        "layout": {},
    }
    assert seal["layout"]["final_newline"] is True
    assert built_months(result) == {
        "2025-09": (SAMPLES / "acme" / "cost_2025-09-01_2025-09-30.csv").read_bytes(),
        "2025-10": OCTOBER.read_bytes(),
    }


def test_crlf_bom_sample_round_trips(tmp_path) -> None:
    sample = SAMPLES / "globex" / "cost_2025-10-01_2025-10-31.csv"
    result = run_tap(tmp_path, {"paths": [str(sample)], "organization_id": "org-globex"})
    assert built_months(result) == {"2025-10": sample.read_bytes()}


def test_unchanged_inputs_emit_nothing_and_a_changed_file_exactly_its_month(tmp_path) -> None:
    folder = tmp_path / "exports"
    september = write(folder / "sep.csv", export(month_rows("2025-09")))
    write(folder / "oct.csv", export(month_rows("2025-10")))
    config = {"paths": [str(folder)], "organization_id": ORG}

    first = run_tap(tmp_path, config)
    assert [s["month"] for s in first.records("cost_months")] == ["2025-09", "2025-10"]
    assert set(first.last_state["bookmarks"]["costs"]["months"]) == {
        "org-acme/2025-09",
        "org-acme/2025-10",
    }

    second = run_tap(tmp_path, config, first.last_state)
    assert second.returncode == 0
    assert second.records("costs") == []
    assert second.records("cost_months") == []
    assert second.last_state["bookmarks"]["costs"] == first.last_state["bookmarks"]["costs"]

    write(september, export(month_rows("2025-09", amount="2.50")))
    third = run_tap(tmp_path, config, second.last_state)
    assert {r["month"] for r in third.records("costs")} == {"2025-09"}
    assert len(third.records("costs")) == 60
    assert [s["month"] for s in third.records("cost_months")] == ["2025-09"]
    months = third.last_state["bookmarks"]["costs"]["months"]
    assert (
        months["org-acme/2025-10"]
        == first.last_state["bookmarks"]["costs"]["months"]["org-acme/2025-10"]
    )
    assert (
        months["org-acme/2025-09"]
        != first.last_state["bookmarks"]["costs"]["months"]["org-acme/2025-09"]
    )


def test_a_full_month_export_replaces_the_mid_month_one(tmp_path) -> None:
    mid = write(
        tmp_path / "mid.csv", export(month_rows("2025-10", "9.99")[:30]), mtime=2_000_000_000
    )
    full = write(tmp_path / "full.csv", export(month_rows("2025-10")), mtime=1_900_000_000)
    result = run_tap(tmp_path, {"paths": [str(mid), str(full)], "organization_id": ORG})
    assert built_months(result) == {"2025-10": full.read_bytes()}
    assert result.records("cost_months")[0]["source_files"] == [str(full)]


def test_a_quarter_export_is_split_by_month(tmp_path) -> None:
    quarter_rows = month_rows("2025-10") + month_rows("2025-11") + month_rows("2025-12")
    quarter = write(tmp_path / "q4.csv", export(quarter_rows, terminator="\r\n", bom=True))
    result = run_tap(tmp_path, {"paths": [str(quarter)], "organization_id": ORG})
    assert built_months(result) == {
        month: export(month_rows(month), terminator="\r\n", bom=True)
        for month in ("2025-10", "2025-11", "2025-12")
    }


def test_overlapping_exports_merge_per_day_newest_wins(tmp_path) -> None:
    early_days = [r for r in month_rows("2025-10", "7.77") if r["start_time_iso"] < "2025-10-21"]
    late_days = [r for r in month_rows("2025-10") if r["start_time_iso"] >= "2025-10-10"]
    # The early file was saved later, but the late one covers later days: it wins its days.
    write(tmp_path / "in" / "early.csv", export(early_days, terminator="\r\n"), mtime=2_000_000_000)
    write(tmp_path / "in" / "late.csv", export(late_days), mtime=1_900_000_000)
    result = run_tap(tmp_path, {"paths": [str(tmp_path / "in" / "*.csv")], "organization_id": ORG})
    expected = [r for r in early_days if r["start_time_iso"] < "2025-10-10"] + late_days
    assert built_months(result) == {"2025-10": export(expected)}
    # early.csv was read first, so October went out from it as a draft; once late.csv was
    # read too, the merged month replaced it, in day order, and only that was sealed.
    records = [m for m in result.messages if m["type"] == "RECORD"]
    months = [(m["stream"], m["record"].get("row")) for m in records]
    merged_from = months.index(("cost_month_layouts", None), 1)
    assert months[:2] == [("cost_month_layouts", None), ("costs", 1)]
    assert months[merged_from + 1 :] == [
        *[("costs", row) for row in range(1, len(expected) + 1)],
        ("cost_months", None),
    ]
    merged = result.records("costs")[merged_from - 1 :]
    assert [r["csv_row"] for r in merged] == [
        export([r]).decode().splitlines()[1] for r in expected
    ]


def test_an_incomplete_past_month_is_sealed_as_incomplete(tmp_path) -> None:
    rows = [r for r in month_rows("2025-10") if r["start_time_iso"] < "2025-10-16"]
    path = write(tmp_path / "mid.csv", export(rows))
    (seal,) = run_tap(tmp_path, {"paths": [str(path)], "organization_id": ORG}).records(
        "cost_months"
    )
    assert (seal["complete"], seal["days_covered"], seal["days_expected"]) == (False, 15, 31)
    assert seal["missing_days"] == [d.isoformat() for d in days(seal_day(16), seal_day(31))]


def test_start_month_skips_earlier_months(tmp_path) -> None:
    result = run_tap(tmp_path, ACME | {"start_month": "2025-10"})
    assert [s["month"] for s in result.records("cost_months")] == ["2025-10"]


def test_bad_files_stop_the_run_before_any_record(tmp_path) -> None:
    # Files are read in name order: the bad ones first, so nothing was drafted yet.
    good = write(tmp_path / "good.csv", export(month_rows("2025-10")))
    activity = write(
        tmp_path / "activity.csv", b"start_time,end_time,start_time_iso,end_time_iso\n"
    )
    euro = write(tmp_path / "euro.csv", export([cost(seal_day(1), amount_currency="EUR")]))
    result = run_tap(tmp_path, {"paths": [str(tmp_path)], "organization_id": ORG})
    assert result.returncode == 1
    assert result.records("costs") == []
    assert result.records("cost_months") == []
    assert "Traceback" not in result.stderr
    assert result.errors == [
        f"tap-openai-costs: error: {activity}: is an Activity export (no amount_value column), "
        "not cost data; export the Cost data tab (Usage > Export > Cost data, group by Line Item)",
        f"tap-openai-costs: error: {euro}: row 2: amount_currency is 'EUR', "
        "but Pelanor accepts USD only",
    ]
    assert good.exists()


def test_a_bad_file_read_after_a_good_one_stops_the_run_before_any_seal(tmp_path) -> None:
    write(tmp_path / "a-october.csv", export(month_rows("2025-10")))
    write(tmp_path / "b-november.csv", export(month_rows("2025-11")))
    bad = write(tmp_path / "c-bad.csv", export([cost(seal_day(1), amount_currency="EUR")]))
    result = run_tap(tmp_path, {"paths": [str(tmp_path)], "organization_id": ORG})
    assert result.returncode == 1
    # October and November went out as drafts while read; the bad file means no seal.
    assert {r["month"] for r in result.records("costs")} == {"2025-10", "2025-11"}
    assert result.records("cost_months") == []
    assert "costs" not in (result.last_state or {})["bookmarks"]  # no month bookmarked
    assert result.errors == [
        f"tap-openai-costs: error: {bad}: row 2: amount_currency is 'EUR', "
        "but Pelanor accepts USD only"
    ]


def test_a_path_that_matches_nothing_is_an_error(tmp_path) -> None:
    result = run_tap(
        tmp_path, {"paths": [str(tmp_path / "nope" / "*.csv")], "organization_id": ORG}
    )
    assert result.returncode == 1
    assert result.errors == [
        f"tap-openai-costs: error: {tmp_path}/nope/*.csv: matches no export file; check the paths "
        "setting (files, folders, globs)"
    ]


def test_about_and_discover(tmp_path) -> None:
    about = run("tap-openai-costs", "--about", "--format=markdown")
    assert about.returncode == 0
    assert "| paths " in about.stdout
    assert "| organization_id " in about.stdout
    discover = run("tap-openai-costs", "--discover", config=ACME, tmp=tmp_path)
    streams = {s["tap_stream_id"]: s for s in json.loads(discover.stdout)["streams"]}
    assert sorted(streams) == ["cost_month_layouts", "cost_months", "costs", "focus_costs"]
    assert streams["focus_costs"]["key_properties"] == [
        "BillingAccountId",
        "x_Month",
        "x_MonthVersion",
        "x_CostsRow",
    ]
    assert streams["costs"]["key_properties"] == ["organization", "month", "month_version", "row"]
    assert streams["cost_month_layouts"]["key_properties"] == [
        "organization",
        "month",
        "month_version",
    ]
    assert streams["cost_months"]["key_properties"] == ["organization", "month"]
    # No flattening offered: it would break the layout and seal records.
    assert "flattening" not in about.stdout


def test_schemas_give_a_warehouse_typed_exact_columns(tmp_path) -> None:
    result = run_tap(tmp_path, ACME | {"start_month": "2025-10"})
    schemas = {
        m["stream"]: m["schema"]["properties"] for m in result.messages if m["type"] == "SCHEMA"
    }
    costs, seals = schemas["costs"], schemas["cost_months"]
    month = {"type": ["string"], "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}
    assert {k: v for k, v in costs["month"].items() if k != "description"} == month
    assert {k: v for k, v in seals["month"].items() if k != "description"} == month
    assert costs["day"]["format"] == "date"
    for column in ("start_time_iso", "end_time_iso"):
        assert (costs[column]["type"], costs[column]["format"]) == (["string", "null"], "date-time")
    # Exact decimal text: NUMERIC in SQL loaders, text elsewhere, never a float.
    assert (costs["amount_value"]["type"], costs["amount_value"]["format"]) == (
        ["string", "null"],
        "x-singer.decimal",
    )
    assert (seals["total_usd"]["type"], seals["total_usd"]["format"]) == (
        ["string"],
        "x-singer.decimal",
    )
    assert schemas["cost_month_layouts"]["month_version"]["type"] == ["string"]
    assert seals["month_version"]["type"] == ["string"]


def test_typed_values_are_normalised_and_csv_row_keeps_the_text(tmp_path) -> None:
    """ISO times without an offset are UTC (+00:00 in the typed field); exponent amounts
    become plain decimal text; the row's text is untouched."""
    row = cost(seal_day(1), "5.5e-05")
    row["start_time_iso"] = row["start_time_iso"].removesuffix("+00:00")
    rows = [row, *month_rows("2025-10")[2:]]
    path = write(tmp_path / "oct.csv", export(rows))
    result = run_tap(tmp_path, {"paths": [str(path)], "organization_id": ORG})
    first = result.records("costs")[0]
    assert (first["start_time_iso"], first["end_time_iso"], first["amount_value"]) == (
        "2025-10-01T00:00:00+00:00",
        "2025-10-02T00:00:00+00:00",
        "0.000055",
    )
    assert first["csv_row"].startswith("1759276800,1759363200,2025-10-01T00:00:00,2025-10-02T")
    assert ",5.5e-05,usd," in first["csv_row"]


def test_nine_column_exports_have_no_iso_values(tmp_path) -> None:
    nine = (
        "start_time",
        "end_time",
        *[c for c in OLD if c not in {"start_time", "end_time", "start_time_iso", "end_time_iso"}],
    )
    path = write(tmp_path / "oct.csv", export(month_rows("2025-10"), columns=nine))
    first = run_tap(tmp_path, {"paths": [str(path)], "organization_id": ORG}).records("costs")[0]
    assert "start_time_iso" not in first
    assert "end_time_iso" not in first
    assert first["amount_value"] == "1.25"


def test_every_sending_of_a_month_has_its_own_version_and_the_seal_names_it(tmp_path) -> None:
    """A draft sealed as sent keeps its version; a month sent again (merged) gets a new
    one; a later run's versions sort after this run's."""
    folder = tmp_path / "in"
    write(folder / "a-sep.csv", export(month_rows("2025-09")))
    write(folder / "b-oct-early.csv", export(month_rows("2025-10")[:20]), mtime=1_900_000_000)
    write(folder / "c-oct-full.csv", export(month_rows("2025-10")), mtime=1_900_000_060)
    config = {"paths": [str(folder)], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    layouts = [(r["month"], r["month_version"]) for r in first.records("cost_month_layouts")]
    assert [month for month, _ in layouts] == ["2025-09", "2025-10", "2025-10"]
    versions = [version for _, version in layouts]
    assert all(VERSION.fullmatch(v) for v in versions)
    assert len(set(versions)) == 3
    assert versions == sorted(versions)
    assert [v[-4:] for v in versions] == ["0001", "0002", "0003"]
    assert len({v[:-5] for v in versions}) == 1  # one run
    rows = first.records("costs")
    assert {r["month_version"] for r in rows if r["month"] == "2025-09"} == {versions[0]}
    assert {r["month_version"] for r in rows if r["month"] == "2025-10"} == set(versions[1:])
    seals = {s["month"]: s["month_version"] for s in first.records("cost_months")}
    assert seals == {"2025-09": versions[0], "2025-10": versions[2]}

    write(folder / "d-oct-restated.csv", export(month_rows("2025-10", "1.30")), mtime=1_900_000_120)
    second = run_tap(tmp_path, config, first.last_state)
    (seal,) = second.records("cost_months")
    assert seal["month"] == "2025-10"
    assert seal["month_version"] > versions[2]
    assert {r["month_version"] for r in second.records("costs")} == {seal["month_version"]}


def test_month_streams_are_announced_before_any_record(tmp_path) -> None:
    result = run_tap(tmp_path, ACME)
    kinds = [(m["type"], m.get("stream")) for m in result.messages]
    assert kinds[:3] == [
        ("SCHEMA", "costs"),
        ("SCHEMA", "cost_month_layouts"),
        ("SCHEMA", "cost_months"),
    ]
    assert kinds.index(("RECORD", "cost_month_layouts")) > 3


def test_flattening_is_refused_in_one_line(tmp_path) -> None:
    config = ACME | {"flattening_enabled": True, "flattening_max_depth": 3}
    result = run_tap(tmp_path, config)
    assert result.returncode == 1
    assert result.messages == []
    assert "Traceback" not in result.stderr
    assert (
        "flattening_enabled is not supported: the layout and seal records must reach the "
        "loader whole (a warehouse stores layout as a JSON column); remove flattening_enabled"
        in result.stderr
    )


def test_connection_test_mode(tmp_path) -> None:
    batches = tmp_path / "batches"
    batch_config = {
        "encoding": {"format": "jsonl", "compression": "none"},
        "storage": {"root": batches.as_uri()},
    }
    result = run(
        "tap-openai-costs", "--test", config=ACME | {"batch_config": batch_config}, tmp=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert len(result.records("costs")) == 1
    assert not batches.exists()  # a connection test leaves no batch files behind


def test_a_file_changed_during_the_run_stops_it_before_its_seal(
    tmp_path, capsys, monkeypatch
) -> None:
    from tap_openai_costs.planner import ExportReading
    from tap_openai_costs.streams import TapStopped
    from tap_openai_costs.tap import TapOpenAICosts

    path = write(tmp_path / "oct.csv", export(month_rows("2025-10")))
    # Delivered before, so October is read again after planning rather than drafted.
    state = {"bookmarks": {"costs": {"months": {f"{ORG}/2025-10": "an older digest"}}}}
    tap = TapOpenAICosts(
        config={"paths": [str(path)], "organization_id": ORG}, state=state, parse_env_config=False
    )
    plan_then_replace = ExportReading.plans

    def plans(reading: ExportReading) -> list:
        planned = plan_then_replace(reading)
        write(path, export(month_rows("2025-10", amount="9.99")))  # after validation
        return planned

    monkeypatch.setattr(ExportReading, "plans", plans)
    with pytest.raises(TapStopped) as exited:
        tap.sync_all()
    assert exited.value.code == 1
    tap.message_writer.flush()  # as at process exit (atexit), not after pytest's report
    out, _ = capsys.readouterr()
    assert '"stream":"costs"' in out
    assert '"type":"RECORD","stream":"cost_months"' not in out
    assert [str(problem) for problem in exited.value.problems] == [
        f"{path}: changed while it was being read (rows of 2025-10-01); run the tap again"
    ]
