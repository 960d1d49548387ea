"""target-pelanor as a user runs it: tap | target against the local Pelanor sandbox."""

from __future__ import annotations

import io
import json
import signal
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from openai_costs.export import RowsDigest
from target_pelanor.month_ledger import work_file_name
from target_pelanor.target import TargetPelanor
from tests.exports import NEW, OLD, ORG, SAMPLES, export, month_rows, write
from tests.pelanor_sandbox import TOKEN, running_sandbox
from tests.singer import (
    BIN,
    every_stream_selected,
    report,
    run,
    run_tap,
    run_target,
    stored,
    tap_output,
    target_config,
)

ACME_SEPT = SAMPLES / "acme" / "cost_2025-09-01_2025-09-30.csv"
ACME_OCT = SAMPLES / "acme" / "cost_2025-10-01_2025-10-31.csv"
GLOBEX_OCT = SAMPLES / "globex" / "cost_2025-10-01_2025-10-31.csv"


def test_tap_to_target_to_sandbox_uploads_exact_files(tmp_path, pelanor) -> None:
    result = run_target(tmp_path, target_config(pelanor), tap_output(tmp_path, SAMPLES / "acme"))
    assert result.returncode == 0, result.stderr
    assert stored(pelanor) == {
        "int-acme/2025-09": ACME_SEPT.read_bytes(),
        "int-acme/2025-10": ACME_OCT.read_bytes(),
    }
    uploads = pelanor.uploads()
    assert [(u["month"], u["filename"]) for u in uploads] == [
        ("2025-09", "cost_2025-09-01_2025-09-30.csv"),
        ("2025-10", "cost_2025-10-01_2025-10-31.csv"),
    ]
    table = report(result)
    assert table[0] == [
        "organization",
        "month",
        "rows",
        "total USD",
        "action",
        "Pelanor response id",
    ]
    assert [row[:5] for row in table[1:]] == [
        ["org-acme", "2025-09", "409", "566.15973238589393446", "uploaded"],
        ["org-acme", "2025-10", "382", "554.98017457515155235", "uploaded"],
    ]
    assert [row[5] for row in table[1:]] == [u["id"] for u in uploads]
    assert result.last_state["bookmarks"]["costs"]["months"].keys() == {
        "org-acme/2025-09",
        "org-acme/2025-10",
    }


def test_focus_rows_selected_with_the_rest_are_taken_and_not_uploaded(tmp_path, pelanor) -> None:
    """A project that selects every stream (Meltano's default where no `select` is set)
    still uploads exact months: target-pelanor drops the FOCUS rows and says so once."""
    config = {"paths": [str(SAMPLES / "acme")], "organization_id": ORG}
    tap = run_tap(tmp_path, config, catalog=every_stream_selected(tmp_path))
    assert tap.records("focus_costs")
    result = run_target(tmp_path, target_config(pelanor), tap.stdout)

    assert result.returncode == 0, result.stderr
    assert stored(pelanor) == {
        "int-acme/2025-09": ACME_SEPT.read_bytes(),
        "int-acme/2025-10": ACME_OCT.read_bytes(),
    }
    said = [line for line in result.stderr.splitlines() if "focus_costs:" in line]
    assert [line.rsplit(" | ", 1)[-1] for line in said] == [
        "focus_costs: not uploaded (Pelanor takes the export's own rows); deselect it for this "
        "job to spare the tap the work (meltano select)"
    ]


def test_crlf_bom_export_of_another_organization(tmp_path, pelanor) -> None:
    messages = tap_output(tmp_path, GLOBEX_OCT, organization_id="org-globex")
    config = target_config(pelanor, organization_id="org-globex", integration_id="int-globex")
    assert run_target(tmp_path, config, messages).returncode == 0
    assert stored(pelanor) == {"int-globex/2025-10": GLOBEX_OCT.read_bytes()}


@pytest.mark.parametrize(
    ("terminator", "bom"), [("\n", False), ("\r\n", False), ("\n", True), ("\r\n", True)]
)
def test_every_layout_arrives_byte_for_byte(tmp_path, pelanor, terminator, bom) -> None:
    rows = month_rows("2025-11", idle=(1, 30))
    rows[3]["line_item"] = 'ft:gpt-4o:acme:"support", input'
    rows[5]["project_name"] = "Recherche & Développement, 東京"
    content = write(tmp_path / "nov.csv", export(rows, terminator=terminator, bom=bom))
    result = run_target(tmp_path, target_config(pelanor), tap_output(tmp_path, content))
    assert result.returncode == 0, result.stderr
    assert stored(pelanor) == {"int-acme/2025-11": content.read_bytes()}


