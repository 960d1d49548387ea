"""Logs a person can follow: files as they are read, months as they are sealed, written and
uploaded, and user errors at error level when Meltano runs the plugins."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from datetime import date, datetime, timezone

import pytest

from openai_costs.export import run_to_end, scan_rows
from openai_costs.month_status import STATUSES
from openai_costs.printable import printable
from tap_openai_costs.progress import ReadProgress
from target_pelanor.progress import WriteProgress
from tests.exports import ORG, SAMPLES, TODAY, cost, days, export, month_rows, write
from tests.meltano_cli import DEV_TOKEN, MELTANO, copy_project, hermetic_env, require_meltano
from tests.pelanor_sandbox import running_sandbox
from tests.singer import run_tap, run_target, tap_output, target_config

SEPTEMBER = SAMPLES / "acme" / "cost_2025-09-01_2025-09-30.csv"
OCT1 = date(2025, 10, 1)
INCOMPLETE = (
    "is incomplete: 11 day(s) missing (2025-10-21 to 2025-10-31); export the whole month, or "
    "set allow_partial_month to upload it anyway"
)
REFUSED = (
    "Pelanor rejected the upload of 2025-09 (HTTP 401): invalid bearer token; "
    "check api_token (or api_token_id and api_token_secret)"
)
#: The logging configuration Meltano hands a plugin with structured logging (its
#: SINGER_SDK_LOG_CONFIG file): JSON lines on stderr, each with its level.
MELTANO_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"singer_formatter": {"()": "singer_sdk.logging.StructuredFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "singer_formatter",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["console"], "level": "INFO"},
}


def messages(stderr: str) -> list[str]:
    """The messages of the SDK's plain log lines (``time | LEVEL | logger | message``)."""
    return [line.split(" | ", 3)[3] for line in stderr.splitlines() if line.count(" | ") >= 3]


def test_a_long_file_shows_progress_about_every_ten_seconds(tmp_path, caplog) -> None:
    """20,000 rows (50 days of 400), read while the clock moves 3 s at each look."""
    rows = [
        cost(day, item=f"item {n}") for day in days(OCT1, date(2025, 11, 19)) for n in range(400)
    ]
    path = write(tmp_path / "big.csv", export(rows))
    ticks = iter(range(0, 1000, 3))
    watch = ReadProgress(logging.getLogger("test-progress"), clock=lambda: next(ticks))
    with caplog.at_level(logging.INFO, logger="test-progress"):
        file = watch.reading(path)
        scan = run_to_end(scan_rows(path, ORG, TODAY, file.rows))
        file.done(sum(day.rows for day in scan.days))
    # The clock is read at the start and every 4,096 rows (3 s later each time): a line
    # once 10 s have passed since the last, then the end.
    assert [r.getMessage() for r in caplog.records] == [
        f"reading {path}",
        f"reading {path}: 81% (2.2 MB of 2.7 MB), 16,384 rows so far in 12.0 s, 1,365 rows/s",
        f"read {path}: 20,000 rows in 15.0 s, 1,333 rows/s",
    ]
    # How far along, exactly: the header and the first 16,384 rows, of the whole file.
    content = path.read_bytes()
    header_and_rows = b"".join(content.splitlines(keepends=True)[: 1 + 16_384])
    assert fields({"extra": caplog.records[1].__dict__}, "rows", "bytes_read", "bytes") == {
        "rows": 16_384,
        "bytes_read": len(header_and_rows),
        "bytes": len(content),
    }


def test_the_tap_logs_each_file_and_each_sealed_month(tmp_path) -> None:
    result = run_tap(tmp_path, {"paths": [str(SEPTEMBER)], "organization_id": ORG})
    assert result.returncode == 0, result.stderr
    logged = messages(result.stderr)
    assert "Beginning sync of 'costs', incremental by month" in logged
    assert [m for m in logged if m.startswith("costs: ")] == [
        "costs: the quick route (no map, deselection or conformance changes a record)"
    ]
    assert not [m for m in logged if "full_table" in m]
    assert f"reading {SEPTEMBER}" in logged
    assert [m for m in logged if m.startswith(f"read {SEPTEMBER}: 409 rows in ")]
    assert "sealed org-acme 2025-09: 409 rows, 566.15973238589393446 USD, complete" in logged


