"""Shapes of real OpenAI exports (published by users from their own accounts), end to end.

Real files decide what is valid: the nine-column layout grouped by project only, amounts
written as a float's shortest repr (exponents included), ISO times without an offset. Each
goes through tap | target into the local Pelanor sandbox and must arrive byte for byte,
with exact totals, whatever the host's time zone.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Context, Decimal, localcontext

import pytest

from openai_costs.export import REQUIRED_COLUMNS, month_days
from tests.exports import ORG, cost, export, times, write
from tests.singer import (
    Run,
    report,
    run_tap,
    run_target,
    stored,
    tap_output,
    target_config,
    unversioned,
)

NINE = REQUIRED_COLUMNS
#: Amount texts seen in real exports, and the other forms a float's repr takes.
FLOAT_REPRS = (
    "0.0036963",
    "0.019733999999999998",
    "0.005705150000000001",
    "0.23616135",
    "5.5e-05",
    "1e-07",
    "1.2345E-05",
    "2.5E+2",
    "-0.0125",
    "3",
    "0.8958740000000000",
)


def by_project_only(month: str, idle: tuple[int, ...] = ()) -> list[dict[str, str]]:
    """The nine-column export's rows: one per project and day, line_item always empty."""
    rows: list[dict[str, str]] = []
    for day in month_days(month):
        if day.day in idle:
            rows.append(times(day))
            continue
        rows.append(cost(day, "0.019733999999999998", item=""))
        rows.append(cost(day, "5.5e-05", item="", project_id="proj_def", project_name="Bots"))
    return rows


def test_the_nine_column_layout_is_uploaded_byte_for_byte(tmp_path, pelanor) -> None:
    content = export(by_project_only("2025-03", idle=(24, 25)), columns=NINE)
    assert b"\n1742774400,1742860800,,,,,,,\n" in content  # an idle day, as published
    path = write(tmp_path / "cost_2025-03-01_2025-04-01.csv", content)
    result = run_target(tmp_path, target_config(pelanor), tap_output(tmp_path, path))
    assert result.returncode == 0, result.stderr
    assert stored(pelanor) == {"int-acme/2025-03": content}
    total = 29 * (Decimal("0.019733999999999998") + Decimal("5.5e-05"))
    assert report(result)[1][:5] == ["org-acme", "2025-03", "60", f"{total:f}", "uploaded"]


def test_float_repr_amounts_arrive_byte_for_byte_with_exact_totals(tmp_path, pelanor) -> None:
    rows = []
    for day in month_days("2025-11"):
        for n, amount in enumerate(FLOAT_REPRS):
            rows.append(cost(day, amount, item=f"gpt-4o-2024-08-06, input {n}"))
    content = export(rows)
    path = write(tmp_path / "nov.csv", content)
    messages = tap_output(tmp_path, path)
    result = run_target(tmp_path, target_config(pelanor), messages)
    assert result.returncode == 0, result.stderr
    assert stored(pelanor) == {"int-acme/2025-11": content}
    total = 30 * sum(map(Decimal, FLOAT_REPRS))
    assert total == Decimal("7624.462147349999999970")  # exact: no float on the way
    assert report(result)[1][2:5] == ["330", "7624.462147349999999970", "uploaded"]


def _month_run(tmp_path, pelanor, rows: list[dict[str, str]]) -> tuple[dict, Run, bytes]:
    """November 2025 of these rows through tap | target: the seal, the target's run, and
    the file as exported."""
    content = export(rows)
    tap = run_tap(
        tmp_path, {"paths": [str(write(tmp_path / "nov.csv", content))], "organization_id": ORG}
    )
    assert tap.returncode == 0, tap.stderr
    (seal,) = tap.records("cost_months")
    result = run_target(tmp_path, target_config(pelanor), tap.stdout)
    assert result.returncode == 0, result.stderr
    assert stored(pelanor) == {"int-acme/2025-11": content}
    return seal, result, content


def test_a_month_of_thirty_digit_amounts_adds_up_to_the_last_digit(tmp_path, pelanor) -> None:
    amounts = (
        "0.123456789012345678901234567891",
        "98765.4321098765432109876543210",
        "-1.23456789012345678901234567899",
    )
    rows = [
        cost(day, f"{amount[:-1]}{day.day % 10}", item=f"line {n}")
        for day in month_days("2025-11")
        for n, amount in enumerate(amounts)
    ]
    with localcontext(Context(prec=200)):  # far more digits than any sum here needs
        total = f"{sum(Decimal(row['amount_value']) for row in rows):f}"
    assert total == "2962929.629963262962996326296310168485"  # 37 digits: 28 would round it
    seal, result, _ = _month_run(tmp_path, pelanor, rows)
    assert seal["total_usd"] == total
    assert report(result)[1][2:5] == ["90", total, "uploaded"]
    assert (
        result.last_state["bookmarks"]["target-pelanor"]["uploaded"][f"{ORG}/2025-11"]["total_usd"]
        == total
    )


