"""Inputs that are not finished or not sane (an export saved before its last day ended, an
amount no cost row has, a state cut short, a folder whose exports are elsewhere), and what
a run must not leave behind (batch files with every row in them) or misexplain (too many
open files is not a full disk)."""

from __future__ import annotations

import errno
import json
import os
import stat
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.helpers._batch import BatchConfig

from openai_costs.batches import STALE_SECONDS, BatchReaders, BatchRun, remove_stale_batches
from openai_costs.export import month_days
from tap_openai_costs.costs_api.rendering import AmountTooLarge, decimal_text
from tap_openai_costs.paths import ExportErrors, expand_paths
from target_pelanor.delivery import Delivery
from target_pelanor.settings import TargetSettings
from target_pelanor.stopping import RunStopped
from tests.exports import ORG, SAMPLES, TODAY, cost, export, month_rows, sparse_file, write
from tests.ledger_check import LAYOUT, ledger_verdict
from tests.singer import report, run, run_tap, run_target, target_config

UTC = timezone.utc
ERROR = "tap-openai-costs: error: "
ACME_SEPT = SAMPLES / "acme" / "cost_2025-09-01_2025-09-30.csv"
ACME_OCT = SAMPLES / "acme" / "cost_2025-10-01_2025-10-31.csv"
STATE_FIX = (
    "restore it (meltano state get, correct it, meltano state set) or clear it (meltano "
    "state clear: every month is sent again, and the upload records the target keeps on "
    "this machine still guard them)"
)
BEYOND = "is beyond ±1,000,000,000 USD, more than any real cost row"


def batch_config(root: Path, **extra: Any) -> dict[str, Any]:
    return {
        "encoding": {"format": "jsonl", "compression": "none"},
        "storage": {"root": root.as_uri()},
    } | extra


# -- amounts no cost row has --------------------------------------------------------------


@pytest.mark.parametrize("amount", ["1000000000.01", "-2e9", "1e300"])
def test_an_amount_beyond_a_billion_dollars_is_refused_by_the_tap(tmp_path, amount) -> None:
    day = month_days("2025-10")[0]
    path = write(tmp_path / "oct.csv", export([cost(day, "1000000000"), cost(day, amount, "x")]))
    result = run_tap(tmp_path, {"paths": [str(path)], "organization_id": ORG})
    assert result.returncode == 1
    assert result.errors == [
        f"{ERROR}{path}: row 3: amount_value {amount!r} {BEYOND}; use the export unmodified"
    ]


def test_an_amount_beyond_a_billion_dollars_is_withheld_by_the_target() -> None:
    rows = month_rows("2025-10")
    rows[3]["amount_value"] = "2000000000"
    assert ledger_verdict(rows, TODAY) == (
        f"withheld: fails the export checks: row 5: amount_value 2000000000 {BEYOND}; pair "
        "target-pelanor with tap-openai-costs and run the pipeline again"
    )


@pytest.mark.parametrize("value", ["1e300", 10**12, Decimal("-1E+999999")])
def test_a_costs_api_amount_beyond_a_billion_dollars_is_refused(value) -> None:
    with pytest.raises(AmountTooLarge):
        decimal_text(value)
    assert decimal_text("1e9") == "1000000000"
    assert decimal_text(Decimal("-999999999.5")) == "-999999999.5"


# -- exports saved before their last day ended ---------------------------------------------