#: A name that would print a forged log line and clear the terminal, shown as it is kept.
FORGING = "acme\n2026-01-01 00:00:00,000 | INFO | target-pelanor | uploaded 2025-09\x1b[2J"
FORGING_SHOWN = "acme\\n2026-01-01 00:00:00,000 | INFO | target-pelanor | uploaded 2025-09\\x1b[2J"
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| [A-Z]+ +\| ")


def test_names_in_the_tap_log_cannot_forge_lines_or_move_the_terminal(tmp_path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    export_file = write(folder / f"{FORGING}.csv", SEPTEMBER.read_bytes())
    result = run_tap(tmp_path, {"paths": [str(folder)], "organization_id": ORG})
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stderr
    assert [line for line in result.stderr.splitlines() if not LOG_LINE.match(line)] == []
    assert f"reading {folder}/{FORGING_SHOWN}.csv" in messages(result.stderr)
    assert export_file.exists()


def test_names_in_the_tap_errors_cannot_forge_lines_or_move_the_terminal(tmp_path) -> None:
    write(tmp_path / f"{FORGING}.csv", b"")
    result = run_tap(tmp_path, {"paths": [str(tmp_path)], "organization_id": ORG})
    assert result.returncode == 1
    assert "\x1b" not in result.stderr
    assert result.errors == [
        f"tap-openai-costs: error: {tmp_path}/{FORGING_SHOWN}.csv: is empty; export the Cost "
        "data again from the OpenAI dashboard",
    ]
    assert [line for line in result.stderr.splitlines() if not LOG_LINE.match(line)] == [
        result.errors[0]
    ]


def test_control_characters_are_shown_as_python_writes_them_and_the_rest_unchanged() -> None:
    assert printable("a\nb\r\tc\x1b[2J\x7f\x85\u2028\u202e") == (
        "a\\nb\\r\\tc\\x1b[2J\\x7f\\x85\\u2028\\u202e"
    )
    assert printable("Acmé App, gpt-4o \\ input ✓") == "Acmé App, gpt-4o \\ input ✓"


def test_the_target_logs_each_month_written_and_uploaded(tmp_path, pelanor) -> None:
    result = run_target(tmp_path, target_config(pelanor), tap_output(tmp_path, SEPTEMBER))
    assert result.returncode == 0, result.stderr
    logged = messages(result.stderr)
    written = "org-acme 2025-09: written and checked, 409 rows, 566.15973238589393446 USD; sending"
    assert written in logged
    assert "org-acme 2025-09: uploaded" in logged
    assert logged.index(written) < logged.index("org-acme 2025-09: uploaded")
    assert [m for m in logged if m.startswith("costs: ")] == [
        "costs: the quick route (no map or setting changes a record)"
    ]


def test_user_errors_are_logged_at_error_level_when_meltano_runs_the_plugin(tmp_path) -> None:
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(MELTANO_LOG_CONFIG))
    bad = write(tmp_path / "eur.csv", export([cost(OCT1, amount_currency="EUR")]))
    result = run_tap(
        tmp_path,
        {"paths": [str(bad)], "organization_id": ORG},
        env={"SINGER_SDK_LOG_CONFIG": str(config)},
    )
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    errors = [(line["level"], line["message"]) for line in lines if line["level"] == "error"]
    assert errors == [
        (
            "error",
            f"tap-openai-costs: error: {bad}: row 2: amount_currency is 'EUR', but Pelanor "
            "accepts USD only",
        )
    ]


