"""The target's guards: never replace a good month with a worse one, and fail cleanly
(deadlines, signals, settings, disks, leftovers, concurrent uploads, secrets).

Remote things are local servers: the Pelanor sandbox, and httpx mock transports for answers
the sandbox never gives.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import signal
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from openai_costs.export import format_decimal
from openai_costs.work_folder import open_work_folder
from target_pelanor import input_reader
from target_pelanor.client import PelanorClient, PelanorError, PelanorRejected
from target_pelanor.input_reader import CheckedMessageReader
from target_pelanor.settings import DEFAULT_MAX_RETRY_SECONDS, DEFAULT_REQUEST_TIMEOUT
from target_pelanor.stopping import RunStopped
from target_pelanor.upload_lock import UploadLocks
from tests.exports import ORG, SAMPLES, export, month_rows, write
from tests.fake_clock import elapsed_blanked
from tests.pelanor_sandbox import TOKEN, running_sandbox
from tests.singer import (
    BIN,
    Run,
    report,
    run_tap,
    run_target,
    stored,
    tap_output,
    target_config,
    wait_for_line,
)
from tests.upload_guard import (
    OLDER_COPIES,
    SMALLER,
    config_errors,
    machine_record,
    october_export,
    remembered_in_state,
    remembered_on_this_machine,
    tap_run,
    uploaded_record,
)

ACME_SEPT = SAMPLES / "acme" / "cost_2025-09-01_2025-09-30.csv"
ACME_OCT = SAMPLES / "acme" / "cost_2025-10-01_2025-10-31.csv"
SEPT_TOTAL = "566.15973238589393446"
OCT_TOTAL = "554.98017457515155235"


def amounts_total(path: Path, rows: int | None = None) -> Decimal:
    with path.open(newline="") as handle:
        lines = list(csv.DictReader(handle))[:rows]
    return sum((Decimal(row["amount_value"] or 0) for row in lines), Decimal(0))


def start_target(tmp: Path, config: dict[str, Any], messages: str, **popen: Any):
    """The target as a process fed from a file; its output goes to files (no pipe to fill
    while a test waits) unless ``stderr`` says otherwise."""
    (tmp / "in.singer").write_text(messages)
    (tmp / "target.json").write_text(json.dumps(config))
    with (
        (tmp / "in.singer").open() as stdin,
        (tmp / "out.log").open("w") as stdout,
        (tmp / "err.log").open("w") as stderr,
    ):
        return subprocess.Popen(
            [str(BIN / "target-pelanor"), "--config", str(tmp / "target.json")],
            stdin=stdin,
            stdout=stdout,
            stderr=popen.pop("stderr", stderr),
            text=True,
            **popen,
        )


def finished(tmp: Path, process: subprocess.Popen) -> Run:
    returncode = process.wait(timeout=120)
    return Run(returncode, (tmp / "out.log").read_text(), (tmp / "err.log").read_text())


def work_entries(work: Path) -> list[str]:
    """What the target left in its work_dir, the upload locks aside."""
    return sorted(p.name for p in work.iterdir() if p.name != "locks")


# -- The shrink guard ---------------------------------------------------------------------


def test_shrink_guard_refuses_a_download_cut_at_a_line_ending(tmp_path, pelanor) -> None:
    first_tap = tap_run(tmp_path, ACME_SEPT)
    first = run_target(tmp_path, target_config(pelanor), first_tap.stdout)
    assert first.returncode == 0, first.stderr
    (seal,) = first_tap.records("cost_months")
    record = uploaded_record(first.last_state)["org-acme/2025-09"]
    assert record == {
        "rows": 409,
        "days": 30,
        "total_usd": SEPT_TOTAL,
        "rows_digest": seal["rows_digest"],
        "endpoint": pelanor.url,
        "destination": f"localhost:{pelanor.url.rsplit(':', 1)[1]}/int-acme",
        "uploaded_at": record["uploaded_at"],
    }

    # 402 of 409 rows, cut right after a line ending: every day is still there.
    lines = ACME_SEPT.read_bytes().splitlines(keepends=True)
    cut = write(tmp_path / "cut" / ACME_SEPT.name, b"".join(lines[:403]))
    cut_total = format_decimal(amounts_total(ACME_SEPT, 402))
    tap = tap_run(tmp_path, cut, state=first.last_state)
    # The tap hands the target's record on, first thing and in its last state.
    states = [m["value"] for m in tap.messages if m["type"] == "STATE"]
    assert uploaded_record(states[0]) == uploaded_record(first.last_state)
    assert uploaded_record(states[-1]) == uploaded_record(first.last_state)

    refused = run_target(tmp_path, target_config(pelanor), tap.stdout)
    assert refused.returncode == 1
    assert report(refused)[1] == [
        "org-acme",
        "2025-09",
        "402",
        cut_total,
        "withheld: is smaller than the copy "
        + remembered_in_state(pelanor, first.last_state, "org-acme/2025-09")
        + f": 402 rows, 30 days, {cut_total} "
        f"USD against 409 rows, 30 days, {SEPT_TOTAL} USD (7 fewer row(s), "
        "8.64708212465447084 USD less, more than the 2.8307986619294696723 USD tolerance); "
        + SMALLER.format(month="2025-09"),
    ]
    assert refused.last_state is None
    assert stored(pelanor) == {"int-acme/2025-09": ACME_SEPT.read_bytes()}

    allowed = run_target(
        tmp_path, target_config(pelanor, allow_shrinking_months=["2025-09"]), tap.stdout
    )
    assert allowed.returncode == 0, allowed.stderr
    assert stored(pelanor) == {"int-acme/2025-09": cut.read_bytes()}
    assert uploaded_record(allowed.last_state)["org-acme/2025-09"]["rows"] == 402


@pytest.mark.parametrize(
    ("older", "settings", "action"), OLDER_COPIES.values(), ids=OLDER_COPIES.keys()
)
def test_shrink_guard_refuses_an_older_copy(tmp_path, pelanor, older, settings, action) -> None:
    first = run_target(
        tmp_path, target_config(pelanor), tap_run(tmp_path, october_export(tmp_path, "new")).stdout
    )
    assert first.returncode == 0, first.stderr
    copy = october_export(tmp_path, "old", **older)
    tap = tap_run(tmp_path, copy, state=first.last_state)
    second = run_target(tmp_path, target_config(pelanor, **settings), tap.stdout)
    if action is None:
        assert second.returncode == 0, second.stderr
        assert stored(pelanor) == {"int-acme/2025-10": copy.read_bytes()}
    else:
        assert second.returncode == 1
        origin = remembered_in_state(pelanor, first.last_state, "org-acme/2025-10")
        assert report(second)[1][4] == action.format(origin=origin)
        assert len(pelanor.uploads()) == 1


def test_the_tap_carries_the_targets_record_through_a_run_with_nothing_new(
    tmp_path, pelanor
) -> None:
    first = run_target(tmp_path, target_config(pelanor), tap_output(tmp_path, ACME_OCT))
    again = tap_run(tmp_path, ACME_OCT, state=first.last_state)
    assert again.records("cost_months") == []
    assert [m["value"] for m in again.messages if m["type"] == "STATE"][-1] == first.last_state


# -- Deadlines ------------------------------------------------------------------------------


def test_request_timeout_bounds_a_trickled_answer_and_the_budget_cuts_the_last(
    tmp_path,
) -> None:
    """200 at once, then a byte every 2 s: each attempt ends at request_timeout (1 s), the
    second at the end of max_retry_seconds (3 s), while the answer is still arriving."""
    faults = [{"kind": "trickle", "seconds": 2, "times": 5}]
    with running_sandbox(tmp_path / "p", faults=faults) as sandbox:
        client = PelanorClient(
            base_url=sandbox.url,
            integration_id="int-acme",
            api_token=TOKEN,
            request_timeout=1,
            max_retry_seconds=3,
            random=lambda: 1.0,
        )
        with client, pytest.raises(PelanorError) as failed:
            client.upload(month="2025-10", filename="f.csv", content=ACME_OCT)
        assert elapsed_blanked(str(failed.value)) == (
            "Pelanor upload of 2025-10 failed after 2 attempts over Ns: last error timeout: "
            "the retry budget of 3s ran out during the request"
        )
        assert [r.fault for r in sandbox.requests] == ["trickle", "trickle"]


def test_a_trickling_pelanor_does_not_keep_the_target_alive(tmp_path) -> None:
    faults = [{"kind": "trickle", "seconds": 2, "month": "2025-10"}]
    with running_sandbox(tmp_path / "p", faults=faults) as sandbox:
        settings = target_config(sandbox, request_timeout=1, max_retry_seconds=1)
        result = run_target(tmp_path, settings, tap_output(tmp_path, SAMPLES / "acme"))
    assert result.returncode == 1
    assert [elapsed_blanked(row[4]) for row in report(result)[1:]] == [
        "uploaded",
        "failed: Pelanor upload of 2025-10 failed after 1 attempt over Ns: last error "
        "timeout: no complete response within 1s",
    ]


# -- Signals --------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_an_upload_stops_with_the_table_and_only_accepted_state(
    tmp_path, signum
) -> None:
    faults = [{"kind": "slow", "seconds": 120, "month": "2025-10"}]
    work = tmp_path / "work"
    with running_sandbox(tmp_path / "p", faults=faults) as sandbox:
        target = start_target(
            tmp_path,
            target_config(sandbox, work_dir=str(work)),
            tap_output(tmp_path, SAMPLES / "acme"),
        )
        assert sandbox.wait_for_fault("slow")  # October's upload is in Pelanor's hands
        target.send_signal(signum)
        result = finished(tmp_path, target)
        assert [r.month for r in sandbox.requests if r.status == 200] == ["2025-09"]
    name = signal.Signals(signum).name
    assert result.returncode == 1
    assert [row[3:5] for row in report(result)[1:]] == [
        [SEPT_TOTAL, "uploaded"],
        [
            OCT_TOTAL,
            f"failed: interrupted ({name}) during its upload: Pelanor may or may not have "
            "it; the next run sends it again",
        ],
    ]
    assert result.errors == [
        f"target-pelanor: error: stopped by {name}: 1 month(s) not uploaded (see the table); "
        "the state saved covers only the months Pelanor accepted, so the next run retries "
        "the others"
    ]
    assert result.last_state["bookmarks"]["costs"]["months"].keys() == {"org-acme/2025-09"}
    assert uploaded_record(result.last_state).keys() == {"org-acme/2025-09"}
    assert "Traceback" not in result.stderr
    assert work_entries(work) == []


# -- Settings checked at start --------------------------------------------------------------

BAD_SETTINGS = {
    "request_timeout 0": (
        {"request_timeout": 0},
        "request_timeout must be a positive number of seconds (got 0)",
    ),
    "request_timeout negative": (
        {"request_timeout": -2},
        "request_timeout must be a positive number of seconds (got -2)",
    ),
    "max_retry_seconds negative": (
        {"max_retry_seconds": -1},
        "max_retry_seconds must be 0 or a positive number of seconds (got -1)",
    ),
    "upload_path without a leading slash": (
        {"upload_path": "v1/integrations/openai/{integration_id}/upload"},
        "upload_path must start with '/' (got 'v1/integrations/openai/{integration_id}/upload'); "
        "the default is /v1/integrations/openai/{integration_id}/upload",
    ),
    "upload_path with an unknown placeholder": (
        {"upload_path": "/v1/integrations/openai/{integration}/upload"},
        "upload_path has unknown placeholder(s) {integration}; the placeholders are {month}, "
        "{first_day}, {last_day}, {organization_id}, {integration_id}, {file_name}",
    ),
    "upload_path leading back up": (
        {"upload_path": "/v1/../admin/{integration_id}"},
        "upload_path has a '.' or '..' segment, which would send the upload elsewhere on the "
        "server (got '/v1/../admin/{integration_id}'); write the path without it",
    ),
    "upload_path with '#'": (
        {"upload_path": "/v1/integrations/openai/{integration_id}#/upload"},
        "upload_path has '#', which ends a URL's path, so what follows it would never be sent "
        "(got '/v1/integrations/openai/{integration_id}#/upload'); remove it, or write %23 "
        "for a '#' in the path",
    ),
    "integration_id '..'": (
        {"integration_id": ".."},
        "integration_id '..' is not an ID: it names a folder, and would move the upload path; "
        "copy the ID from the integration's page in Pelanor",
    ),
    "integration_id with a line break": (
        {"integration_id": "int-acme\r\n"},
        "integration_id has a control character, such as a line break (got 'int-acme\\r\\n'); "
        "copy the ID again from the integration's page in Pelanor, without it",
    ),
    "integration_id of 5,000 characters": (
        {"integration_id": "int-" + "a" * 4996},
        "integration_id is 5,000 characters long ('int-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'), "
        "more than an ID has (at most 200 once URL-encoded); copy the ID from the "
        "integration's page in Pelanor",
    ),
    "a token with a space": (
        {"api_token": "tok_8f3Kx2 s3cr3t"},
        "api_token contains whitespace or a line break; set it without spaces or newlines "
        "(copy it again, or strip the file or variable it comes from)",
    ),
    "a token with a line break": (
        {"api_token": TOKEN + "\n"},
        "api_token contains whitespace or a line break; set it without spaces or newlines "
        "(copy it again, or strip the file or variable it comes from)",
    ),
    "a token variable that is not set": (
        {"api_token": None, "api_token_env": "PELANOR_TOKEN_NOT_SET_ANYWHERE"},
        "api_token_env names PELANOR_TOKEN_NOT_SET_ANYWHERE, which is not set in the environment",
    ),
}


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_settings_are_checked_before_any_input_is_read(
    tmp_path, pelanor, settings, message
) -> None:
    config = {k: v for k, v in (target_config(pelanor) | settings).items() if v is not None}
    # Input the target would refuse on its first line, had it read it.
    result = run_target(tmp_path, config, "not a Singer message\n")
    assert result.returncode == 1
    assert config_errors(result) == [message]
    assert "input line" not in result.stderr
    assert "tok_8f3Kx2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_dry_run_needs_no_token_even_with_api_token_env_unset(tmp_path) -> None:
    out = tmp_path / "out"
    config = {
        "organization_id": ORG,
        "dry_run": True,
        "api_token_env": "PELANOR_TOKEN_NOT_SET_ANYWHERE",
        "output_dir": str(out),
    }
    result = run_target(tmp_path, config, tap_output(tmp_path, ACME_OCT))
    assert result.returncode == 0, result.stderr
    assert [row[4] for row in report(result)[1:]] == [f"written to {out}"]
    assert (out / ACME_OCT.name).read_bytes() == ACME_OCT.read_bytes()


def test_the_token_can_come_from_an_environment_variable_only(tmp_path, pelanor) -> None:
    config = target_config(pelanor, api_token_env="PELANOR_TOKEN_FOR_THIS_TEST")
    del config["api_token"]
    messages = tap_output(tmp_path, ACME_OCT)
    result = run_target(tmp_path, config, messages, env={"PELANOR_TOKEN_FOR_THIS_TEST": TOKEN})
    assert result.returncode == 0, result.stderr
    assert stored(pelanor) == {"int-acme/2025-10": ACME_OCT.read_bytes()}


# -- Disk and files -------------------------------------------------------------------------

NOT_MESSAGES = {
    "text": ("user@example.com,12.5,usd", "is not JSON"),
    "a JSON array": ('["user@example.com"]', "is not a Singer message (a JSON object with a type)"),
    "an empty line": ("", "is not JSON"),
    "a record without its stream": (
        '{"type":"RECORD","record":{"user_email":"user@example.com"}}',
        "is a RECORD message without stream",
    ),
    "a record without its record": (
        '{"type":"RECORD","stream":"costs","user":"user@example.com"}',
        "is a RECORD message without record",
    ),
    "a state without its value": (
        '{"type":"STATE","user":"user@example.com"}',
        "is a STATE message without value",
    ),
    "a batch without its files": (
        '{"type":"BATCH","stream":"costs","user":"user@example.com"}',
        "is a BATCH message without encoding, manifest",
    ),
    "a schema without properties": (
        '{"type":"SCHEMA","stream":"costs","schema":{"user":"user@example.com"}}',
        "is a SCHEMA message whose schema has no properties",
    ),
    "an unknown type": (
        '{"type":"user@example.com","stream":"costs"}',
        "has a message type that is not one of RECORD, SCHEMA, STATE, ACTIVATE_VERSION, BATCH",
    ),
}


@pytest.mark.parametrize(("line", "what"), NOT_MESSAGES.values(), ids=NOT_MESSAGES.keys())
def test_a_line_that_is_not_a_message_is_one_line_naming_its_number(
    tmp_path, pelanor, line, what
) -> None:
    lines = tap_output(tmp_path, ACME_OCT).splitlines()
    lines.insert(5, line)
    result = run_target(tmp_path, target_config(pelanor), "\n".join(lines) + "\n")
    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: input line 6 {what}; target-pelanor reads the messages of "
        "tap-openai-costs: check what feeds its input"
    ]
    assert "user@example.com" not in result.stderr
    assert "Traceback" not in result.stderr
    assert pelanor.uploads() == []


def test_the_sdks_own_key_checks_name_the_line_number_only() -> None:
    """The SDK checks keys through its reader too (a SCHEMA's properties): one line."""
    reader = CheckedMessageReader()
    reader.deserialize_json('{"type":"STATE","value":{}}')
    with pytest.raises(RunStopped) as stopped:
        reader.assert_line_requires({"user": "user@example.com"}, {"stream", "schema"})
    assert str(stopped.value) == (
        "input line 1 is a Singer message without schema, stream; target-pelanor reads the "
        "messages of tap-openai-costs: check what feeds its input"
    )


def test_an_input_line_without_end_is_refused_at_the_bound(monkeypatch) -> None:
    """Read up to the bound, never whole (here 1,000 characters for 128 Mi)."""
    monkeypatch.setattr(input_reader, "MAX_LINE_CHARACTERS", 1000)
    reader = CheckedMessageReader()
    lines = io.StringIO('{"type":"STATE","value":{}}\n{"type":"STATE","value":"' + "x" * 5000)
    seen: list[Any] = []
    with pytest.raises(RunStopped) as stopped:
        reader.process_lines(lines, {"STATE": seen.append})
    assert str(stopped.value) == (
        "input line 2 is longer than 1,000 characters; target-pelanor reads the messages of "
        "tap-openai-costs: check what feeds its input"
    )
    assert seen == [{"type": "STATE", "value": {}}]
    assert lines.tell() == len('{"type":"STATE","value":{}}\n') + 1001


def test_a_work_dir_that_is_a_file_is_one_line_at_start(tmp_path, pelanor) -> None:
    in_the_way = write(tmp_path / "work", b"")
    result = run_target(tmp_path, target_config(pelanor, work_dir=str(in_the_way)), "")
    assert result.returncode == 1
    assert config_errors(result) == [
        f"work_dir {in_the_way} cannot be used for working files: a file is in the way (it must "
        "be a folder); set work_dir to a writable folder with free space"
    ]


def _small_files(limit: int):
    """In the child: files may not grow past ``limit`` bytes, as on a full disk (EFBIG
    instead of ENOSPC, but the same failed write)."""

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_files


def test_a_full_work_folder_is_one_line_and_leaves_no_file(tmp_path, pelanor) -> None:
    work = tmp_path / "work"
    (tmp_path / "target.json").write_text(json.dumps(target_config(pelanor, work_dir=str(work))))
    done = subprocess.run(
        [str(BIN / "target-pelanor"), "--config", str(tmp_path / "target.json")],
        input=tap_output(tmp_path, SAMPLES / "acme"),
        capture_output=True,  # pipes: only files are limited
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_small_files(20_000),
    )
    result = Run(done.returncode, done.stdout, done.stderr)
    folder = next(
        line.rsplit("Working files in ", 1)[1]
        for line in result.stderr.splitlines()
        if "Working files in " in line
    )
    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: cannot write the upload file of 2025-09 in {folder}: File too "
        "large; free space there, or set work_dir to a folder with room"
    ]
    assert [row[4] for row in report(result)[1:]] == [
        "withheld: not uploaded: the run stopped before the month was finished (see below)"
    ]
    assert "Traceback" not in result.stderr
    assert work_entries(work) == []
    assert pelanor.uploads() == []


