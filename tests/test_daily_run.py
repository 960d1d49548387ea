"""The daily run: files unchanged since the last run are not read, a changed month reads
only the files it is built from, and a changed file is still validated in full."""

from __future__ import annotations

import copy
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tap_openai_costs.known_exports import CONTENT_CHECK_DAYS
from tests.exports import ORG, cost, export, month_rows, seal_day, write
from tests.singer import Run, run_tap
from tests.tap_output import built_months


def unchanged_since(path: Path, content: bytes) -> Path:
    """Replace a file's bytes, keeping its size and modification time (as ``touch -r``)."""
    stat = path.stat()
    assert len(content) == stat.st_size
    path.write_bytes(content)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return path


def broken(path: Path) -> bytes:
    """The file's bytes with its first data row made invalid, same size."""
    content = path.read_bytes()
    return content.replace(b"usd", b"eur", 1)


def files_of(result: Run) -> dict[str, Any]:
    assert result.last_state is not None
    return dict(result.last_state["bookmarks"]["costs"]["files"])


#: Lines about each file read and month sealed, and the route of the stream's records
#: (tests/test_logs.py and tests/test_record_routes.py check those).
_PROGRESS = ("Beginning sync", "reading ", "read ", "sealed ", "costs: the ")


def log_lines(result: Run) -> list[str]:
    """The tap's info lines about its inputs (which files it reads and why), without the
    logging prefix."""
    lines = [
        line.split(" | ")[-1]
        for line in result.stderr.splitlines()
        if " | tap-openai-costs.costs " in line
    ]
    return [line for line in lines if not line.startswith(_PROGRESS)]


def check_due(state: dict[str, Any]) -> dict[str, Any]:
    """The state as it is CONTENT_CHECK_DAYS after every file was last hashed."""
    due = copy.deepcopy(state)
    week_ago = datetime.now(UTC).date() - timedelta(days=CONTENT_CHECK_DAYS)
    for record in due["bookmarks"]["costs"]["files"].values():
        record["hashed"] = week_ago.isoformat()
    return due


def emitted(result: Run) -> dict[str, list[str]]:
    """Which months each stream wrote records for."""
    return {
        stream: sorted({r["month"] for r in result.records(stream)})
        for stream in ("cost_month_layouts", "costs", "cost_months")
    }


NOTHING: dict[str, list[str]] = {"cost_month_layouts": [], "costs": [], "cost_months": []}


def three_months(folder: Path) -> dict[str, Path]:
    return {
        month: write(folder / f"{month}.csv", export(month_rows(month)))
        for month in ("2025-08", "2025-09", "2025-10")
    }


def test_an_unchanged_run_reads_no_file_and_emits_nothing(tmp_path) -> None:
    files = three_months(tmp_path / "exports")
    config = {"paths": [str(tmp_path / "exports")], "organization_id": ORG}
    before = datetime.now(UTC).date().isoformat()  # read on both sides of the run: midnight
    first = run_tap(tmp_path, config)
    after = datetime.now(UTC).date().isoformat()
    assert first.returncode == 0, first.stderr
    record = files_of(first)[str(files["2025-09"])]
    assert record["hashed"] in (before, after)
    stat = files["2025-09"].stat()
    assert record | {"days": [], "sha256": "", "hashed": ""} == {
        "organization_id": ORG,
        "rules": "2",
        "size": str(stat.st_size),
        "mtime_ns": str(stat.st_mtime_ns),
        "sha256": "",
        "hashed": "",
        "layout": '{"columns":["start_time","end_time","start_time_iso","end_time_iso",'
        '"amount_value","amount_currency","quantity","quantity_unit","line_item","user_id",'
        '"api_key_id","project_id","organization_id","project_name","organization_name",'
        '"user_email","api_source"],"header":"start_time,end_time,start_time_iso,end_time_iso,'
        "amount_value,amount_currency,quantity,quantity_unit,line_item,user_id,api_key_id,"
        'project_id,organization_id,project_name,organization_name,user_email,api_source",'
        '"line_terminator":"\\n","bom":false,"final_newline":true}',
        "days": [],
    }
    assert len(record["days"]) == 30
    day, start, end, rows, digest = record["days"][0].split(" ")
    assert (day, rows, len(digest)) == ("2025-09-01", "2", 64)
    assert int(start) < int(end)

    # Every row of September is broken now, but size and modification time say unchanged:
    # the run does not open the file, so it does not see it.
    unchanged_since(files["2025-09"], broken(files["2025-09"]))
    second = run_tap(tmp_path, config, first.last_state)
    assert second.returncode == 0, second.stderr
    assert emitted(second) == NOTHING
    assert log_lines(second) == [
        "3 export file(s): 3 unchanged since the last run (not read), 0 to validate",
        "3 month(s) found, 0 changed since the last run: none",
    ]
    assert second.last_state["bookmarks"]["costs"] == first.last_state["bookmarks"]["costs"]