@pytest.mark.parametrize("delivered_before", [False, True])
def test_a_month_merged_from_two_layouts_is_uploaded_in_the_newest(
    tmp_path, pelanor, delivered_before
) -> None:
    """Older days come from a 2025-layout export and are written in the newer layout: the
    seal vouches for them as sent, whether the month went out as a draft first or not."""
    rows = month_rows("2025-10")
    early = [r for r in rows if r["start_time_iso"] < "2025-10-11"]
    write(tmp_path / "in" / "a-early.csv", export(early, columns=OLD), mtime=1_900_000_000)
    late = write(tmp_path / "in" / "b-late.csv", export(rows[len(early) :]))
    state = {"bookmarks": {"costs": {"months": {f"{ORG}/2025-10": "older"}}}}
    tap = run_tap(
        tmp_path,
        {"paths": [str(tmp_path / "in")], "organization_id": ORG},
        state if delivered_before else None,
    )
    assert tap.returncode == 0, tap.stderr
    layouts = [r["layout"]["columns"] for r in tap.records("cost_month_layouts")]
    assert layouts == ([] if delivered_before else [list(OLD)]) + [list(NEW)]
    result = run_target(tmp_path, target_config(pelanor), tap.stdout)
    assert result.returncode == 0, result.stderr
    assert stored(pelanor) == {"int-acme/2025-10": export(rows)}
    assert tap.records("cost_months")[0]["source_files"] == [
        str(tmp_path / "in" / "a-early.csv"),
        str(late),
    ]


def test_sdk_drains_splitting_a_month_change_nothing(tmp_path, pelanor, capsys) -> None:
    """The SDK drains all sinks every few minutes, wherever the input is: mid-month too."""
    lines = tap_output(tmp_path, SAMPLES / "acme").splitlines(keepends=True)
    target = TargetPelanor(config=target_config(pelanor), parse_env_config=False)
    middle_of_october = next(
        i for i, line in enumerate(lines) if _is_row("2025-10", 191)(json.loads(line))
    )
    target.process_lines(io.StringIO("".join(lines[:middle_of_october])))
    target.drain_all()
    # Mid-October nothing is sealed yet, so nothing is uploaded and no month confirmed.
    assert pelanor.uploads() == []
    states_mid_run = capsys.readouterr().out.splitlines()
    assert all("costs" not in json.loads(state)["bookmarks"] for state in states_mid_run)
    target.process_lines(io.StringIO("".join(lines[middle_of_october:])))
    target.drain_all()
    target.process_endofpipe()
    assert stored(pelanor) == {
        "int-acme/2025-09": ACME_SEPT.read_bytes(),
        "int-acme/2025-10": ACME_OCT.read_bytes(),
    }
    # Confirmed once both seals were in: both months.
    last_state = capsys.readouterr().out.splitlines()[-1]
    assert json.loads(last_state)["bookmarks"]["costs"]["months"].keys() == {
        "org-acme/2025-09",
        "org-acme/2025-10",
    }


def test_rerunning_the_same_input_gives_the_same_result(tmp_path, pelanor) -> None:
    messages = tap_output(tmp_path, ACME_OCT)
    for _ in range(2):
        assert run_target(tmp_path, target_config(pelanor), messages).returncode == 0
    assert [u["month"] for u in pelanor.uploads()] == ["2025-10", "2025-10"]
    assert stored(pelanor) == {"int-acme/2025-10": ACME_OCT.read_bytes()}


def _cut(messages: str, stop: Callable[[dict[str, Any]], bool]) -> str:
    """What the target reads when the tap dies right before the message ``stop`` picks."""
    kept = []
    for line in messages.splitlines(keepends=True):
        if stop(json.loads(line)):
            break
        kept.append(line)
    return "".join(kept)


def _is_row(month: str, row: int) -> Callable[[dict[str, Any]], bool]:
    return lambda m: (
        m["type"] == "RECORD"
        and m["stream"] == "costs"
        and (
            m["record"]["month"],
            m["record"]["row"],
        )
        == (month, row)
    )