def unix(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_a_month_from_an_export_saved_before_its_day_ended_is_not_sealed(tmp_path) -> None:
    october = write(
        tmp_path / "in" / "cost_2025-10-01_2025-11-01.csv",
        export(month_rows("2025-10")),
        mtime=unix("2025-10-31T18:02:11"),
    )
    september = write(tmp_path / "in" / ACME_SEPT.name, ACME_SEPT.read_bytes())
    config = {"paths": [str(tmp_path / "in")], "organization_id": ORG}
    result = run_tap(tmp_path, config)
    assert result.returncode == 1
    assert result.errors == [
        f"{ERROR}{october}: was saved at 2025-10-31 18:02:11 UTC, before 2025-10-31 ended, so "
        "it cannot hold that day whole; 2025-10 is not sealed: export it again (after 00:00 "
        "UTC)"
    ]
    assert [seal["month"] for seal in result.records("cost_months")] == ["2025-09"]
    assert result.last_state is not None
    assert list(result.last_state["bookmarks"]["costs"]["months"]) == [f"{ORG}/2025-09"]
    assert str(september) in result.last_state["bookmarks"]["costs"]["files"]

    # The same export saved after the day ended (exported again): October is sealed.
    os.utime(october, (unix("2025-11-01T00:00:01"),) * 2)
    again = run_tap(tmp_path, config, state=result.last_state)
    assert again.returncode == 0, again.stderr
    assert [seal["month"] for seal in again.records("cost_months")] == ["2025-10"]


# -- a state that cannot be read -------------------------------------------------------------

CUT_SHORT = '{"bookmarks": {"costs": {"months": {"org-acme/2025-10": "ab'
BAD_STATES = {
    "cut short": (
        CUT_SHORT,
        "is not valid JSON (Unterminated string starting at: line 1, column 57)",
    ),
    "bookmarks a list": ('{"bookmarks": []}', "cannot be read: bookmarks is a list, not a map"),
    "months a list": (
        '{"bookmarks": {"costs": {"months": ["org-acme/2025-10"]}}}',
        "cannot be read: bookmarks.costs.months is a list, not a map",
    ),
    "the target's bookmark a list": (
        '{"bookmarks": {"target-pelanor": ["uploaded"]}}',
        "cannot be read: bookmarks.target-pelanor is a list, not a map",
    ),
    "a list": ("[1]", "cannot be read: the state is a list, not a map"),
}


@pytest.mark.parametrize(("text", "problem"), BAD_STATES.values(), ids=BAD_STATES.keys())
def test_a_state_that_cannot_be_read_is_one_line_in_the_tap(tmp_path, text, problem) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    config = {"paths": [str(ACME_OCT)], "organization_id": ORG}
    result = run("tap-openai-costs", "--state", str(path), config=config, tmp=tmp_path)
    assert result.returncode == 1
    assert result.errors == [f"{ERROR}the state ({path}) {problem}; {STATE_FIX}"]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: os.mkfifo(path, 0o600), "it is a named pipe (FIFO), not a regular file"),
        (lambda path: sparse_file(path, 1 << 30), "it is larger than 64 MiB"),
    ],
    ids=["a FIFO", "1 GiB"],
)
def test_a_state_file_that_is_no_state_is_one_line_without_waiting_or_filling_memory(
    tmp_path, make, problem
) -> None:
    path = tmp_path / "state.json"
    make(path)
    config = {"paths": [str(ACME_OCT)], "organization_id": ORG}
    result = run("tap-openai-costs", "--state", str(path), config=config, tmp=tmp_path)
    assert result.returncode == 1
    assert result.errors == [
        f"{ERROR}the state ({path}) cannot be read: {problem}; give --state the state file "
        "(meltano passes one), or run without it"
    ]
    assert result.stdout == ""


def state_line(value: Any) -> str:
    return json.dumps({"type": "STATE", "value": value}) + "\n"


@pytest.mark.parametrize(
    ("value", "problem"),
    [({"bookmarks": []}, "bookmarks is a list, not a map"), ([], "the state is a list, not a map")],
)
def test_a_state_that_cannot_be_read_is_one_line_in_the_target(
    tmp_path, pelanor, value, problem
) -> None:
    result = run_target(tmp_path, target_config(pelanor), state_line(value))
    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: the state the tap passed on cannot be read: {problem}; {STATE_FIX}"
    ]
    assert "Traceback" not in result.stderr