def test_the_weekly_content_check_finds_an_edit_that_kept_size_and_time(tmp_path) -> None:
    files = three_months(tmp_path / "exports")
    config = {"paths": [str(tmp_path / "exports")], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    october = files["2025-10"]
    unchanged_since(october, export(month_rows("2025-10", amount="9.25")))

    # Within the week: not read.
    assert emitted(run_tap(tmp_path, config, first.last_state)) == NOTHING

    # A week after the last check every file is hashed; October differs, so it is validated
    # and sent again; the other two are the same and are not read.
    before = datetime.now(UTC).date().isoformat()  # read on both sides of the run: midnight
    due = run_tap(tmp_path, config, check_due(first.last_state))
    after = datetime.now(UTC).date().isoformat()
    assert due.returncode == 0, due.stderr
    assert emitted(due) == {
        "cost_month_layouts": ["2025-10"],
        "costs": ["2025-10"],
        "cost_months": ["2025-10"],
    }
    assert built_months(due) == {"2025-10": october.read_bytes()}
    assert log_lines(due) == [
        f"{october}: its content changed although its size and modification time did not; "
        "validating it again",
        f"content check (every {CONTENT_CHECK_DAYS} days): 2 unchanged file(s) hashed, all the "
        "same",
        f"3 export file(s): 2 unchanged since the last run (not read), 1 to validate: {october}",
        "3 month(s) found, 1 changed since the last run: 2025-10",
    ]
    # The tap reads today once per run: every file has the same date, either side of midnight.
    assert {record["hashed"] for record in files_of(due).values()} in ({before}, {after})


def test_the_content_check_validates_a_changed_file_in_full(tmp_path) -> None:
    files = three_months(tmp_path / "exports")
    config = {"paths": [str(tmp_path / "exports")], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    unchanged_since(files["2025-09"], broken(files["2025-09"]))
    due = run_tap(tmp_path, config, check_due(first.last_state))
    assert due.returncode == 1
    assert emitted(due) == NOTHING
    assert due.errors == [
        f"tap-openai-costs: error: {files['2025-09']}: row 2: amount_currency is 'eur', "
        "but Pelanor accepts USD only"
    ]


def test_one_changed_month_reads_only_its_file(tmp_path) -> None:
    files = three_months(tmp_path / "exports")
    config = {"paths": [str(tmp_path / "exports")], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    # Proof that the other files are not opened: they are broken, size and time kept.
    for month in ("2025-08", "2025-10"):
        unchanged_since(files[month], broken(files[month]))
    september = write(files["2025-09"], export(month_rows("2025-09", amount="12.50")))

    second = run_tap(tmp_path, config, first.last_state)
    assert second.returncode == 0, second.stderr
    assert emitted(second) == {
        "cost_month_layouts": ["2025-09"],
        "costs": ["2025-09"],
        "cost_months": ["2025-09"],
    }
    assert built_months(second) == {"2025-09": september.read_bytes()}
    assert log_lines(second) == [
        f"3 export file(s): 2 unchanged since the last run (not read), 1 to validate: {september}",
        "3 month(s) found, 1 changed since the last run: 2025-09",
    ]
    before, after = first.last_state["bookmarks"]["costs"], second.last_state["bookmarks"]["costs"]
    assert {k: v for k, v in after["months"].items() if v != before["months"][k]} == {
        f"{ORG}/2025-09": after["months"][f"{ORG}/2025-09"]
    }
    assert after["files"][str(september)] != before["files"][str(september)]
    assert {k: v for k, v in after["files"].items() if k != str(september)} == {
        k: v for k, v in before["files"].items() if k != str(september)
    }


def test_a_changed_file_is_validated_in_full_before_its_month_is_sealed(tmp_path) -> None:
    files = three_months(tmp_path / "exports")
    config = {"paths": [str(tmp_path / "exports")], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    rows = month_rows("2025-09", amount="2.50")
    rows[-1] = cost(date(2025, 9, 30), amount_currency="EUR")  # its last row is bad
    september = write(files["2025-09"], export(rows))
    second = run_tap(tmp_path, config, first.last_state)
    assert second.returncode == 1
    assert emitted(second) == NOTHING
    assert second.errors == [
        f"tap-openai-costs: error: {september}: row {len(rows) + 1}: amount_currency is 'EUR', "
        "but Pelanor accepts USD only"
    ]


def merged_october(folder: Path) -> tuple[Path, Path, list[dict[str, str]]]:
    """October from two exports: early.csv wins the 1st to 9th, late.csv the 10th on."""
    early = [r for r in month_rows("2025-10", "7.77") if r["start_time_iso"] < "2025-10-21"]
    late = [r for r in month_rows("2025-10") if r["start_time_iso"] >= "2025-10-10"]
    early_path = write(folder / "early.csv", export(early), mtime=1_800_000_000)
    late_path = write(folder / "late.csv", export(late), mtime=1_800_000_000)
    expected = [r for r in early if r["start_time_iso"] < "2025-10-10"] + late
    return early_path, late_path, expected


def test_a_month_merged_from_two_files_rereads_exactly_those(tmp_path) -> None:
    folder = tmp_path / "exports"
    september = write(folder / "sep.csv", export(month_rows("2025-09")))
    early, late, expected = merged_october(folder)
    config = {"paths": [str(folder)], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    assert built_months(first)["2025-10"] == export(expected)

    unchanged_since(september, broken(september))  # not part of October: not opened
    late_rows = [r for r in month_rows("2025-10") if r["start_time_iso"] >= "2025-10-10"]
    late_rows[-1] = cost(seal_day(31), "3.33", "gpt-4o-2024-08-06, output")
    write(late, export(late_rows), mtime=1_800_000_100)

    second = run_tap(tmp_path, config, first.last_state)
    assert second.returncode == 0, second.stderr
    merged = [r for r in expected if r["start_time_iso"] < "2025-10-10"] + late_rows
    # October is built again from both files: early.csv (unchanged, hashed before it is
    # re-read) for its first nine days, late.csv (validated) for the rest.
    assert built_months(second) == {"2025-10": export(merged)}
    assert log_lines(second) == [
        f"3 export file(s): 2 unchanged since the last run (not read), 1 to validate: {late}",
        f"{late} and {early} both cover 2025-10-10 to 2025-10-20 with different rows; using "
        f"{late} for those days: it is newer by range (it covers up to 2025-10-31, the other "
        "up to 2025-10-20)",
        "2 month(s) found, 1 changed since the last run: 2025-10",
    ]
    assert files_of(second)[str(early)] == files_of(first)[str(early)]


def test_a_file_reread_for_a_changed_month_is_hashed_first(tmp_path) -> None:
    folder = tmp_path / "exports"
    early, late, _ = merged_october(folder)
    config = {"paths": [str(folder)], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    # early.csv changed behind a kept size and time; late.csv visibly. October must be
    # re-read from early.csv too, so early.csv is hashed first, found changed and validated.
    unchanged_since(early, broken(early))
    write(late, late.read_bytes().replace(b"1.25", b"1.35"), mtime=1_800_000_100)
    second = run_tap(tmp_path, config, first.last_state)
    assert second.returncode == 1
    assert second.records("cost_months") == []
    assert f"{early}: changed since it was recorded; validating it again" in log_lines(second)
    assert second.errors == [
        f"tap-openai-costs: error: {early}: row 2: amount_currency is 'eur', "
        "but Pelanor accepts USD only"
    ]


def test_a_new_file_covering_a_delivered_month_reads_only_what_builds_it(tmp_path) -> None:
    folder = tmp_path / "exports"
    files = three_months(folder)
    config = {"paths": [str(folder)], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    for path in files.values():
        unchanged_since(path, broken(path))
    # A later export of the last week of October, with a correction: it wins those days.
    week = [r for r in month_rows("2025-10", "1.30") if r["start_time_iso"] >= "2025-10-25"]
    restated = write(folder / "restated.csv", export(week))
    second = run_tap(tmp_path, config, first.last_state)
    # October is re-read from the old export for its first 24 days: hashed first, and found
    # changed (broken), so validated: the run stops. August and September are not opened.
    assert second.returncode == 1
    assert second.errors == [
        f"tap-openai-costs: error: {files['2025-10']}: row 2: amount_currency is 'eur', "
        "but Pelanor accepts USD only"
    ]
    assert log_lines(second)[0] == (
        f"4 export file(s): 3 unchanged since the last run (not read), 1 to validate: {restated}"
    )


def test_a_touched_identical_file_is_hashed_and_not_sent_again(tmp_path) -> None:
    files = three_months(tmp_path / "exports")
    config = {"paths": [str(tmp_path / "exports")], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    october = files["2025-10"]
    os.utime(october, (2_000_000_000, 2_000_000_000))  # copied or touched: same bytes
    second = run_tap(tmp_path, config, first.last_state)
    assert second.returncode == 0, second.stderr
    assert emitted(second) == NOTHING
    assert log_lines(second) == [
        f"{october}: modified, but its content is the same (SHA-256); not read again",
        "3 export file(s): 3 unchanged since the last run (not read), 0 to validate",
        "3 month(s) found, 0 changed since the last run: none",
    ]
    # The new time is remembered: the next run trusts it without hashing.
    assert files_of(second)[str(october)] == files_of(first)[str(october)] | {
        "mtime_ns": str(2_000_000_000 * 10**9)
    }
    third = run_tap(tmp_path, config, second.last_state)
    assert log_lines(third)[0] == (
        "3 export file(s): 3 unchanged since the last run (not read), 0 to validate"
    )


def test_state_of_an_earlier_version_still_works_and_is_upgraded(tmp_path) -> None:
    files = three_months(tmp_path / "exports")
    config = {"paths": [str(tmp_path / "exports")], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    old = {"bookmarks": {"costs": {"months": first.last_state["bookmarks"]["costs"]["months"]}}}

    upgraded = run_tap(tmp_path, config, old)
    assert upgraded.returncode == 0, upgraded.stderr
    assert emitted(upgraded) == NOTHING  # every file read, nothing changed, nothing sent
    assert log_lines(upgraded) == [
        "the state has no record of the export files (it was written by an earlier version): "
        "every file is validated once to record it; later runs read only the files that "
        "changed",
        f"3 export file(s): 0 unchanged since the last run (not read), 3 to validate: "
        f"{', '.join(str(files[m]) for m in ('2025-08', '2025-09', '2025-10'))}",
        "3 month(s) found, 0 changed since the last run: none",
    ]
    assert upgraded.last_state["bookmarks"]["costs"] == first.last_state["bookmarks"]["costs"]

    # An old state still sends what changed since it was written.
    september = write(files["2025-09"], export(month_rows("2025-09", amount="2.50")))
    changed = run_tap(tmp_path, config, old)
    assert emitted(changed)["cost_months"] == ["2025-09"]
    assert built_months(changed) == {"2025-09": september.read_bytes()}


def test_an_unreadable_file_record_means_the_file_is_validated_again(tmp_path) -> None:
    files = three_months(tmp_path / "exports")
    config = {"paths": [str(tmp_path / "exports")], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    state = copy.deepcopy(first.last_state)
    state["bookmarks"]["costs"]["files"][str(files["2025-08"])]["days"] = ["2025-08-01 x"]
    second = run_tap(tmp_path, config, state)
    assert second.returncode == 0, second.stderr
    assert emitted(second) == NOTHING
    assert log_lines(second)[:2] == [
        f"{files['2025-08']}: its record in the state is unreadable; validating it again",
        f"3 export file(s): 2 unchanged since the last run (not read), 1 to validate: "
        f"{files['2025-08']}",
    ]
    assert second.last_state["bookmarks"]["costs"] == first.last_state["bookmarks"]["costs"]


def test_files_recorded_for_another_organization_are_validated_again(tmp_path) -> None:
    files = three_months(tmp_path / "exports")
    first = run_tap(tmp_path, {"paths": [str(tmp_path / "exports")], "organization_id": ORG})
    other = {"paths": [str(files["2025-10"])], "organization_id": "org-globex"}
    second = run_tap(tmp_path, other, first.last_state)
    assert second.returncode == 1
    assert log_lines(second)[0] == (
        f"{files['2025-10']}: recorded for another organization or by other export rules; "
        "validating it again"
    )
    assert second.errors[0].startswith(
        f"tap-openai-costs: error: {files['2025-10']}: row 2: belongs to organization "
        "'org-acme', not 'org-globex'"
    )


def test_files_no_longer_in_paths_are_forgotten(tmp_path) -> None:
    files = three_months(tmp_path / "exports")
    config = {"paths": [str(tmp_path / "exports")], "organization_id": ORG}
    first = run_tap(tmp_path, config)
    files["2025-08"].unlink()
    second = run_tap(tmp_path, config, first.last_state)
    assert second.returncode == 0, second.stderr
    assert emitted(second) == NOTHING
    assert sorted(files_of(second)) == [str(files["2025-09"]), str(files["2025-10"])]