def _is_seal(month: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: (
        m["type"] == "RECORD" and m["stream"] == "cost_months" and m["record"]["month"] == month
    )


def _total(path: Path, rows: int) -> str:
    amounts = [line.split(",")[4] for line in path.read_text().splitlines()[1 : rows + 1]]
    return str(sum(Decimal(amount or 0) for amount in amounts))


NOT_SEALED = (
    "withheld: was not sealed by the tap: the tap refused it (its log says why, such as "
    "check_against_api) or stopped before finishing it; nothing uploaded, the next run "
    "sends it again"
)


def test_a_tap_that_dies_while_reading_uploads_nothing(tmp_path, pelanor) -> None:
    # Both months went out as drafts; neither is sealed before every file was read.
    messages = _cut(tap_output(tmp_path, SAMPLES / "acme"), _is_row("2025-10", 201))
    result = run_target(
        tmp_path, target_config(pelanor, output_dir=str(tmp_path / "out")), messages
    )
    assert result.returncode == 1
    assert stored(pelanor) == {}
    assert not (tmp_path / "out").exists()
    assert report(result)[1:] == [
        ["org-acme", "2025-09", "409", _total(ACME_SEPT, 409), NOT_SEALED],
        ["org-acme", "2025-10", "200", _total(ACME_OCT, 200), NOT_SEALED],
    ]
    assert result.errors == [
        "target-pelanor: error: 2 month(s) not uploaded (see the table); no state was saved, "
        "so the next run retries them"
    ]
    assert result.last_state is None


def test_a_tap_that_dies_between_seals_uploads_the_sealed_month_only(tmp_path, pelanor) -> None:
    messages = _cut(tap_output(tmp_path, SAMPLES / "acme"), _is_seal("2025-10"))
    result = run_target(
        tmp_path, target_config(pelanor, output_dir=str(tmp_path / "out")), messages
    )
    assert result.returncode == 1
    assert stored(pelanor) == {"int-acme/2025-09": ACME_SEPT.read_bytes()}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "cost_2025-09-01_2025-09-30.csv"
    ]
    assert report(result)[2] == ["org-acme", "2025-10", "382", _total(ACME_OCT, 382), NOT_SEALED]
    assert result.errors == [
        "target-pelanor: error: 1 month(s) not uploaded (see the table); the state saved "
        "covers only the months Pelanor accepted, so the next run retries the others"
    ]
    # September reached Pelanor: the state confirmed says so, and nothing of October.
    assert result.last_state["bookmarks"]["costs"]["months"].keys() == {"org-acme/2025-09"}
    assert result.last_state["bookmarks"]["target-pelanor"]["uploaded"].keys() == {
        "org-acme/2025-09"
    }


