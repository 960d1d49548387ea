"""tap-openai-costs with source api: the Costs API read into the same exact, sealed months."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from openai_costs import export as cost_export
from openai_costs.export import month_days, unix_of
from tap_openai_costs.streams import CostsStream
from tap_openai_costs.tap import TapOpenAICosts
from tests.exports import cost, export, times
from tests.fake_openai import FakeOpenAI, number, project, result

KEY = "sk-admin-fake-Q7x2v9"
ORG = "org-acme"


def api_costs() -> dict[int, list[dict]]:
    """September to November 2025: two costs a day, 5 Oct idle, one project archived."""
    costs: dict[int, list[dict]] = {}
    for month in ("2025-09", "2025-10", "2025-11"):
        for day in month_days(month):
            if day == date(2025, 10, 5):
                continue
            costs[unix_of(day)] = [
                result(number("0.8958740000000000"), "gpt-4o-2024-08-06, input", "proj_live"),
                result("0.0600", "gpt-4o-2024-08-06, output", "proj_old"),
            ]
    return costs


@pytest.fixture
def openai():
    projects = [project("proj_live", "Acme App"), project("proj_old", 'Old, "v1"', 1_750_000_000)]
    with FakeOpenAI(api_costs(), projects, KEY, page_size_override=7) as fake:
        yield fake


def expected_export(month: str, last_day: date) -> bytes:
    rows = []
    for day in month_days(month):
        if day > last_day:
            break
        if day == date(2025, 10, 5):
            rows.append(times(day))
            continue
        org = {"organization_name": "Acme, Inc."}
        rows.append(cost(day, "0.8958740000000000", project_id="proj_live", **org))
        rows.append(
            cost(
                day,
                "0.0600",
                "gpt-4o-2024-08-06, output",
                project_id="proj_old",
                project_name='Old, "v1"',
                **org,
            )
        )
    return export(rows)


def run_api_tap(monkeypatch, capsys, openai, today: date, state: dict | None = None, **config):
    monkeypatch.setattr(CostsStream, "today", lambda self: today)
    tap = TapOpenAICosts(
        config={
            "source": "api",
            "admin_api_key": KEY,
            "organization_id": ORG,
            "organization_name": "Acme, Inc.",
            "api_base_url": openai.url,
            **config,
        },
        state=state,
        parse_env_config=False,
    )
    tap.sync_all()
    messages = [
        json.loads(line, parse_float=Decimal) for line in capsys.readouterr().out.splitlines()
    ]
    records = [m for m in messages if m["type"] == "RECORD"]
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    return records, states[-1]


def months_of(records, stream: str) -> list[str]:
    return sorted({m["record"]["month"] for m in records if m["stream"] == stream})


def rebuilt(records) -> dict[str, bytes]:
    import io

    from openai_costs.export import Layout, write_export

    rows: dict[str, list[str]] = {}
    built = {}
    for message in records:
        record = message["record"]
        if message["stream"] == "costs":
            rows.setdefault(record["month"], []).append(record["csv_row"])
        elif message["stream"] == "cost_months":
            out = io.BytesIO()
            write_export(out, Layout.from_dict(record["layout"]), rows[record["month"]])
            built[record["month"]] = out.getvalue()
    return built


def cost_requests(openai) -> list[tuple[str, str]]:
    """The (start, end) day ranges the tap asked the Costs API for, first pages only."""
    ranges = []
    for path, query in openai.requests:
        if path.endswith("/costs") and "page" not in query:
            start, end = int(query["start_time"][0]), int(query["end_time"][0])
            ranges.append((str(cost_export.day_of(start)), str(cost_export.day_of(end - 1))))
    return ranges


def test_api_months_are_the_exports_the_dashboard_would_give(monkeypatch, capsys, openai):
    records, _ = run_api_tap(monkeypatch, capsys, openai, date(2025, 11, 3), start_month="2025-09")
    assert rebuilt(records) == {
        "2025-09": expected_export("2025-09", date(2025, 9, 30)),
        "2025-10": expected_export("2025-10", date(2025, 10, 31)),
        "2025-11": expected_export("2025-11", date(2025, 11, 2)),
    }
    seals = {m["record"]["month"]: m["record"] for m in records if m["stream"] == "cost_months"}
    assert [seals[m]["complete"] for m in sorted(seals)] == [True, True, True]
    assert seals["2025-11"]["days_covered"] == 2
    assert cost_requests(openai) == [
        ("2025-09-01", "2025-09-30"),
        ("2025-10-01", "2025-10-31"),
        ("2025-11-01", "2025-11-02"),
    ]


def test_default_start_is_the_previous_month(monkeypatch, capsys, openai):
    records, _ = run_api_tap(monkeypatch, capsys, openai, date(2025, 11, 3))
    assert months_of(records, "cost_months") == ["2025-10", "2025-11"]


def test_rereads_recent_months_and_emits_only_what_changed(monkeypatch, capsys, openai):
    _, state = run_api_tap(monkeypatch, capsys, openai, date(2025, 11, 3), start_month="2025-09")
    openai.requests.clear()

    records, state = run_api_tap(monkeypatch, capsys, openai, date(2025, 11, 3), state)
    assert records == []
    # September is settled and was read: only October (within settle_days) and November.
    assert cost_requests(openai) == [("2025-10-01", "2025-10-31"), ("2025-11-01", "2025-11-02")]

    openai.costs[unix_of(date(2025, 10, 30))][0] = result(
        number("1.5"), "gpt-4o-2024-08-06, input", "proj_live"
    )
    records, state = run_api_tap(monkeypatch, capsys, openai, date(2025, 11, 3), state)
    assert months_of(records, "costs") == ["2025-10"]
    assert months_of(records, "cost_months") == ["2025-10"]
    assert "1759190400,1759276800" not in str(records)  # September was not re-emitted
    assert any(",1.5,usd," in m["record"]["csv_row"] for m in records if m["stream"] == "costs")

    openai.requests.clear()
    records, _ = run_api_tap(monkeypatch, capsys, openai, date(2025, 11, 10), state)
    assert cost_requests(openai) == [("2025-11-01", "2025-11-09")]
    assert months_of(records, "cost_months") == ["2025-11"]


def test_api_settings_are_checked_before_anything_runs():
    from singer_sdk.exceptions import ConfigValidationError

    with pytest.raises(ConfigValidationError) as raised:
        TapOpenAICosts(
            config={"source": "api", "organization_id": ORG, "api_base_url": "http://api.example"},
            parse_env_config=False,
        )
    assert raised.value.errors == [
        "admin_api_key is required when source is api",
        "organization_name is required when source is api",
        "api_base_url must use https; plain http is only allowed for loopback hosts "
        "(127.0.0.0/8, ::1, localhost), got http://api.example",
    ]


def test_the_admin_key_appears_nowhere(monkeypatch, capsys, openai, caplog, tmp_path):
    from tests.singer import run

    records, state = run_api_tap(monkeypatch, capsys, openai, date(2025, 11, 3))
    outputs = [json.dumps(records, default=str), json.dumps(state), caplog.text]
    bad_key = run(
        "tap-openai-costs",
        config={
            "source": "api",
            "admin_api_key": KEY + "-revoked",
            "organization_id": ORG,
            "organization_name": "Acme, Inc.",
            "api_base_url": openai.url,
        },
        tmp=tmp_path,
    )
    assert bad_key.returncode == 1
    assert bad_key.errors == [
        "tap-openai-costs: error: OpenAI rejected the admin key (HTTP 401): Incorrect API key "
        "provided: sk-***. You can find your API key at "
        "https://platform.openai.com/account/api-keys; the Costs API needs an organization "
        "admin key (sk-admin-...), created under Organization settings > Admin keys"
    ]
    outputs += [bad_key.stdout, bad_key.stderr, run("tap-openai-costs", "--about").stdout]
    assert all(KEY not in text for text in outputs)


@pytest.mark.parametrize(
    ("today", "read_before", "expected"),
    [
        # The previous month is re-read until settle_days (3) after it ended.
        (date(2025, 11, 3), {"2025-09", "2025-10"}, ["2025-10", "2025-11"]),
        (date(2025, 11, 4), {"2025-09", "2025-10"}, ["2025-11"]),
        # A closed month never read is read once.
        (date(2025, 11, 4), {"2025-10"}, ["2025-09", "2025-11"]),
        # On the first of a month the previous one is still open.
        (date(2025, 12, 1), {"2025-09", "2025-10", "2025-11"}, ["2025-11", "2025-12"]),
    ],
)
def test_which_months_are_read(today, read_before, expected):
    from tap_openai_costs.api_source import months_to_read

    assert months_to_read("2025-09", today, 3, read_before) == expected