def test_an_output_dir_that_cannot_take_the_file_leaves_no_partial_file(tmp_path, pelanor) -> None:
    out = tmp_path / "out"
    (out / ACME_OCT.name).mkdir(parents=True)  # in the way of the month's file
    config = target_config(pelanor, output_dir=str(out))
    result = run_target(tmp_path, config, tap_output(tmp_path, ACME_OCT))
    assert result.returncode == 1
    assert report(result)[1][4] == (
        f"failed: could not write {out / ACME_OCT.name}: Is a directory; nothing uploaded; "
        "free space in output_dir or fix its permissions"
    )
    assert [p.name for p in out.iterdir()] == [ACME_OCT.name]
    assert pelanor.uploads() == []


def test_an_output_dir_that_is_a_file_is_one_line_at_start(tmp_path, pelanor) -> None:
    in_the_way = write(tmp_path / "out", b"")
    result = run_target(tmp_path, target_config(pelanor, output_dir=str(in_the_way / "x")), "")
    assert result.returncode == 1
    assert config_errors(result) == [
        f"output_dir {in_the_way / 'x'} is not a writable folder: {in_the_way} is not a folder"
    ]


def test_output_dir_expands_the_home_folder_as_work_dir_does(tmp_path) -> None:
    home = tmp_path / "home"
    config = {"organization_id": ORG, "dry_run": True, "output_dir": "~/out"}
    result = run_target(tmp_path, config, tap_output(tmp_path, ACME_OCT), env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert [row[4] for row in report(result)[1:]] == [f"written to {home / 'out'}"]
    assert (home / "out" / ACME_OCT.name).read_bytes() == ACME_OCT.read_bytes()
    assert not (tmp_path / "~").exists()


def test_an_output_dir_under_home_that_is_a_file_is_one_line_at_start(tmp_path) -> None:
    home = tmp_path / "home"
    in_the_way = write(home / "out", b"")
    config = {"organization_id": ORG, "dry_run": True, "output_dir": "~/out/x"}
    result = run_target(tmp_path, config, "", env={"HOME": str(home)})
    assert result.returncode == 1
    assert config_errors(result) == [
        f"output_dir {in_the_way / 'x'} is not a writable folder: {in_the_way} is not a folder"
    ]


def _october_in_batch_files(tmp: Path) -> tuple[Run, str]:
    config = {
        "paths": [str(ACME_OCT)],
        "organization_id": ORG,
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": (tmp / "batches").as_uri()},
        },
    }
    tap = run_tap(tmp, config)
    (url,) = [m["manifest"][0] for m in tap.messages if m["type"] == "BATCH"]
    return tap, url