def test_a_total_of_a_tenth_of_a_microdollar_is_written_in_plain_digits(tmp_path, pelanor) -> None:
    """Totals are plain decimal text wherever they go: str() would write 1E-7, which no
    reader of the state or the table expects (the shrink guard would refuse it)."""
    days = month_days("2025-11")
    rows = [cost(days[0], "1e-07"), *(times(day) for day in days[1:])]
    seal, result, content = _month_run(tmp_path, pelanor, rows)
    assert b",1e-07,usd," in content  # the file keeps its own text
    assert seal["total_usd"] == "0.0000001"
    assert report(result)[1][2:5] == ["30", "0.0000001", "uploaded"]
    assert (
        result.last_state["bookmarks"]["target-pelanor"]["uploaded"][f"{ORG}/2025-11"]["total_usd"]
        == "0.0000001"
    )


def test_amounts_in_records_are_the_exact_decimals_of_the_text(tmp_path) -> None:
    rows = [cost(date(2025, 11, 1), a, item=str(n)) for n, a in enumerate(FLOAT_REPRS)]
    result = run_tap(
        tmp_path,
        {"paths": [str(write(tmp_path / "nov.csv", export(rows)))], "organization_id": ORG},
    )
    assert result.returncode == 0, result.stderr
    records = [
        json.loads(line, parse_float=Decimal)["record"]
        for line in result.stdout.splitlines()
        if '"stream":"costs"' in line and '"type":"RECORD"' in line
    ]
    # Exact decimal text: the export's own digits, or without the exponent a float's repr
    # may use (a warehouse loader reads it as NUMERIC, never as a float).
    assert [r["amount_value"] for r in records] == [
        "0.0036963",
        "0.019733999999999998",
        "0.005705150000000001",
        "0.23616135",
        "0.000055",
        "0.0000001",
        "0.000012345",
        "250",
        "-0.0125",
        "3",
        "0.8958740000000000",
    ]
    assert [Decimal(r["amount_value"]) for r in records] == [Decimal(a) for a in FLOAT_REPRS]
    (seal,) = result.records("cost_months")
    assert seal["total_usd"] == f"{sum(map(Decimal, FLOAT_REPRS)):f}"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("nan", "'nan'"),
        ("inf", "'inf'"),
        ("-Infinity", "'-Infinity'"),
        ("1e", "'1e'"),
        ("1.5E+", "'1.5E+'"),
        ("1,000.5", "'1,000.5'"),
        ("$1.50", "'$1.50'"),
        ("1.5 ", "'1.5 '"),
        ("0x1p-3", "'0x1p-3'"),
    ],
)
def test_amounts_that_are_no_float_repr_are_refused(tmp_path, amount, shown) -> None:
    path = write(tmp_path / "bad.csv", export([cost(date(2025, 11, 1), amount)]))
    result = run_tap(tmp_path, {"paths": [str(path)], "organization_id": ORG})
    assert result.returncode == 1
    assert result.errors == [
        f"tap-openai-costs: error: {path}: row 2: amount_value {shown} is not a decimal "
        "number; use the export unmodified"
    ]


def without_offsets(content: bytes) -> bytes:
    return content.replace(b"+00:00", b"")


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_results_do_not_depend_on_the_host_time_zone(tmp_path, pelanor, tz) -> None:
    rows = [cost(day, "0.5") for day in month_days("2026-09")]
    content = without_offsets(export(rows))
    assert b",2026-09-28T00:00:00,2026-09-29T00:00:00," in content
    path = write(tmp_path / "sep.csv", content)
    tap = run_tap(tmp_path, {"paths": [str(path)], "organization_id": ORG}, env={"TZ": tz})
    assert tap.returncode == 0, tap.stderr
    # Identical records under every zone (but for the run's month_version): compare
    # against a UTC run. The typed ISO times say UTC explicitly.
    utc = run_tap(tmp_path, {"paths": [str(path)], "organization_id": ORG}, env={"TZ": "UTC"})
    assert unversioned(tap.records("costs")) == unversioned(utc.records("costs"))
    assert unversioned(tap.records("cost_months")) == unversioned(utc.records("cost_months"))
    assert tap.records("costs")[27]["start_time_iso"] == "2026-09-28T00:00:00+00:00"
    result = run_target(tmp_path, target_config(pelanor), tap.stdout, env={"TZ": tz})
    assert result.returncode == 0, result.stderr
    assert stored(pelanor) == {"int-acme/2026-09": content}


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_an_iso_time_that_disagrees_is_refused_in_every_time_zone(tmp_path, tz) -> None:
    row = cost(date(2026, 9, 28), start_time_iso="2026-09-28T09:00:00")
    path = write(tmp_path / "sep.csv", export([row]))
    result = run_tap(tmp_path, {"paths": [str(path)], "organization_id": ORG}, env={"TZ": tz})
    assert result.errors == [
        f"tap-openai-costs: error: {path}: row 2: start_time_iso '2026-09-28T09:00:00' "
        "disagrees with start_time 1790553600 (2026-09-28T00:00:00+00:00); use the export "
        "unmodified"
    ]