def test_numbers_in_a_state_go_back_as_numbers(tmp_path, pelanor) -> None:
    """The reader makes them Decimal, which the SDK cannot write (a traceback, before)."""
    value = {"bookmarks": {"costs": {"months": {f"{ORG}/2025-10": 5, "x": 0.25}}}}
    result = run_target(tmp_path, target_config(pelanor), state_line(value))
    assert result.returncode == 0, result.stderr
    assert result.last_state == value


# -- folders whose exports are not where the tap looks -----------------------------------


def test_a_folder_whose_only_csv_match_is_a_folder_says_so(tmp_path) -> None:
    folder = tmp_path / "exports"
    (folder / "old.csv").mkdir(parents=True)
    with pytest.raises(ExportErrors) as errors:
        expand_paths([str(folder), str(folder / "*.csv")])
    assert [str(problem) for problem in errors.value.problems] == [
        f"{folder}: matches only folders, no export file ({folder / 'old.csv'}); list the "
        "export files, or the folders that hold them",
        f"{folder}/*.csv: matches only folders, no export file ({folder / 'old.csv'}); list "
        "the export files, or the folders that hold them",
    ]


def test_a_folder_with_exports_only_in_subfolders_says_so(tmp_path) -> None:
    folder = tmp_path / "exports"
    write(folder / "2025" / "09" / ACME_SEPT.name, ACME_SEPT.read_bytes())
    write(folder / "2025" / "10" / ACME_OCT.name, ACME_OCT.read_bytes())
    with pytest.raises(ExportErrors) as errors:
        expand_paths([str(folder)])
    assert [str(problem) for problem in errors.value.problems] == [
        f"{folder}: holds no *.csv file of its own, only in subfolders "
        f"(2025/09/{ACME_SEPT.name}, 2025/10/{ACME_OCT.name}); a folder is read without its "
        f"subfolders: list those folders, or a glob such as '{folder}/**/*.csv'"
    ]
    assert expand_paths([f"{folder}/**/*.csv"]) == [
        folder / "2025" / "09" / ACME_SEPT.name,
        folder / "2025" / "10" / ACME_OCT.name,
    ]


# -- too many open files -------------------------------------------------------------------