BATCH_FILES_READ = (
    "; it was left alone: target-pelanor reads and deletes only the batch files "
    "tap-openai-costs writes (named <prefix><stream>-<run id>-<n>.jsonl[.gz], a regular file "
    "of this user readable by its owner only, beside its run's lock "
    ".<prefix><stream>-<run id>.lock)"
)


def test_a_folder_in_place_of_a_batch_file_is_one_line(tmp_path, pelanor) -> None:
    tap, url = _october_in_batch_files(tmp_path)
    batch = Path(url.removeprefix("file://"))
    batch.unlink()
    batch.mkdir(mode=0o700)  # what the target finds where the file should be
    result = run_target(tmp_path, target_config(pelanor), tap.stdout)
    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: batch file {url} is a folder, not a regular file{BATCH_FILES_READ}"
    ]
    assert "Traceback" not in result.stderr
    assert batch.is_dir()
    assert pelanor.uploads() == []


def test_a_batch_message_naming_a_users_file_leaves_it_alone(tmp_path, pelanor) -> None:
    """A BATCH message is input: the file it names is read and deleted only if the tap
    wrote it."""
    tap, url = _october_in_batch_files(tmp_path)
    copy = write(tmp_path / "cost_2025-10-01_2025-10-31.csv", ACME_OCT.read_bytes())
    copy.chmod(0o600)
    messages = tap.stdout.replace(url, copy.as_uri())
    result = run_target(tmp_path, target_config(pelanor), messages)
    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: batch file {copy.as_uri()} is not named as tap-openai-costs "
        f"names a .jsonl batch file{BATCH_FILES_READ}"
    ]
    assert copy.read_bytes() == ACME_OCT.read_bytes()
    assert pelanor.uploads() == []