def test_a_killed_tap_process_uploads_nothing_for_its_month(tmp_path, pelanor) -> None:
    # A real pipeline: the tap is killed while it is writing October's rows.
    tap = subprocess.Popen(
        [str(BIN / "tap-openai-costs"), "--config", _write_config(tmp_path, SAMPLES / "acme")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen = []
    assert tap.stdout is not None
    for line in tap.stdout:
        seen.append(line)
        if _is_row("2025-10", 100)(json.loads(line)):
            tap.send_signal(signal.SIGKILL)
            break
    tap.wait()
    result = run_target(tmp_path, target_config(pelanor), "".join(seen))
    assert result.returncode == 1
    assert stored(pelanor) == {}  # September too: seals come once every file was read


def _write_config(tmp: Path, *paths: Path) -> str:
    path = tmp / "tap.config.json"
    path.write_text(json.dumps({"paths": [str(p) for p in paths], "organization_id": ORG}))
    return str(path)


EXACT_JSON = msgspec.json.Encoder(decimal_format="number")


def _edit_records(messages: str, edit) -> str:
    """Change records in flight, keeping every amount's exact digits."""
    lines = []
    for line in messages.splitlines():
        message = json.loads(line, parse_float=Decimal)
        if message["type"] == "RECORD":
            edited = edit(message["stream"], message["record"])
            if edited is None:
                continue
            message["record"] = edited
        lines.append(EXACT_JSON.encode(message).decode())
    return "\n".join(lines) + "\n"


def _drop_row(row: int):
    def edit(stream, record):
        return None if stream == "costs" and record["row"] == row else record

    return edit


def _retext_row(row: int):
    def edit(stream, record):
        if stream == "costs" and record["row"] == row:
            record["csv_row"] = record["csv_row"].replace("Acme App", "Acme Ap")
        return record

    return edit


def _foreign_row(stream, record):
    if stream == "costs" and record["row"] == 5:
        record["organization_id"] = "org-globex"
        record["csv_row"] = record["csv_row"].replace(",org-acme,", ",org-globex,")
    return record


def _rename_project_name_in(layout_stream: str):
    def edit(stream, record):
        if stream == layout_stream:
            layout = record["layout"]
            layout["header"] = layout["header"].replace(",project_name", ",project_title")
            layout["columns"] = [
                "project_title" if c == "project_name" else c for c in layout["columns"]
            ]
        return record

    return edit


def _drop_layouts(stream, record):
    return None if stream == "cost_month_layouts" else record


class EuroRowResealed:
    """A row changed to EUR, with the seal recomputed to match: only the target's own
    check of the file stands between it and Pelanor."""

    def __init__(self) -> None:
        self.digests: dict[str, RowsDigest] = {}

    def __call__(self, stream, record):
        if stream == "costs":
            if record["row"] == 5:
                record["csv_row"] = record["csv_row"].replace(",usd,", ",EUR,")
            digest = self.digests.setdefault(record["month"], RowsDigest())
            digest.add_row(record["day"], record["csv_row"])
        elif stream == "cost_months":
            record["rows_digest"] = self.digests.pop(record["month"]).hexdigest()
        return record


WITHHELD = {
    "a row lost in transit": (
        _drop_row(7),
        {},
        "withheld: rows received (381 rows, 553.44967457515155235 USD) do not match the tap's "
        "seal (382 rows, 554.98017457515155235 USD); run the pipeline again",
    ),
    "a row altered in transit": (
        _retext_row(1),
        {},
        "withheld: rows received differ from the rows the tap sealed (digest mismatch); "
        "run the pipeline again",
    ),
    "a row of another organization": (
        _foreign_row,
        {},
        "withheld: has rows of organization org-globex, not org-acme; check organization_id "
        "of the tap and the target",
    ),
    "a tap of another organization": (
        lambda stream, record: record,
        {"organization_id": "org-globex", "integration_id": "int-globex"},
        "withheld: comes from the tap for organization org-acme, but this target uploads for "
        "org-globex; pair each tap with its own target",
    ),
    "a layout Pelanor would refuse": (
        _rename_project_name_in("cost_month_layouts"),
        {},
        "withheld: fails the export checks: the month's layout fails the export checks: "
        "lacks column(s) project_name that Pelanor requires; export the Cost data grouped by "
        "Line Item (and project) with a 1 day interval",
    ),
    "rows without a layout record": (
        _drop_layouts,
        {},
        "withheld: fails the export checks: rows arrived without the month's layout record "
        "(cost_month_layouts); pair target-pelanor with tap-openai-costs",
    ),
    "a row Pelanor would refuse, resealed": (
        EuroRowResealed(),
        {},
        "withheld: fails the export checks: row 6: amount_currency is 'EUR', but Pelanor "
        "accepts USD only",
    ),
    "a seal whose layout differs": (
        _rename_project_name_in("cost_months"),
        {},
        "withheld: the seal's layout differs from the layout the month was written with; "
        "run the pipeline again",
    ),
}


@pytest.mark.parametrize(("edit", "config", "action"), WITHHELD.values(), ids=WITHHELD.keys())
def test_unsafe_months_are_withheld(tmp_path, pelanor, edit, config, action) -> None:
    messages = _edit_records(tap_output(tmp_path, ACME_OCT), edit)
    out = tmp_path / "out"
    result = run_target(tmp_path, target_config(pelanor, output_dir=str(out)) | config, messages)
    assert result.returncode == 1
    assert report(result)[1][4:] == [action]
    assert pelanor.uploads() == []
    assert not out.exists() or list(out.iterdir()) == []
    assert result.last_state is None


def test_an_incomplete_month_is_withheld_unless_allowed(tmp_path, pelanor) -> None:
    half = [r for r in month_rows("2025-10") if r["start_time_iso"] < "2025-10-16"]
    messages = tap_output(tmp_path, write(tmp_path / "mid.csv", export(half)))
    withheld = run_target(tmp_path, target_config(pelanor), messages)
    assert withheld.returncode == 1
    assert report(withheld)[1] == [
        "org-acme",
        "2025-10",
        "30",
        "20.25",
        "withheld: is incomplete: 16 day(s) missing (2025-10-16 to 2025-10-31); export the "
        "whole month, or set allow_partial_month to upload it anyway",
    ]
    assert pelanor.uploads() == []
    allowed = run_target(tmp_path, target_config(pelanor, allow_partial_month=True), messages)
    assert allowed.returncode == 0
    assert stored(pelanor) == {"int-acme/2025-10": export(half)}


@pytest.mark.parametrize("missing", ["2025-10-01", "2025-10-17", "2025-10-31"])
def test_a_month_missing_exactly_one_day_is_withheld(tmp_path, pelanor, missing) -> None:
    rows = [r for r in month_rows("2025-10") if not r["start_time_iso"].startswith(missing)]
    messages = tap_output(tmp_path, write(tmp_path / "oct.csv", export(rows)))
    result = run_target(tmp_path, target_config(pelanor), messages)
    assert result.returncode == 1
    assert report(result)[1][4] == (
        f"withheld: is incomplete: 1 day(s) missing ({missing}); export the whole month, or "
        "set allow_partial_month to upload it anyway"
    )
    assert pelanor.uploads() == []


def test_safe_months_are_still_uploaded_when_another_is_withheld(tmp_path, pelanor) -> None:
    half = [r for r in month_rows("2025-11") if r["start_time_iso"] < "2025-11-10"]
    nov = write(tmp_path / "nov.csv", export(half))
    result = run_target(tmp_path, target_config(pelanor), tap_output(tmp_path, ACME_OCT, nov))
    assert result.returncode == 1
    assert [row[4].split(":")[0] for row in report(result)[1:]] == ["uploaded", "withheld"]
    assert stored(pelanor) == {"int-acme/2025-10": ACME_OCT.read_bytes()}


def test_a_rejected_upload_fails_the_run_without_state(tmp_path, pelanor) -> None:
    config = target_config(pelanor, integration_id="int-globex")
    result = run_target(tmp_path, config, tap_output(tmp_path, ACME_OCT))
    assert result.returncode == 1
    assert report(result)[1][4] == (
        "failed: Pelanor rejected the upload of 2025-10 (HTTP 422): organization_id org-acme "
        "does not match this integration (org-globex)"
    )
    assert result.last_state is None


FAULTS = {
    "429 with Retry-After": {"kind": "429", "retry_after": 1, "times": 1},
    "500 twice": {"kind": "500", "times": 2},
    "slow reply": {"kind": "slow", "seconds": 2, "times": 1},
    "dropped connection": {"kind": "drop", "times": 1},
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_each_fault_ends_with_one_stored_file_per_month(tmp_path, fault) -> None:
    with running_sandbox(tmp_path / "pelanor", faults=[fault | {"month": "2025-10"}]) as sandbox:
        result = run_target(
            tmp_path,
            target_config(sandbox, request_timeout=1),
            tap_output(tmp_path, SAMPLES / "acme"),
        )
        sandbox.wait_idle()
        assert result.returncode == 0, result.stderr
        assert stored(sandbox) == {
            "int-acme/2025-09": ACME_SEPT.read_bytes(),
            "int-acme/2025-10": ACME_OCT.read_bytes(),
        }
        assert [f.remaining for f in sandbox.faults] == [0]


def test_dry_run_writes_files_uploads_nothing_and_confirms_no_state(tmp_path) -> None:
    out = tmp_path / "out"
    config = {"organization_id": "org-acme", "dry_run": True, "output_dir": str(out)}
    result = run_target(tmp_path, config, tap_output(tmp_path, SAMPLES / "acme"))
    assert result.returncode == 0, result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        ACME_SEPT.name: ACME_SEPT.read_bytes(),
        ACME_OCT.name: ACME_OCT.read_bytes(),
    }
    assert [row[4] for row in report(result)[1:]] == [f"written to {out}"] * 2
    assert result.last_state is None


def test_missing_upload_settings_are_a_clear_error(tmp_path) -> None:
    result = run_target(tmp_path, {"organization_id": "org-acme"}, "")
    assert result.returncode == 1
    assert "integration_id is required unless dry_run is true" in result.stderr
    assert "api_token is required unless dry_run is true" in result.stderr
    assert "Traceback" not in result.stderr


def test_plain_http_to_a_remote_host_is_refused(tmp_path) -> None:
    config = {
        "organization_id": "o",
        "integration_id": "i",
        "api_token": TOKEN,
        "api_url": "http://pelanor.example",
    }
    result = run_target(tmp_path, config, "")
    assert result.returncode == 1
    assert "api_url must use https" in result.stderr
    assert TOKEN not in result.stderr


def test_the_token_never_appears_in_any_output(tmp_path) -> None:
    outputs = []
    with running_sandbox(tmp_path / "p", faults=[{"kind": "500", "times": 1}]) as sandbox:
        messages = tap_output(tmp_path, SAMPLES / "acme")
        for config in (
            target_config(sandbox),
            target_config(sandbox, integration_id="int-globex"),
            target_config(sandbox, api_token=TOKEN + "x"),
        ):
            result = run_target(tmp_path, config, messages)
            outputs += [result.stdout, result.stderr]
    outputs.append(run("target-pelanor", "--about", "--format=markdown").stdout)
    outputs.append(run("target-pelanor", "--about", "--format=json").stdout)
    assert all(TOKEN not in text for text in outputs)
    assert any("check api_token" in text for text in outputs)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_batch_messages_carry_months_exactly_and_leave_no_files(
    tmp_path, pelanor, compression
) -> None:
    batches = tmp_path / "batches"
    config = {
        "paths": [str(SAMPLES / "acme")],
        "organization_id": ORG,
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": compression},
            "storage": {"root": batches.as_uri()},
            "batch_size": 100,
        },
    }
    tap = run_tap(tmp_path, config)
    assert tap.returncode == 0, tap.stderr
    kinds = [(m["type"], m.get("stream")) for m in tap.messages if m["type"] != "STATE"]
    opening = [("SCHEMA", "cost_month_layouts"), ("RECORD", "cost_month_layouts")]
    seal = [("SCHEMA", "cost_months"), ("RECORD", "cost_months")]
    september = [*opening, *[("BATCH", "costs")] * 5]
    october = [*opening, *[("BATCH", "costs")] * 4]
    announced = [("SCHEMA", "costs"), ("SCHEMA", "cost_month_layouts"), ("SCHEMA", "cost_months")]
    assert kinds == [*announced, *september, *october, *seal, *seal]

    result = run_target(tmp_path, target_config(pelanor), tap.stdout)
    assert result.returncode == 0, result.stderr
    assert stored(pelanor) == {
        "int-acme/2025-09": ACME_SEPT.read_bytes(),
        "int-acme/2025-10": ACME_OCT.read_bytes(),
    }
    assert list(batches.iterdir()) == []


def _october_in_one_batch_file(tmp: Path) -> tuple[str, str]:
    """The tap's messages for ACME_OCT in BATCH mode, and the URL of its one batch file."""
    config = {
        "paths": [str(ACME_OCT)],
        "organization_id": ORG,
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": (tmp / "batches").as_uri()},
        },
    }
    messages = run_tap(tmp, config).stdout
    (url,) = [m["manifest"][0] for m in json_lines(messages) if m["type"] == "BATCH"]
    return messages, url