def structured(stderr: str) -> list[dict]:
    """The JSON log lines of a plugin run with MELTANO_LOG_CONFIG, as Meltano parses them."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def fields(event: dict, *names: str) -> dict:
    return {name: event["extra"].get(name) for name in names}


def test_structured_logs_carry_the_file_month_and_upload_fields(tmp_path, pelanor) -> None:
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(MELTANO_LOG_CONFIG))
    env = {"SINGER_SDK_LOG_CONFIG": str(config)}
    tap = run_tap(tmp_path, {"paths": [str(SEPTEMBER)], "organization_id": ORG}, env=env)
    assert tap.returncode == 0, tap.stderr
    events = structured(tap.stderr)
    read = next(e for e in events if e["message"].startswith("read "))
    assert fields(read, "file", "rows", "action") == {
        "file": str(SEPTEMBER),
        "rows": 409,
        "action": "read",
    }
    sealed = next(e for e in events if e["message"].startswith("sealed "))
    assert fields(
        sealed, "organization", "month", "rows", "total_usd", "status", "action", "files"
    ) == {
        "organization": ORG,
        "month": "2025-09",
        "rows": 409,
        "total_usd": "566.15973238589393446",
        "status": "sealed",
        "action": "sealed",
        "files": [str(SEPTEMBER)],
    }

    target = run_target(tmp_path, target_config(pelanor), tap.stdout, env=env)
    assert target.returncode == 0, target.stderr
    events = structured(target.stderr)
    month = ("organization", "month", "rows", "total_usd", "status", "reason", "action")
    checked = next(e for e in events if "written and checked" in e["message"])
    assert fields(checked, *month) == {
        "organization": ORG,
        "month": "2025-09",
        "rows": 409,
        "total_usd": "566.15973238589393446",
        "status": "checked",
        "reason": None,
        "action": "checked",
    }
    (upload,) = pelanor.uploads()
    uploaded = next(e for e in events if e["message"] == "org-acme 2025-09: uploaded")
    assert fields(uploaded, *month, "response_id") == {
        "organization": ORG,
        "month": "2025-09",
        "rows": 409,
        "total_usd": "566.15973238589393446",
        "status": "uploaded",
        "reason": None,
        "action": "uploaded",
        "response_id": upload["id"],
    }
    # The results table is log lines too, its months as fields; nothing printed beside.
    table = next(e for e in events if e["message"].startswith("organization  month"))
    assert table["extra"]["results"] == [fields(uploaded, *month, "response_id")]
    assert [line for line in target.stderr.splitlines() if not line.startswith("{")] == []


def test_a_run_with_nothing_to_upload_says_so_in_one_line(tmp_path, pelanor) -> None:
    config = {"paths": [str(SEPTEMBER)], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    assert first.returncode == 0, first.stderr
    unchanged = run_tap(tmp_path, config, first.last_state)
    assert unchanged.records("costs") == []
    result = run_target(tmp_path, target_config(pelanor), unchanged.stdout)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines.count("no month arrived from the tap: nothing to upload") == 1
    assert not [line for line in lines if line.startswith("organization  month")]
    assert pelanor.uploads() == []


def test_a_dry_run_never_says_sending(tmp_path, pelanor) -> None:
    config = target_config(pelanor, dry_run=True, api_token=None)
    result = run_target(tmp_path, config, tap_output(tmp_path, SEPTEMBER))
    assert result.returncode == 0, result.stderr
    logged = messages(result.stderr)
    assert (
        "org-acme 2025-09: written and checked, 409 rows, 566.15973238589393446 USD; "
        "dry run, not sending"
    ) in logged
    assert not [
        line for line in result.stderr.splitlines() if "sending" in line.replace("not sending", "")
    ]
    assert pelanor.requests == []


def test_the_target_logs_progress_on_a_long_month_about_every_ten_seconds(caplog) -> None:
    ticks = iter(range(0, 1000, 3))  # each look at the clock: 3 s later
    progress = WriteProgress(logging.getLogger("test-write"), clock=lambda: next(ticks))
    with caplog.at_level(logging.INFO, logger="test-write"):
        progress.start(ORG, "2025-10")
        for _ in range(20_000):
            progress.row()
        progress.start(ORG, "2025-11")  # the next month counts from zero
        for _ in range(4096):
            progress.row()
    # The clock is read at the start and every 4,096 rows: a line once 10 s have passed.
    assert [r.getMessage() for r in caplog.records] == [
        "org-acme 2025-10: writing, 16,384 rows so far in 12.0 s, 1,365 rows/s",
    ]
    assert fields({"extra": caplog.records[0].__dict__}, "organization", "month", "rows") == {
        "organization": ORG,
        "month": "2025-10",
        "rows": 16_384,
    }


def test_http_request_lines_and_the_sdk_settings_line_are_debug_level(tmp_path, pelanor) -> None:
    messages_in = tap_output(tmp_path, SEPTEMBER)
    quiet = run_target(tmp_path, target_config(pelanor), messages_in)
    assert quiet.returncode == 0, quiet.stderr
    assert "HTTP Request" not in quiet.stderr
    assert "Skipping parse of env var settings" not in quiet.stderr

    debug = run_target(
        tmp_path, target_config(pelanor), messages_in, env={"TARGET_PELANOR_LOGLEVEL": "DEBUG"}
    )
    assert debug.returncode == 0, debug.stderr
    levels = {
        line.split(" | ")[1].strip()
        for line in debug.stderr.splitlines()
        if "HTTP Request: POST" in line or "Skipping parse of env var settings" in line
    }
    assert levels == {"DEBUG"}


def test_the_month_streams_emit_no_sync_duration_metric(tmp_path) -> None:
    result = run_tap(tmp_path, {"paths": [str(SEPTEMBER)], "organization_id": ORG})
    assert result.returncode == 0, result.stderr
    timers = [
        json.loads(line.split("METRIC: ", 1)[1])
        for line in result.stderr.splitlines()
        if "METRIC: " in line and '"sync_duration"' in line
    ]
    assert [timer["tags"]["stream"] for timer in timers] == ["costs"]
    counts = [
        json.loads(line.split("METRIC: ", 1)[1])["tags"]["stream"]
        for line in result.stderr.splitlines()
        if "METRIC: " in line and '"record_count"' in line
    ]
    assert sorted(set(counts)) == ["cost_month_layouts", "cost_months", "costs"]


def month_events(stderr: str) -> list[tuple[str, str, str | None]]:
    """(month, status, reason) of each event of a month, in order: each carries a status."""
    events = [e["extra"] for e in structured(stderr) if "month" in e["extra"]]
    assert all(event["status"] in STATUSES for event in events), events
    return [(event["month"], event["status"], event.get("reason")) for event in events]


def test_each_month_event_carries_a_status_from_the_set_and_a_reason(tmp_path, pelanor) -> None:
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(MELTANO_LOG_CONFIG))
    env = {"SINGER_SDK_LOG_CONFIG": str(config)}
    # October has its first twenty days only: sealed as incomplete, withheld by the target.
    october = write(
        tmp_path / "oct.csv", export([cost(day) for day in days(OCT1, date(2025, 10, 20))])
    )
    tap = run_tap(
        tmp_path, {"paths": [str(SEPTEMBER), str(october)], "organization_id": ORG}, env=env
    )
    assert tap.returncode == 0, tap.stderr
    assert month_events(tap.stderr) == [("2025-09", "sealed", None), ("2025-10", "sealed", None)]
    messages_in = tap.stdout
    incomplete = ("2025-10", "withheld", INCOMPLETE)

    upload = run_target(tmp_path, target_config(pelanor), messages_in, env=env)
    assert upload.returncode == 1
    assert month_events(upload.stderr) == [
        ("2025-09", "checked", None),
        ("2025-09", "sending", None),
        ("2025-09", "uploaded", None),
        incomplete,
    ]

    dry = run_target(tmp_path, target_config(pelanor, dry_run=True), messages_in, env=env)
    assert dry.returncode == 1
    assert month_events(dry.stderr) == [
        ("2025-09", "checked", None),
        ("2025-09", "written", None),
        incomplete,
    ]

    refused = run_target(
        tmp_path, target_config(pelanor, api_token="tok:wrong"), messages_in, env=env
    )
    assert refused.returncode == 1
    assert month_events(refused.stderr) == [
        ("2025-09", "checked", None),
        ("2025-09", "sending", None),
        ("2025-09", "failed", REFUSED),
        incomplete,
    ]


def test_every_line_of_the_results_table_is_a_log_line_of_its_own(tmp_path, pelanor) -> None:
    """So Meltano prefixes each (the plugin's name), and grepping the organization finds
    every month's line; the headings' line lists the months as fields."""
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(MELTANO_LOG_CONFIG))
    messages_in = tap_output(
        tmp_path, SEPTEMBER, SAMPLES / "acme" / "cost_2025-10-01_2025-10-31.csv"
    )
    result = run_target(
        tmp_path, target_config(pelanor), messages_in, env={"SINGER_SDK_LOG_CONFIG": str(config)}
    )
    assert result.returncode == 0, result.stderr
    events = structured(result.stderr)
    start = next(i for i, e in enumerate(events) if e["message"].startswith("organization  month"))
    table = events[start : start + 3]
    ids = [upload["id"] for upload in pelanor.uploads()]
    assert [e["message"].split() for e in table] == [
        ["organization", "month", "rows", "total", "USD", "action", "Pelanor", "response", "id"],
        ["org-acme", "2025-09", "409", "566.15973238589393446", "uploaded", ids[0]],
        ["org-acme", "2025-10", "382", "554.98017457515155235", "uploaded", ids[1]],
    ]
    assert [e["extra"].get("organization") for e in table] == [None, ORG, ORG]
    assert [len(e["extra"].get("results", [])) for e in table] == [2, 0, 0]
    assert not [e for e in events if "\n" in e["message"]]


def test_the_sdk_lines_about_wiring_streams_are_debug_level(tmp_path) -> None:
    config = {"paths": [str(SEPTEMBER)], "organization_id": ORG}
    quiet = run_tap(tmp_path, config)
    assert quiet.returncode == 0, quiet.stderr
    assert "as child stream" not in quiet.stderr
    debug = run_tap(tmp_path, config, env={"TAP_OPENAI_COSTS_LOGLEVEL": "DEBUG"})
    assert debug.returncode == 0, debug.stderr
    assert [
        (line.split(" | ")[1].strip(), line.split(" | ", 3)[3])
        for line in debug.stderr.splitlines()
        if "as child stream" in line
    ] == [
        ("DEBUG", "Added 'cost_month_layouts' as child stream to 'costs'"),
        ("DEBUG", "Added 'cost_months' as child stream to 'costs'"),
        ("DEBUG", "Added 'focus_costs' as child stream to 'costs'"),
    ]


def test_a_month_the_tap_withholds_is_a_month_event_with_status_withheld(tmp_path) -> None:
    """October's export was saved before its last day ended: the tap's error line about it
    carries the month's fields, so an alert on status sees the tap's months too."""
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(MELTANO_LOG_CONFIG))
    early = datetime(2025, 10, 31, 18, 2, 11, tzinfo=timezone.utc).timestamp()
    october = write(tmp_path / "in" / "oct.csv", export(month_rows("2025-10")), mtime=early)
    result = run_tap(
        tmp_path,
        {"paths": [str(SEPTEMBER), str(october)], "organization_id": ORG},
        env={"SINGER_SDK_LOG_CONFIG": str(config)},
    )
    assert result.returncode == 1
    line = (
        f"{october}: was saved at 2025-10-31 18:02:11 UTC, before 2025-10-31 ended, so it "
        "cannot hold that day whole; 2025-10 is not sealed: export it again (after 00:00 UTC)"
    )
    assert month_events(result.stderr) == [
        ("2025-09", "sealed", None),
        ("2025-10", "withheld", line),
    ]
    (error,) = [e for e in structured(result.stderr) if e["level"] == "error"]
    assert error["message"] == f"tap-openai-costs: error: {line}"
    assert error["extra"]["organization"] == ORG


@pytest.mark.meltano
def test_under_meltano_every_line_of_the_results_table_carries_the_plugins_name(
    tmp_path,
) -> None:
    """Meltano's console log: each line of the table has the loader's prefix, so grepping
    the plugin finds them all, and grepping the organization every month's."""
    require_meltano()
    project = tmp_path / "project"
    project.mkdir()
    copy_project(project)
    integrations = {"int-acme": "org-acme"}
    with running_sandbox(tmp_path / "p", tokens=[DEV_TOKEN], integrations=integrations) as sandbox:
        done = subprocess.run(
            [str(MELTANO), "--environment=dev", "run", "openai-costs-acme"],
            cwd=project,
            env=hermetic_env() | {"TARGET_PELANOR_API_URL": sandbox.url},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        ids = [upload["id"] for upload in sandbox.uploads()]
    assert done.returncode == 0, done.stderr[-5000:]
    lines = done.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if "organization  month" in line)
    prefix = "] target-pelanor "  # the loader's name: the first organization's is the parent
    assert [line.split(prefix, 1)[1].split() for line in lines[start : start + 3]] == [
        ["organization", "month", "rows", "total", "USD", "action", "Pelanor", "response", "id"],
        ["org-acme", "2025-09", "409", "566.15973238589393446", "uploaded", ids[0]],
        ["org-acme", "2025-10", "382", "554.98017457515155235", "uploaded", ids[1]],
    ]