def test_a_fifo_in_place_of_a_batch_file_is_one_line_without_waiting(tmp_path, pelanor) -> None:
    tap, url = _october_in_batch_files(tmp_path)
    batch = Path(url.removeprefix("file://"))
    batch.unlink()
    os.mkfifo(batch, 0o600)
    result = run_target(tmp_path, target_config(pelanor), tap.stdout)
    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: batch file {url} is a named pipe (FIFO), not a regular file"
        f"{BATCH_FILES_READ}"
    ]
    assert batch.exists()
    assert pelanor.uploads() == []


def _records_before_their_schema(messages: str, kind: str, stream: str) -> tuple[str, int]:
    """The tap's messages with the first ``kind`` message of ``stream`` moved to the top;
    and that line's number there."""
    lines = messages.splitlines(keepends=True)
    first = next(
        i
        for i, line in enumerate(lines)
        if line.startswith(f'{{"type":"{kind}","stream":"{stream}"')
    )
    return "".join([lines[first], *lines[:first], *lines[first + 1 :]]), 1


BEFORE_SCHEMA = {
    "costs RECORD (the quick route)": ("RECORD", "costs", {}),
    "costs RECORD (the SDK's path)": (
        "RECORD",
        "costs",
        {"stream_maps": {"costs": {"__else__": "__NULL__", "csv_row": "csv_row"}}},
    ),
    "seal RECORD": ("RECORD", "cost_months", {}),
    "costs BATCH": ("BATCH", "costs", {}),
}