def test_replaying_batch_messages_whose_files_are_gone_is_a_clear_error(tmp_path, pelanor) -> None:
    messages, url = _october_in_one_batch_file(tmp_path)
    assert run_target(tmp_path, target_config(pelanor), messages).returncode == 0
    again = run_target(tmp_path, target_config(pelanor), messages)
    assert again.returncode == 1
    assert again.errors == [
        f"target-pelanor: error: batch file {url} is gone (loaded and removed by an earlier "
        "run?); run the tap again"
    ]
    assert "Traceback" not in again.stderr
    assert [u["month"] for u in pelanor.uploads()] == ["2025-10"]


def test_a_batch_file_of_other_records_is_a_clear_error(tmp_path, pelanor) -> None:
    messages, url = _october_in_one_batch_file(tmp_path)
    batch = Path(url.removeprefix("file://"))
    lines = batch.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"csv_row":', '"row_text":')
    batch.write_text("".join(lines))
    result = run_target(tmp_path, target_config(pelanor), messages)
    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: batch file {url}, line 3: Object missing required field "
        "`csv_row`; pair target-pelanor with tap-openai-costs"
    ]
    assert "Traceback" not in result.stderr
    assert pelanor.uploads() == []


@pytest.mark.parametrize("field", ["csv_row", "organization", "day"])
def test_a_batch_row_with_a_required_text_field_null_is_a_clear_error(
    tmp_path, pelanor, field
) -> None:
    """As on the RECORD paths (whatever the SCHEMA lets be null), the row is refused."""
    messages, url = _october_in_one_batch_file(tmp_path)
    batch = Path(url.removeprefix("file://"))
    lines = batch.read_text().splitlines(keepends=True)
    record = json.loads(lines[2])
    record[field] = None
    lines[2] = json.dumps(record) + "\n"
    batch.write_text("".join(lines))
    result = run_target(tmp_path, target_config(pelanor), messages)
    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: batch file {url}, line 3: Expected `str`, got `null` - at "
        f"`$.{field}`; pair target-pelanor with tap-openai-costs"
    ]
    assert pelanor.uploads() == []


