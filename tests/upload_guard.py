"""What the shrink guard's tests share: a tap run on exports, where a refusal says the
remembered copy came from, the upload records in state and on this machine, and older
copies of acme's October that must not replace a whole one."""

from __future__ import annotations

import json
import os
from pathlib import Path

from local_sandboxes.pelanor import PelanorSandbox
from tests.exports import ORG, export, month_rows, write
from tests.singer import Run, tap_in_process

SMALLER = (
    "a cut download or an older export? Export the whole month again, or list {month} in "
    "allow_shrinking_months to replace it anyway"
)


def tap_run(tmp: Path, *paths: Path, state: dict | None = None) -> Run:
    """The tap's run on these exports, as the target's input (in process)."""
    return tap_in_process(tmp, {"paths": [str(p) for p in paths], "organization_id": ORG}, state)


def config_errors(result: Run) -> list[str]:
    """The messages of the SDK's config validation (one log line each), without the last
    line that names them all."""
    return [
        message
        for line in result.stderr.splitlines()
        if "| ERROR" in line
        and not (message := line.rsplit(" | ", 1)[-1]).startswith("Config validation failed")
    ]


def uploaded_record(state: dict) -> dict:
    return state["bookmarks"]["target-pelanor"]["uploaded"]


def remembered_in_state(sandbox: PelanorSandbox, state: dict, key: str) -> str:
    """How a refusal names a copy the state remembers: where and when it was uploaded."""
    at = uploaded_record(state)[key]["uploaded_at"]
    return f"uploaded to {sandbox.url} at {at[:10]} {at[11:19]} UTC, remembered in the state"


def remembered_on_this_machine(sandbox: PelanorSandbox, month: str) -> str:
    """How a refusal names a copy this machine's record remembers (per-test XDG_STATE_HOME)."""
    path = machine_record(sandbox, month)
    at = json.loads(path.read_text())["uploaded_at"]
    return (
        f"uploaded to {sandbox.url} at {at[:10]} {at[11:19]} UTC, remembered in this "
        f"machine's file {path}"
    )


def machine_record(sandbox: PelanorSandbox, month: str, integration: str = "int-acme") -> Path:
    """Where this machine keeps the record of a month uploaded to the sandbox: in the folder
    of its host, ``localhost%3A<port>`` (every loopback name is localhost)."""
    return records_folder(sandbox) / integration / f"{month}.json"


def records_folder(sandbox: PelanorSandbox) -> Path:
    """This machine's folder of the sandbox's records (per-test XDG_STATE_HOME)."""
    host = f"localhost%3A{sandbox.url.rsplit(':', 1)[1]}"
    return Path(os.environ["XDG_STATE_HOME"]) / "target-pelanor" / "uploads" / host


def october_export(tmp: Path, name: str, last_day_amount: str = "1.25", days: int = 31) -> Path:
    rows = [
        {**row, "amount_value": last_day_amount}
        if row["start_time_iso"].startswith("2025-10-31") and row["amount_value"] == "1.25"
        else row
        for row in month_rows("2025-10")
        if int(row["start_time_iso"][8:10]) <= days
    ]
    return write(tmp / name / "cost_2025-10-01_2025-10-31.csv", export(rows))


OLDER_COPIES = {
    "the last day not final yet": (
        {"last_day_amount": "0.50"},
        {},
        "withheld: is smaller than the copy {origin}: 62 rows, 31 days, 41.10 USD "
        "against 62 rows, 31 days, 41.85 USD (0.75 USD less, more than the 0.20925 USD "
        "tolerance); " + SMALLER.format(month="2025-10"),
    ),
    "half the month, partial months allowed": (
        {"days": 15},
        {"allow_partial_month": True},
        "withheld: is smaller than the copy {origin}: 30 rows, 15 days, 20.25 USD "
        "against 62 rows, 31 days, 41.85 USD (16 fewer day(s), 32 fewer row(s), 21.60 USD "
        "less, more than the 0.20925 USD tolerance); " + SMALLER.format(month="2025-10"),
    ),
    "restated 0.15 USD lower, within the tolerance": ({"last_day_amount": "1.10"}, {}, None),
}