@pytest.mark.parametrize(("kind", "stream", "extra"), BEFORE_SCHEMA.values(), ids=BEFORE_SCHEMA)
def test_a_message_before_its_streams_schema_is_one_line(
    tmp_path, pelanor, kind, stream, extra
) -> None:
    if kind == "BATCH":
        messages = _october_in_batch_files(tmp_path)[0].stdout
    else:
        messages = tap_output(tmp_path, ACME_OCT)
    moved, number = _records_before_their_schema(messages, kind, stream)
    result = run_target(tmp_path, target_config(pelanor, **extra), moved)
    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: input line {number} is a {kind} message of stream {stream!r} "
        "before that stream's SCHEMA message; target-pelanor reads the messages of "
        "tap-openai-costs: check what feeds its input"
    ]
    assert "Traceback" not in result.stderr
    assert pelanor.uploads() == []


# -- Leftovers ------------------------------------------------------------------------------


def _without_octobers_seal(messages: str) -> str:
    lines = messages.splitlines(keepends=True)
    seal = next(
        i for i, line in enumerate(lines) if '"cost_months"' in line and '"2025-10"' in line
    )
    return "".join(lines[:seal])


EXITS = {
    "success": (lambda messages: messages, 0),
    "a month withheld": (_without_octobers_seal, 1),
    "a stopping problem": (lambda messages: messages + "not json\n", 1),
}