def test_a_batch_row_whose_fields_differ_from_its_text_withholds_its_month(
    tmp_path, pelanor
) -> None:
    messages, url = _october_in_one_batch_file(tmp_path)
    batch = Path(url.removeprefix("file://"))
    lines = batch.read_text().splitlines(keepends=True)
    assert '"amount_value":"0.75474989278489701"' in lines[1]
    lines[1] = lines[1].replace('"amount_value":"0.75474989278489701"', '"amount_value":"75.4"')
    batch.write_text("".join(lines))
    result = run_target(tmp_path, target_config(pelanor), messages)
    assert result.returncode == 1
    assert report(result)[1][4:] == [
        "withheld: row 3's amount_value '75.4' is not the amount_value in its csv_row "
        "('0.75474989278489701'): what the target reports must be what it uploads; pair "
        "target-pelanor with tap-openai-costs, without stream maps that change a costs "
        "record, and run the pipeline again"
    ]
    assert pelanor.uploads() == []
    assert result.last_state is None


def test_a_record_without_csv_row_is_a_clear_error_even_unvalidated(tmp_path, pelanor) -> None:
    lines = tap_output(tmp_path, ACME_OCT).splitlines()
    broken = next(
        i for i, line in enumerate(lines) if '"stream":"costs"' in line and "RECORD" in line
    )
    message = json.loads(lines[broken])
    del message["record"]["csv_row"]
    lines[broken] = json.dumps(message)
    config = target_config(pelanor, validate_records=False)
    result = run_target(tmp_path, config, "\n".join(lines) + "\n")
    assert result.returncode == 1
    assert result.errors == [
        "target-pelanor: error: a costs record: Object missing required field `csv_row`; "
        "pair target-pelanor with tap-openai-costs"
    ]
    assert "Traceback" not in result.stderr
    assert pelanor.uploads() == []