def test_too_many_open_files_gets_advice_about_open_files_not_disk_space(
    tmp_path, monkeypatch
) -> None:
    import logging

    from openai_costs.contract import MonthOpened

    settings = {"organization_id": ORG, "dry_run": True, "work_dir": str(tmp_path / "work")}
    delivery = Delivery(TargetSettings.from_config(settings), logging.getLogger("test"))
    real_open = Path.open

    def no_more_files(path: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if path.parent == delivery.work.path:
            raise OSError(errno.EMFILE, "Too many open files", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", no_more_files)
    try:
        with pytest.raises(RunStopped) as stopped:
            delivery.open_month(MonthOpened(ORG, "2025-10", "v1", LAYOUT))
    finally:
        delivery.finish()
    assert str(stopped.value) == (
        f"cannot write the upload file of 2025-10 in {delivery.work.path}: Too many open "
        "files; too many files are open: raise the open-files limit (ulimit -n) of the user "
        "running the pipeline, or run fewer pipelines at once"
    )


# -- batch files: private, read once, never piling up --------------------------------------


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_batch_files_are_readable_by_their_owner_only(tmp_path) -> None:
    batches = tmp_path / "batches"
    config = {"paths": [str(ACME_OCT)], "organization_id": ORG}
    tap = run_tap(tmp_path, config | {"batch_config": batch_config(batches)})
    assert tap.returncode == 0, tap.stderr
    (url,) = [m["manifest"][0] for m in tap.messages if m["type"] == "BATCH"]
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in batches.iterdir()}
    name = url.rsplit("/", 1)[1]
    lock = "." + name.rsplit("-", 1)[0] + ".lock"
    assert modes == {name: "0o600", lock: "0o600"}  # the run's lock stays: the file is unread
    assert oct(stat.S_IMODE(batches.stat().st_mode)) == "0o700"


def test_a_target_that_stops_early_removes_the_batch_files_it_never_read(tmp_path, pelanor) -> None:
    batches = tmp_path / "batches"
    config = {"paths": [str(ACME_SEPT), str(ACME_OCT)], "organization_id": ORG}
    tap = run_tap(tmp_path, config | {"batch_config": batch_config(batches, batch_size=100)})
    assert tap.returncode == 0, tap.stderr
    assert len([n for n in files_in(batches) if n.endswith(".jsonl")]) == 9
    lines = tap.stdout.splitlines(keepends=True)
    first_batch = next(i for i, line in enumerate(lines) if '"type":"BATCH"' in line)
    cut = "".join(lines[: first_batch + 1]) + "not a message\n"  # the input goes wrong
    result = run_target(tmp_path, target_config(pelanor), cut)
    assert result.returncode == 1
    assert result.errors[-1].startswith(
        f"target-pelanor: error: input line {first_batch + 2} is not JSON"
    )
    assert files_in(batches) == []  # the one read, the eight never read, and the lock


def test_a_batch_file_whose_reading_failed_is_deleted(tmp_path, pelanor) -> None:
    batches = tmp_path / "batches"
    config = {"paths": [str(ACME_OCT)], "organization_id": ORG}
    tap = run_tap(tmp_path, config | {"batch_config": batch_config(batches)})
    (url,) = [m["manifest"][0] for m in tap.messages if m["type"] == "BATCH"]
    batch = Path(url.removeprefix("file://"))
    batch.write_text(batch.read_text().replace('"csv_row":', '"row_text":', 1))
    result = run_target(tmp_path, target_config(pelanor), tap.stdout)
    assert result.returncode == 1
    assert report(result)[1][4].startswith("withheld: ")
    assert files_in(batches) == []


def test_batch_files_nobody_read_are_removed_by_a_later_tap_once_their_run_is_over(
    tmp_path,
) -> None:
    batches = tmp_path / "batches"
    config = {
        "paths": [str(ACME_OCT)],
        "organization_id": ORG,
        "batch_config": batch_config(batches),
    }
    first = run_tap(tmp_path, config)  # no target: its file stays, with its run's lock
    assert first.returncode == 0, first.stderr
    left = files_in(batches)
    assert len(left) == 2
    second = run_tap(tmp_path, config)  # the run just ended: a target may still come
    assert second.returncode == 0, second.stderr
    assert set(left) < set(files_in(batches))
    long_ago = datetime.now(UTC).timestamp() - STALE_SECONDS - 60
    for name in left:
        os.utime(batches / name, (long_ago, long_ago))
    third = run_tap(tmp_path, config)
    assert third.returncode == 0, third.stderr
    data = sorted(name for name in left if name.endswith(".jsonl"))
    assert f"removed batch files that runs which are over left behind: {data[0]}" in (third.stderr)
    assert not set(left) & set(files_in(batches))
    assert len(files_in(batches)) == 4  # the second and third runs', not yet over


def test_batch_files_of_a_run_a_target_is_reading_are_never_removed(tmp_path) -> None:
    config = BatchConfig.from_dict(batch_config(tmp_path / "batches"))
    with BatchRun(config, "costs") as run_:
        name = f"{run_.name}-1.jsonl"
        write(tmp_path / "batches" / name, b"{}\n")
    readers = BatchReaders()
    readers.reading((tmp_path / "batches" / name).as_uri())  # a target holds the run
    much_later = datetime.now(UTC).timestamp() + STALE_SECONDS * 10
    assert remove_stale_batches(config, "tap-openai-costs", now=much_later) == []
    assert readers.finish() == [name]  # its tap is gone: what it did not read goes
    assert files_in(tmp_path / "batches") == []