@pytest.mark.parametrize(("change", "returncode"), EXITS.values(), ids=EXITS.keys())
def test_working_files_are_removed_on_every_exit_path(
    tmp_path, pelanor, change, returncode
) -> None:
    work = tmp_path / "work"
    messages = change(tap_output(tmp_path, SAMPLES / "acme"))
    result = run_target(tmp_path, target_config(pelanor, work_dir=str(work)), messages)
    assert result.returncode == returncode, result.stderr
    assert work_entries(work) == []


def test_an_incomplete_month_leaves_no_working_file(tmp_path, pelanor) -> None:
    work = tmp_path / "work"
    half = [r for r in month_rows("2025-10") if r["start_time_iso"] < "2025-10-16"]
    messages = tap_output(tmp_path, write(tmp_path / "mid.csv", export(half)))
    result = run_target(tmp_path, target_config(pelanor, work_dir=str(work)), messages)
    assert result.returncode == 1
    assert work_entries(work) == []


def test_leftovers_of_a_killed_target_are_removed_at_the_next_start(tmp_path) -> None:
    work = tmp_path / "work"
    alive = open_work_folder(work, "target-pelanor")  # another target, still running
    faults = [{"kind": "slow", "seconds": 120, "month": "2025-10"}]
    with running_sandbox(tmp_path / "p", faults=faults) as sandbox:
        config = target_config(sandbox, work_dir=str(work))
        killed = start_target(tmp_path, config, tap_output(tmp_path, SAMPLES / "acme"))
        assert sandbox.wait_for_fault("slow")  # October's file is being uploaded
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    (left,) = [p for p in work.iterdir() if p.is_dir() and p not in (alive.path, work / "locks")]
    assert [f.name for f in left.iterdir()] == ["org-acme_2025-10.csv"]

    result = run_target(
        tmp_path, {"organization_id": ORG, "dry_run": True, "work_dir": str(work)}, ""
    )
    assert result.returncode == 0, result.stderr
    assert f"Removed the working files of a target-pelanor process that is gone: {left}" in (
        result.stderr
    )
    assert work_entries(work) == sorted([alive.path.name, alive.path.name + ".lock"])
    alive.cleanup()
    assert work_entries(work) == []