def test_a_seal_total_that_is_not_a_number_is_withheld_even_unvalidated(tmp_path, pelanor) -> None:
    def retotal(stream, record):
        if stream == "cost_months":
            record["total_usd"] = "about 555"
        return record

    messages = _edit_records(tap_output(tmp_path, ACME_OCT), retotal)
    result = run_target(tmp_path, target_config(pelanor, validate_records=False), messages)
    assert result.returncode == 1
    assert report(result)[1][4:] == [
        "withheld: the tap's seal has a total_usd that is not a decimal number; pair "
        "target-pelanor with tap-openai-costs and run the pipeline again"
    ]
    assert "Traceback" not in result.stderr
    assert pelanor.uploads() == []


@pytest.mark.parametrize("organization", ["org-acme/x", "org-../../x", "org-x/.."])
def test_an_organization_that_looks_like_a_path_stays_in_the_working_folder(
    tmp_path, pelanor, organization
) -> None:
    def rename(stream, record):
        record["organization"] = organization
        return record

    work = tmp_path / "work"
    messages = _edit_records(tap_output(tmp_path, ACME_OCT), rename)
    result = run_target(tmp_path, target_config(pelanor, work_dir=str(work)), messages)
    assert result.returncode == 1
    assert report(result)[1][4:] == [
        f"withheld: comes from the tap for organization {organization}, but this target "
        "uploads for org-acme; pair each tap with its own target"
    ]
    assert "Traceback" not in result.stderr
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["pelanor", "work", "tap-openai-costs.config.json", "target-pelanor.config.json"]
    )
    assert pelanor.uploads() == []


def test_work_file_names_are_one_path_component_and_never_shared() -> None:
    assert work_file_name("org-acme", "2025-10") == "org-acme_2025-10.csv"
    assert work_file_name("../a/b", "2025-10") == "..%2Fa%2Fb_2025-10.csv"
    assert work_file_name("a_b", "c") != work_file_name("a", "b_c")
    long = work_file_name("o" * 300, "2025-10")
    assert (len(long), long.endswith(".csv"), "/" in long) == (68, True, False)


