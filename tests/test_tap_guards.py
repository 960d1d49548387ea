"""The tap's guards: pasted exports, which copy wins, days not over yet, paths that lead
nowhere, working files that must not outlive a run, and memory while seals wait.

The export rules are shared: where the target applies them to the file it uploads, that is
tested here too (through its month ledger, with a fixed ``today``).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tracemalloc
from datetime import date
from pathlib import Path

import pytest

from openai_costs.export import (
    ExportError,
    RowChecker,
    missing_days,
    month_days,
    reading,
    scan_export,
)
from tap_openai_costs.streams import CostsStream, TapStopped
from tap_openai_costs.tap import TapOpenAICosts
from tests.api_tap import run_api_tap
from tests.exports import ORG, TODAY, cost, export, month_rows, write
from tests.ledger_check import LAYOUT, ledger_verdict, row_text
from tests.singer import run_tap

ERROR = "tap-openai-costs: error: "
REPEATS = (
    "(same day, line item, project and every other column but the amounts), so that day "
    "would count twice, as when two exports are pasted together; export the period again as "
    "one file"
)


def until(month: str, last: int, amount: str = "1.25") -> list[dict[str, str]]:
    """Two costs a day of month, from its first day to day ``last``."""
    return [r for r in month_rows(month, amount) if int(r["start_time_iso"][8:10]) <= last]


def run_in_process(
    monkeypatch, capsys, config: dict, today: date, state: dict | None = None
) -> tuple[int, str, list[str]]:
    """The tap in this process with its ``today`` seam set: (exit status, stdout, the error
    lines its command line would write last)."""
    monkeypatch.setattr(CostsStream, "today", lambda self: today)
    tap = TapOpenAICosts(config=config, state=state, parse_env_config=False)
    try:
        tap.sync_all()
        status, problems = 0, []
    except TapStopped as stopped:
        status, problems = int(stopped.code or 0), stopped.problems
    out, _ = capsys.readouterr()
    return status, out, [f"{ERROR}{problem}" for problem in problems]


# Pasted exports --------------------------------------------------------------------------


def test_pasted_exports_stop_the_tap_naming_both_rows(tmp_path) -> None:
    first = export(until("2025-10", 15))
    second = export([r for r in month_rows("2025-10") if r["start_time_iso"] >= "2025-10-15"])
    # cat first.csv <(tail -n +2 second.csv): the boundary day twice, with the same amounts.
    pasted = write(tmp_path / "pasted.csv", first + second.split(b"\n", 1)[1])
    result = run_tap(tmp_path, {"paths": [str(pasted)], "organization_id": ORG})
    assert result.returncode == 1
    # 2025-10-15's rows are rows 30 and 31, and again 32 and 33.
    assert result.errors == [f"{ERROR}{pasted}: row 32: repeats row 30 {REPEATS}"]
    assert result.records("cost_months") == []


def test_pasted_exports_the_target_refuses_them_too() -> None:
    rows = [cost(date(2025, 10, 1)), cost(date(2025, 10, 2)), cost(date(2025, 10, 2))]
    assert ledger_verdict(rows, TODAY) == (
        f"withheld: fails the export checks: row 4: repeats row 3 {REPEATS}"
    )


# Which copy wins -------------------------------------------------------------------------


def copy_warnings(stderr: str) -> list[str]:
    return [line.split(" | ")[-1] for line in stderr.splitlines() if "with different rows" in line]


def test_which_copy_wins_newest_by_range_is_one_warning_line(tmp_path) -> None:
    mid = write(tmp_path / "in" / "mid.csv", export(until("2025-10", 15, "7.77")), mtime=2e9)
    full = write(tmp_path / "in" / "full.csv", export(month_rows("2025-10")), mtime=1.9e9)
    config = {"paths": [str(tmp_path / "in")], "organization_id": ORG}
    result = run_tap(tmp_path, config)
    assert result.returncode == 0, result.stderr
    assert copy_warnings(result.stderr) == [
        f"{full} and {mid} both cover 2025-10-01 to 2025-10-15 with different rows; using "
        f"{full} for those days: it is newer by range (it covers up to 2025-10-31, the other "
        "up to 2025-10-15)"
    ]
    # The next run has nothing to send for October, and nothing to warn about.
    again = run_tap(tmp_path, config, state=result.last_state)
    assert again.records("cost_months") == []
    assert copy_warnings(again.stderr) == []


def test_which_copy_wins_then_by_modification_time(tmp_path) -> None:
    # `cp old.csv copy.csv` of an older download: same range, the copy modified later.
    old = write(tmp_path / "in" / "old.csv", export(month_rows("2025-10")), mtime=1.9e9)
    rows = month_rows("2025-10")
    rows[40]["amount_value"] = "9.99"  # a day the export restated (2025-10-21)
    copy = write(tmp_path / "in" / "copy.csv", export(rows), mtime=2e9)
    result = run_tap(tmp_path, {"paths": [str(tmp_path / "in")], "organization_id": ORG})
    assert result.returncode == 0, result.stderr
    assert copy_warnings(result.stderr) == [
        f"{copy} and {old} both cover 2025-10-21 with different rows; using {copy} for that "
        "day: both cover up to 2025-10-31 and it was modified later (2033-05-18 03:33:20 UTC, "
        "the other 2030-03-17 17:46:40 UTC)"
    ]


def test_which_copy_wins_identical_copies_give_no_warning(tmp_path) -> None:
    write(tmp_path / "in" / "a.csv", export(month_rows("2025-10")), mtime=1.9e9)
    write(tmp_path / "in" / "b.csv", export(month_rows("2025-10")), mtime=2e9)
    result = run_tap(tmp_path, {"paths": [str(tmp_path / "in")], "organization_id": ORG})
    assert result.returncode == 0, result.stderr
    assert copy_warnings(result.stderr) == []


# Days not over yet -----------------------------------------------------------------------


def test_a_day_that_has_not_ended_is_an_error(tmp_path, monkeypatch, capsys) -> None:
    path = write(tmp_path / "oct.csv", export(until("2025-10", 16)))
    config = {"paths": [str(path)], "organization_id": ORG}
    status, out, errors = run_in_process(monkeypatch, capsys, config, date(2025, 10, 16))
    assert status == 1
    assert errors == [
        f"{ERROR}{path}: row 32: day 2025-10-16 has not ended yet (it is today, UTC), so its "
        "costs are still growing; export again after 00:00 UTC, with days up to yesterday"
    ]
    assert '"type":"RECORD","stream":"cost_months"' not in out


def test_days_after_today_are_an_error(tmp_path, monkeypatch, capsys) -> None:
    path = write(tmp_path / "nov.csv", export(until("2025-11", 3)))
    config = {"paths": [str(path)], "organization_id": ORG}
    status, out, errors = run_in_process(monkeypatch, capsys, config, date(2025, 10, 16))
    assert status == 1
    assert errors == [
        f"{ERROR}{path}: row 2: day 2025-11-01 is in the future (today is 2025-10-16, UTC); "
        "check the export's dates and this computer's clock"
    ]
    assert '"type":"RECORD","stream":"cost_months"' not in out


def test_days_up_to_yesterday_seal_the_current_month(tmp_path, monkeypatch, capsys) -> None:
    path = write(tmp_path / "oct.csv", export(until("2025-10", 15)))
    config = {"paths": [str(path)], "organization_id": ORG}
    status, out, errors = run_in_process(monkeypatch, capsys, config, date(2025, 10, 16))
    assert (status, errors) == (0, [])
    assert '"complete":true,' in out
    assert '"days_expected":15,' in out


def test_a_month_after_the_current_one_is_never_complete() -> None:
    november = month_days("2025-11")
    # Even rows claiming every day of it leave it incomplete: none of its days has ended.
    assert missing_days("2025-11", november, date(2025, 10, 16)) == november
    assert missing_days("2025-11", [], date(2025, 10, 16)) == november
    assert missing_days("2025-10", month_days("2025-10")[:15], date(2025, 10, 16)) == []


def test_the_target_refuses_days_not_ended_too() -> None:
    rows = until("2025-10", 16)
    assert ledger_verdict(rows, date(2025, 10, 16)) == (
        "withheld: fails the export checks: row 32: day 2025-10-16 has not ended yet (it is "
        "today, UTC), so its costs are still growing; export again after 00:00 UTC, with "
        "days up to yesterday"
    )
    assert ledger_verdict(rows, date(2025, 10, 17)) == "ready: 32 rows"


# Paths that lead nowhere -----------------------------------------------------------------


def test_broken_links_and_link_loops_in_paths_one_line_each(tmp_path) -> None:
    good = write(tmp_path / "good" / "oct.csv", export(month_rows("2025-10")))
    broken = tmp_path / "broken.csv"
    broken.symlink_to(tmp_path / "gone.csv")
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "moved.csv").symlink_to("../nowhere/moved.csv")
    paths = [str(good), str(broken), str(loop), str(folder), str(tmp_path / "missing.csv")]
    result = run_tap(tmp_path, {"paths": paths, "organization_id": ORG})
    assert result.returncode == 1
    assert result.errors == [
        f"{ERROR}{broken}: is a broken symbolic link (to '{tmp_path}/gone.csv', which does "
        "not exist); fix the link or take it out of paths",
        f"{ERROR}{loop}: is a symbolic link loop; fix the link or take it out of paths",
        f"{ERROR}{folder}/moved.csv: is a broken symbolic link (to '../nowhere/moved.csv', "
        "which does not exist); fix the link or take it out of paths",
        f"{ERROR}{tmp_path}/missing.csv: matches no export file; check the paths setting "
        "(files, folders, globs)",
    ]
    assert result.records("costs") == []


def test_an_unreadable_file_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    # Simulated: the tests may run as root, who can read any file.
    good = write(tmp_path / "sep.csv", export(month_rows("2025-09")))
    locked = write(tmp_path / "oct.csv", export(month_rows("2025-10")))
    real_open = reading.open_regular

    def open_(path: Path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(reading, "open_regular", open_)
    config = {"paths": [str(good), str(locked)], "organization_id": ORG}
    status, out, errors = run_in_process(monkeypatch, capsys, config, TODAY)
    assert status == 1
    assert errors == [
        f"{ERROR}{locked}: cannot be read (Permission denied); let the tap's user read it, "
        "or take it out of paths"
    ]
    assert '"type":"RECORD","stream":"cost_months"' not in out


def test_a_fifo_named_in_paths_is_one_line_without_waiting(tmp_path) -> None:
    fifo = tmp_path / "cost.csv"
    os.mkfifo(fifo, 0o600)
    result = run_tap(tmp_path, {"paths": [str(fifo)], "organization_id": ORG})
    assert result.returncode == 1
    assert result.errors == [
        f"{ERROR}{fifo}: is a named pipe (FIFO), not a regular file; list export files, or "
        "the folders that hold them"
    ]


def test_an_export_with_an_enormous_line_is_one_line_and_never_held_whole(tmp_path) -> None:
    lines = export(month_rows("2025-10")).split(b"\n")
    lines[2] += b"," * (2 << 20)  # row 3, as a spreadsheet numbers it
    huge = write(tmp_path / "oct.csv", b"\n".join(lines))
    result = run_tap(tmp_path, {"paths": [str(huge)], "organization_id": ORG})
    assert result.returncode == 1
    assert result.errors == [
        f"{ERROR}{huge}: row 3: has a line longer than 1 MiB; it is not the CSV OpenAI "
        "exports: download the Cost data export again as CSV"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_one_line_for_real(tmp_path) -> None:
    locked = write(tmp_path / "oct.csv", export(month_rows("2025-10")))
    locked.chmod(0)
    result = run_tap(tmp_path, {"paths": [str(locked)], "organization_id": ORG})
    assert result.returncode == 1
    assert result.errors == [
        f"{ERROR}{locked}: cannot be read (Permission denied); let the tap's user read it, "
        "or take it out of paths"
    ]


def test_an_unwritable_batch_folder_is_one_line(tmp_path) -> None:
    not_a_folder = write(tmp_path / "file", b"")
    path = write(tmp_path / "oct.csv", export(month_rows("2025-10")))
    root = (not_a_folder / "batches").as_uri()
    config = {
        "paths": [str(path)],
        "organization_id": ORG,
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": root},
        },
    }
    result = run_tap(tmp_path, config)
    assert result.returncode == 1
    assert result.errors == [
        f"{ERROR}{root}: cannot write batch files (Not a directory); free space there or set "
        "batch_config.storage.root to a folder the tap can write"
    ]
    assert "Traceback" not in result.stderr
    assert result.records("cost_months") == []


# Working files ---------------------------------------------------------------------------


def a_dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_api_months_are_kept_in_work_dir_and_deleted(
    monkeypatch,
    capsys,
    openai,
    tmp_path,
) -> None:
    import tap_openai_costs.inputs as inputs

    seen: list[list[str]] = []
    fetch = inputs.fetch_exports

    def fetch_and_look(*args, **kwargs):
        paths = fetch(*args, **kwargs)
        seen.append(sorted(str(p.relative_to(tmp_path)) for p in paths))
        return paths

    monkeypatch.setattr(inputs, "fetch_exports", fetch_and_look)
    work = tmp_path / "work"
    run_api_tap(monkeypatch, capsys, openai, date(2025, 11, 10), work_dir=str(work))
    ((october, november),) = seen
    folder = october.split("/")[1]  # tap-openai-costs.<pid>.<random>: the run's own
    assert folder.startswith(f"tap-openai-costs.{os.getpid()}.")
    assert (october, november) == (
        f"work/{folder}/cost_2025-10-01_2025-10-31.csv",
        f"work/{folder}/cost_2025-11-01_2025-11-30.csv",
    )
    assert list(work.iterdir()) == []


def test_api_months_are_deleted_when_the_run_fails(
    monkeypatch,
    capsys,
    openai,
    tmp_path,
) -> None:
    from tap_openai_costs.paths import ExportErrors
    from tap_openai_costs.planner import ExportReading

    def fail(reading: ExportReading) -> list:
        assert list((tmp_path / "work").rglob("*.csv")) != []  # the months were written
        raise ExportErrors([ExportError("somewhere.csv", "went wrong")])

    monkeypatch.setattr(ExportReading, "plans", fail)
    with pytest.raises(TapStopped) as stopped:
        run_api_tap(
            monkeypatch, capsys, openai, date(2025, 11, 10), work_dir=str(tmp_path / "work")
        )
    assert [str(problem) for problem in stopped.value.problems] == ["somewhere.csv: went wrong"]
    assert list((tmp_path / "work").iterdir()) == []


def test_working_files_of_killed_runs_are_removed_at_start(tmp_path) -> None:
    work = tmp_path / "work"
    # A killed run's folder: its lock file exists, but no process holds the lock.
    dead = write(work / "tap-openai-costs.4242.dead" / "cost_2025-10-01_2025-10-31.csv", b"x")
    write(work / "tap-openai-costs.4242.dead.lock", b"")
    other = write(work / "target-pelanor.4242.dead" / "month.csv", b"x")
    write(work / "target-pelanor.4242.dead.lock", b"")
    path = write(tmp_path / "oct.csv", export(month_rows("2025-10")))
    result = run_tap(
        tmp_path, {"paths": [str(path)], "organization_id": ORG, "work_dir": str(work)}
    )
    assert result.returncode == 0, result.stderr
    assert not dead.parent.exists()
    assert other.exists()  # another plugin's: its own runs clean it
    assert sorted(p.name for p in work.iterdir()) == [
        "target-pelanor.4242.dead",
        "target-pelanor.4242.dead.lock",
    ]
    assert (
        f"Removed the working files of a tap-openai-costs process that is gone: {dead.parent}"
        in result.stderr
    )


def test_an_unusable_work_dir_is_one_line(tmp_path) -> None:
    not_a_folder = write(tmp_path / "file", b"")
    path = write(tmp_path / "oct.csv", export(month_rows("2025-10")))
    config = {"paths": [str(path)], "organization_id": ORG, "work_dir": str(not_a_folder / "w")}
    result = run_tap(tmp_path, config)
    assert result.returncode == 1
    assert result.errors == [
        f"{ERROR}work_dir {not_a_folder}/w cannot be used for working files: a file is in the "
        "way (it must be a folder); "
        "set work_dir to a writable folder with free space"
    ]


def test_a_partial_batch_file_is_deleted_on_failure(tmp_path, monkeypatch, capsys) -> None:
    from tap_openai_costs.planner import ExportReading

    batches = tmp_path / "batches"
    path = write(tmp_path / "oct.csv", export(month_rows("2025-10")))
    # Delivered before, so October is read again after planning: the file changes under it
    # while its batch file is being written.
    state = {"bookmarks": {"costs": {"months": {f"{ORG}/2025-10": "an older digest"}}}}
    plan_then_replace = ExportReading.plans

    def plans(reading: ExportReading) -> list:
        planned = plan_then_replace(reading)
        write(path, export(month_rows("2025-10", amount="9.99")))
        return planned

    monkeypatch.setattr(ExportReading, "plans", plans)
    config = {
        "paths": [str(path)],
        "organization_id": ORG,
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": batches.as_uri()},
        },
    }
    status, out, errors = run_in_process(monkeypatch, capsys, config, TODAY, state)
    assert status == 1
    assert errors == [
        f"{ERROR}{path}: changed while it was being read (rows of 2025-10-01); run the tap again"
    ]
    assert '"type":"BATCH"' not in out
    assert list(batches.iterdir()) == []


def test_partial_batch_files_of_killed_runs_are_removed(tmp_path) -> None:
    batches = tmp_path / "batches"
    dead = write(batches / f"costs-1a2b-1.jsonl.tap-openai-costs-{a_dead_pid()}.partial", b"{}")
    alive = write(batches / f"costs-3c4d-1.jsonl.tap-openai-costs-{os.getppid()}.partial", b"{}")
    whole = write(batches / "costs-5e6f-1.jsonl", b"{}")  # announced: the target's to delete
    path = write(tmp_path / "oct.csv", export(month_rows("2025-10")))
    config = {
        "paths": [str(path)],
        "organization_id": ORG,
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": batches.as_uri()},
        },
    }
    result = run_tap(tmp_path, config)
    assert result.returncode == 0, result.stderr
    assert not dead.exists()
    assert alive.exists()
    assert whole.exists()
    assert not [p for p in batches.iterdir() if p.name.endswith(f"-{os.getpid()}.partial")]


# Memory while seals wait -----------------------------------------------------------------


def test_a_month_waiting_for_its_seal_holds_little_memory() -> None:
    """A first-time backfill keeps one checker per month until the seals come at the end
    (in the target); each must hold a few bytes a row of its last day, not a fixed table."""
    rows = [row_text(r) for r in until("2025-10", 3)]
    tracemalloc.start()
    try:
        checkers = []
        for _ in range(120):
            checker = RowChecker("cost.csv", LAYOUT, ORG, TODAY)
            for number, text in enumerate(rows, start=2):
                checker.check(number, next(csv.reader([text])), "\n", False)
            checkers.append(checker)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 4 * 1024 * 1024, f"{held / 1024 / 1024:.1f} MiB for 120 waiting months"


def test_the_scan_still_finds_every_day_and_its_rows(tmp_path) -> None:
    """The smaller per-day state still finds every day and its rows."""
    path = write(tmp_path / "oct.csv", export(month_rows("2025-10", idle=(4,))))
    scan = scan_export(path, ORG, TODAY)
    assert [(d.day.day, d.rows) for d in scan.days] == [
        (n, 1 if n == 4 else 2) for n in range(1, 32)
    ]