# -- One upload at a time per integration and month -----------------------------------------


def test_a_second_upload_of_the_same_month_waits_for_the_first(tmp_path, pelanor) -> None:
    work = tmp_path / "work"
    locks = UploadLocks(work / "locks", wait_seconds=5)
    config = target_config(pelanor, work_dir=str(work))
    with locks.hold("int-acme", "2025-10"):  # another process uploading October
        target = start_target(
            tmp_path, config, tap_output(tmp_path, ACME_OCT), stderr=subprocess.PIPE
        )
        assert target.stderr is not None
        wait_for_line(
            target.stderr,
            "Another target-pelanor process is uploading 2025-10",
            "the target did not wait for the lock",
        )
        assert pelanor.uploads() == []
    target.communicate(timeout=120)
    assert target.returncode == 0
    assert stored(pelanor) == {"int-acme/2025-10": ACME_OCT.read_bytes()}


def test_waiting_for_another_upload_is_bounded(tmp_path, pelanor) -> None:
    work = tmp_path / "work"
    config = target_config(pelanor, work_dir=str(work), max_retry_seconds=1)
    with UploadLocks(work / "locks", wait_seconds=5).hold("int-acme", "2025-10"):
        result = run_target(tmp_path, config, tap_output(tmp_path, ACME_OCT))
    assert result.returncode == 1
    assert report(result)[1][4] == (
        "failed: another target-pelanor process kept uploading 2025-10 of integration int-acme "
        f"for more than 1s (lock {work / 'locks' / 'int-acme_2025-10.lock'}); run again "
        "once it has finished"
    )
    assert pelanor.uploads() == []


def test_an_upload_lock_that_cannot_be_taken_fails_the_month_in_one_line(tmp_path, pelanor) -> None:
    work = tmp_path / "work"
    in_the_way = write(work / "locks", b"")  # a file where the lock folder goes
    result = run_target(
        tmp_path, target_config(pelanor, work_dir=str(work)), tap_output(tmp_path, ACME_OCT)
    )
    assert result.returncode == 1
    assert report(result)[1][4] == (
        f"failed: cannot take the upload lock in {in_the_way}: a file is in the way (it must "
        "be a folder); nothing uploaded: make it a folder this user can write to (or set "
        "work_dir to one), then run again"
    )
    assert result.errors == [
        "target-pelanor: error: 1 month(s) not uploaded (see the table); no state was saved, "
        "so the next run retries them"
    ]
    assert "Traceback" not in result.stderr
    assert pelanor.uploads() == []
    assert result.last_state is None


def run_while_another_uploads(tmp_path: Path, pelanor, ours: Path, theirs: Path) -> tuple[Run, str]:
    """Two runs of one organization at once (as ``meltano run --force`` allows): ours waits
    for October's upload lock while the other run uploads ``theirs``; then ours goes on.
    Returns our run and when the other's upload was accepted (this machine's record)."""
    work = tmp_path / "work"
    ours_in = tap_run(tmp_path, ours).stdout
    theirs_in = tap_run(tmp_path, theirs).stdout
    with UploadLocks(work / "locks", wait_seconds=5).hold("int-acme", "2025-10"):
        target = start_target(
            tmp_path, target_config(pelanor, work_dir=str(work)), ours_in, stderr=subprocess.PIPE
        )
        assert target.stderr is not None
        wait_for_line(
            target.stderr,
            "Another target-pelanor process is uploading 2025-10",
            "the target did not wait for the lock",
        )
        # The other run holds its lock elsewhere (its work_dir), so it uploads meanwhile.
        other_config = target_config(pelanor, work_dir=str(tmp_path / "other-work"))
        other = run_target(tmp_path, other_config, theirs_in)
        assert other.returncode == 0, other.stderr
    _, rest = target.communicate(timeout=120)
    record = json.loads(machine_record(pelanor, "2025-10").read_text())
    return Run(target.returncode, "", rest), record["uploaded_at"][11:]