def test_a_stream_the_target_does_not_load_stops_with_the_table_and_accepted_state(
    tmp_path, pelanor
) -> None:
    lines = tap_output(tmp_path, SAMPLES / "acme").splitlines()
    september_seal = next(
        i for i, line in enumerate(lines) if '"cost_months"' in line and '"2025-09"' in line
    )
    assert json.loads(lines[september_seal + 1])["type"] == "STATE"
    other = {"type": "SCHEMA", "stream": "users", "schema": {"properties": {}}}
    lines.insert(september_seal + 2, json.dumps(other))
    result = run_target(tmp_path, target_config(pelanor), "\n".join(lines) + "\n")
    assert result.returncode == 1
    assert result.errors == [
        "target-pelanor: error: stream 'users' is not one target-pelanor loads; pair it with "
        "tap-openai-costs (streams cost_month_layouts, costs, cost_months)"
    ]
    assert [row[1:2] + row[4:5] for row in report(result)[1:]] == [
        ["2025-09", "uploaded"],
        [
            "2025-10",
            "withheld: not uploaded: the run stopped before the month was finished (see below)",
        ],
    ]
    assert stored(pelanor) == {"int-acme/2025-09": ACME_SEPT.read_bytes()}
    assert list(result.last_state["bookmarks"]["target-pelanor"]["uploaded"]) == [
        "org-acme/2025-09"
    ]
    assert "Traceback" not in result.stderr


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_an_unsupported_batch_encoding_is_a_config_error(tmp_path) -> None:
    config = {
        "paths": [str(SAMPLES / "acme")],
        "organization_id": ORG,
        "batch_config": {
            "encoding": {"format": "parquet"},
            "storage": {"root": (tmp_path / "b").as_uri()},
        },
    }
    result = run_tap(tmp_path, config)
    assert result.returncode == 1
    assert (
        "batch_config.encoding must be format jsonl with compression gzip or none, "
        "not parquet / None" in result.stderr
    )
    assert result.messages == []


def _tap_with_deselected(tmp: Path, *deselected: str) -> str:
    """The tap's messages for ACME_OCT with streams deselected in its catalog, as
    `meltano select` does."""
    config = {"paths": [str(ACME_OCT)], "organization_id": ORG}
    catalog = json.loads(run("tap-openai-costs", "--discover", config=config, tmp=tmp).stdout)
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] not in deselected
    path = tmp / "catalog.json"
    path.write_text(json.dumps(catalog))
    tap = run("tap-openai-costs", "--catalog", str(path), config=config, tmp=tmp)
    assert tap.returncode == 0, tap.stderr
    return tap.stdout


@pytest.mark.parametrize(
    ("deselected", "named"),
    [
        (("cost_months",), "cost_months"),
        (("cost_month_layouts",), "cost_month_layouts"),
        (("costs",), "costs"),
        (("cost_month_layouts", "cost_months"), "cost_month_layouts or cost_months"),
    ],
)
def test_deselected_streams_are_named_before_anything_is_written(
    tmp_path, pelanor, deselected, named
) -> None:
    messages = _tap_with_deselected(tmp_path, *deselected)
    out = tmp_path / "out"
    result = run_target(tmp_path, target_config(pelanor, output_dir=str(out)), messages)
    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: the tap sends no {named} records: deselected (meltano "
        "select, or the catalog); target-pelanor needs all three streams, "
        "cost_month_layouts, costs, cost_months: select them all"
    ]
    assert "Traceback" not in result.stderr
    assert "was not sealed" not in result.stderr
    assert pelanor.uploads() == []
    assert not out.exists()
    assert result.last_state is None


def _flatten_layouts(stream, record):
    """What schema flattening (or a mapper) makes of a layout record."""
    if stream == "cost_month_layouts":
        for key, value in record.pop("layout").items():
            record[f"layout__{key}"] = value
    return record


def test_a_flattened_record_is_one_clear_error(tmp_path, pelanor) -> None:
    messages = _edit_records(tap_output(tmp_path, ACME_OCT), _flatten_layouts)
    result = run_target(tmp_path, target_config(pelanor), messages)
    assert result.returncode == 1
    assert result.errors == [
        "target-pelanor: error: a cost_month_layouts record does not match the tap's schema "
        "(data must contain ['layout'] properties); pair target-pelanor with "
        "tap-openai-costs, without flattening or stream maps that change its records"
    ]
    assert "Traceback" not in result.stderr
    assert pelanor.uploads() == []


def test_a_seal_for_another_version_of_the_month_is_withheld(tmp_path, pelanor) -> None:
    versions = {}

    def reseal(stream, record):
        if stream == "cost_months":
            versions["sent"] = record["month_version"]
            record["month_version"] = versions["sealed"] = record["month_version"][:-4] + "0009"
        return record

    messages = _edit_records(tap_output(tmp_path, ACME_OCT), reseal)
    result = run_target(tmp_path, target_config(pelanor), messages)
    assert result.returncode == 1
    assert report(result)[1][4:] == [
        f"withheld: the seal is for month_version {versions['sealed']}, but the rows arrived "
        f"as {versions['sent']}; run the pipeline again"
    ]
    assert pelanor.uploads() == []