def test_a_month_another_run_uploaded_meanwhile_is_not_sent_twice(tmp_path, pelanor) -> None:
    october = october_export(tmp_path, "same")
    ours, at = run_while_another_uploads(tmp_path, pelanor, october, october)
    assert ours.returncode == 0, ours.stderr
    assert report(ours)[1][4] == (
        f"unchanged: another target-pelanor run uploaded this very file at {at}, while this "
        "run was going; not sent again"
    )
    assert len(pelanor.uploads()) == 1


def test_a_different_copy_another_run_uploaded_meanwhile_is_not_replaced(tmp_path, pelanor) -> None:
    """Not smaller, so the shrink guard lets it through; but which copy is newer is not
    known, so it is withheld."""
    ours = october_export(tmp_path, "ours")
    theirs = october_export(tmp_path, "theirs", last_day_amount="1.30")
    result, at = run_while_another_uploads(tmp_path, pelanor, ours, theirs)
    assert result.returncode == 1
    assert report(result)[1][4] == (
        "withheld: another target-pelanor run uploaded a different copy of 2025-10 at "
        f"{at}, while this run was going; this run's copy may be the older, so it is not "
        "sent: run again (one run per organization at a time)"
    )
    assert stored(pelanor) == {"int-acme/2025-10": theirs.read_bytes()}


def test_an_older_file_from_another_pipeline_does_not_land_last(tmp_path, pelanor) -> None:
    """Two pipelines of one organization, each with its own state: the one with the older
    export runs second, and this machine's record of the last upload refuses it."""
    newer = run_target(
        tmp_path, target_config(pelanor), tap_run(tmp_path, october_export(tmp_path, "new")).stdout
    )
    assert newer.returncode == 0, newer.stderr
    older_tap = tap_run(tmp_path, october_export(tmp_path, "old", last_day_amount="0.50"))
    older = run_target(tmp_path, target_config(pelanor), older_tap.stdout)
    assert older.returncode == 1
    assert report(older)[1][4] == OLDER_COPIES["the last day not final yet"][2].format(
        origin=remembered_on_this_machine(pelanor, "2025-10")
    )
    assert len(pelanor.uploads()) == 1


# -- Secrets --------------------------------------------------------------------------------

SPLIT_TOKEN = "tokid_8f3Kx2:s3cr3t/v+lue="


def _answer(status: int, **body: Any):
    return httpx.MockTransport(lambda request: httpx.Response(status, **body))


def _rejection(transport: httpx.MockTransport) -> str:
    client = PelanorClient(
        base_url="https://api.pelanor.io",
        integration_id="int-acme",
        api_token=SPLIT_TOKEN,
        request_timeout=DEFAULT_REQUEST_TIMEOUT,
        max_retry_seconds=DEFAULT_MAX_RETRY_SECONDS,
        transport=transport,
    )
    with client, pytest.raises(PelanorRejected) as rejected:
        client.upload(month="2025-10", filename="f.csv", content=b"x")
    return str(rejected.value)


def test_secrets_are_scrubbed_before_the_text_is_shortened() -> None:
    # The token straddles the 500-character cut of a JSON message, and the 200-character
    # cut of a plain-text body: shortened first, its start would have stayed.
    json_body = {"error": {"message": "x" * 495 + SPLIT_TOKEN}}
    assert _rejection(_answer(422, json=json_body)) == (
        "Pelanor rejected the upload of 2025-10 (HTTP 422): " + "x" * 495 + "***"
    )
    assert _rejection(_answer(422, text="y" * 195 + SPLIT_TOKEN)) == (
        "Pelanor rejected the upload of 2025-10 (HTTP 422): " + "y" * 195 + "***"
    )


def test_each_part_of_the_token_and_their_url_encoded_forms_are_scrubbed() -> None:
    echoed = (
        "id tokid_8f3Kx2 secret s3cr3t/v+lue= url tokid_8f3Kx2%3As3cr3t%2Fv%2Blue%3D "
        "lower tokid_8f3Kx2%3as3cr3t%2fv%2blue%3d part s3cr3t%2Fv%2Blue%3D"
    )
    assert _rejection(_answer(400, json={"message": echoed})) == (
        "Pelanor rejected the upload of 2025-10 (HTTP 400): id *** secret *** url *** "
        "lower *** part ***"
    )
