"""check_against_api: export months compared day by day with the Costs API (the fake on
127.0.0.1) before their seal; a month that disagrees, or cannot be checked, is not sealed."""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from singer_sdk.exceptions import ConfigValidationError

from local_sandboxes.openai_costs_api import FakeOpenAI, result
from openai_costs.export import month_days, unix_of
from tap_openai_costs.costs_api.witness import disagreement, tolerance
from tap_openai_costs.streams import CostsStream, TapStopped
from tap_openai_costs.tap import TapOpenAICosts
from tests.exports import ORG, export, month_rows, write
from tests.singer import report, run_tap, run_target

KEY = "sk-admin-witness-Z9y8"
TODAY = date(2025, 11, 5)
OCT14 = unix_of(date(2025, 10, 14))
OCT14_DAY = date(2025, 10, 14)
COSTS = "/v1/organization/costs"


def api_costs() -> dict[int, list[dict]]:
    """What the exports of month_rows hold, grouped: 1.25 and 0.10 a day."""
    return {
        unix_of(day): [result("1.25"), result("0.10", "gpt-4o-2024-08-06, output")]
        for month in ("2025-09", "2025-10")
        for day in month_days(month)
    }


@pytest.fixture
def witness(start_openai) -> FakeOpenAI:
    return start_openai(api_costs(), [], KEY)


@pytest.fixture
def exports(tmp_path: Path) -> list[Path]:
    return [
        write(tmp_path / "cost_2025-09-01_2025-09-30.csv", export(month_rows("2025-09"))),
        write(tmp_path / "cost_2025-10-01_2025-10-31.csv", export(month_rows("2025-10"))),
    ]


def config(fake: FakeOpenAI, paths: list[Path], **extra: object) -> dict:
    return {
        "paths": [str(path) for path in paths],
        "organization_id": ORG,
        "check_against_api": True,
        "admin_api_key": KEY,
        "api_base_url": fake.url,
        "max_retry_seconds": 0,
        **extra,
    }


def run(monkeypatch, capsys, settings: dict) -> tuple[list[str], list[str]]:
    """The tap in process: (months sealed, the error lines it would write last)."""
    import json

    monkeypatch.setattr(CostsStream, "today", lambda self: TODAY)
    tap = TapOpenAICosts(config=settings, parse_env_config=False)
    try:
        tap.sync_all()
        problems: list[Exception] = []
    except TapStopped as stopped:
        problems = stopped.problems
    tap.message_writer.flush()
    messages = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    sealed = [
        m["record"]["month"]
        for m in messages
        if m["type"] == "RECORD" and m["stream"] == "cost_months"
    ]
    return sealed, [f"tap-openai-costs: error: {problem}" for problem in problems]


def test_months_that_agree_are_sealed_and_the_log_says_they_were_checked(
    monkeypatch, capsys, caplog, witness, exports
):
    with caplog.at_level(logging.INFO, logger="tap-openai-costs"):
        sealed, errors = run(monkeypatch, capsys, config(witness, exports))
    assert (sealed, errors) == (["2025-09", "2025-10"], [])
    lines = [r.getMessage() for r in caplog.records]
    assert (
        "sealed org-acme 2025-10: 62 rows, 41.85 USD, complete, checked against the OpenAI "
        "Costs API (31 day(s) agree)" in lines
    )
    assert (
        "check_against_api: 2 month(s) agree with the OpenAI Costs API day by day and were "
        "sealed: 2025-09, 2025-10" in lines
    )
    # One request a month, ungrouped (a result a day), the whole month on one page.
    assert witness.query_strings == [
        f"start_time={unix_of(date(2025, 9, 1))}&end_time={unix_of(date(2025, 10, 1))}"
        "&bucket_width=1d&limit=30",
        f"start_time={unix_of(date(2025, 10, 1))}&end_time={unix_of(date(2025, 11, 1))}"
        "&bucket_width=1d&limit=31",
    ]


def test_a_day_further_apart_than_the_tolerance_leaves_its_month_unsealed(
    monkeypatch, capsys, witness, exports
):
    # OpenAI restated two days since the export: the 13th by less than the tolerance
    # ($0.01 here), the 14th and 20th by more.
    witness.costs[OCT14 - 86400] = [result("1.355")]
    witness.costs[OCT14] = [result("1.40")]
    witness.costs[OCT14 + 6 * 86400] = [result("1.30")]
    sealed, errors = run(monkeypatch, capsys, config(witness, exports))
    assert sealed == ["2025-09"]
    assert errors == [
        "tap-openai-costs: error: 2025-10 not sealed (check_against_api): on 2025-10-14 the "
        f"export ({exports[1]}) totals 1.35 USD but OpenAI's Costs API 1.4 USD, 0.05 USD "
        "apart, more than the 0.01 USD allowed (0.5%, at least 0.01); 2025-10-20 differ too; "
        "likely the download was cut short, the export was saved before that day ended, or "
        "OpenAI restated the day since: export the month again"
    ]


def test_the_target_reports_a_month_the_tap_refused_without_calling_it_a_crash(
    tmp_path, witness, exports
):
    witness.costs[OCT14] = [result("1.40")]
    tap = run_tap(tmp_path, config(witness, exports))
    assert tap.returncode == 1
    assert "2025-10 not sealed (check_against_api): on 2025-10-14" in tap.stderr
    target = run_target(tmp_path, {"organization_id": ORG, "dry_run": True}, tap.stdout)
    assert target.returncode == 1
    assert [row[4] for row in report(target)[1:]] == [
        "checked (dry run)",
        "withheld: was not sealed by the tap: the tap refused it (its log says why, such as "
        "check_against_api) or stopped before finishing it; nothing uploaded, the next run "
        "sends it again",
    ]
    assert "stopped before finishing the month" not in target.stderr


def test_a_disagreement_names_the_limit_it_applied_exactly() -> None:
    exported, reported = {OCT14_DAY: Decimal("27.018")}, {OCT14_DAY: Decimal("26.8828")}
    assert disagreement("2025-10", exported, reported, {OCT14_DAY: "oct.csv"}) == (
        "2025-10 not sealed (check_against_api): on 2025-10-14 the export (oct.csv) totals "
        "27.018 USD but OpenAI's Costs API 26.8828 USD, 0.1352 USD apart, more than the "
        "0.13509 USD allowed (0.5%, at least 0.01); likely the download was cut short, the "
        "export was saved before that day ended, or OpenAI restated the day since: export "
        "the month again"
    )
    at_the_limit = {OCT14_DAY: Decimal("26.88291")}  # 0.13509 apart: allowed
    assert disagreement("2025-10", exported, at_the_limit, {}) is None


def test_totals_are_compared_to_the_last_digit() -> None:
    """A day's totals keep every digit (a 28-digit context would round this one to 0.01)."""
    exported = {OCT14_DAY: Decimal("0.010000000000000000000000000001")}
    problem = disagreement("2025-10", exported, {OCT14_DAY: Decimal(0)}, {})
    assert problem is not None
    assert "0.010000000000000000000000000001 USD apart, more than the 0.01 USD allowed" in problem


def test_the_api_refusing_the_key_leaves_every_month_unsealed(
    monkeypatch, capsys, witness, exports
):
    sealed, errors = run(monkeypatch, capsys, config(witness, exports, admin_api_key=KEY + "x"))
    assert sealed == []
    assert errors == [
        "tap-openai-costs: error: 2025-09 not sealed (check_against_api): the OpenAI Costs "
        "API could not be read to check it: OpenAI rejected the admin key (HTTP 401): "
        "Incorrect API key provided: sk-***. You can find your API key at "
        "https://platform.openai.com/account/api-keys; the Costs API needs an organization "
        "admin key (sk-admin-...), created under Organization settings > Admin keys; not "
        "checked, so not sealed either: 2025-10; run the tap again later, or unset "
        "check_against_api to seal the exports unchecked"
    ]
    assert len(witness.requests) == 1  # the months after the failure are not asked for


def test_the_api_unreachable_leaves_the_month_unsealed(monkeypatch, capsys, witness, exports):
    witness.fail_next(503, times=5, message="Service unavailable")
    sealed, errors = run(monkeypatch, capsys, config(witness, exports[1:]))
    assert sealed == []
    assert errors == [
        "tap-openai-costs: error: 2025-10 not sealed (check_against_api): the OpenAI Costs "
        "API could not be read to check it: OpenAI GET /v1/organization/costs failed after 1 "
        "attempt over 0s: last error HTTP 503: Service unavailable; run the tap again later, "
        "or unset check_against_api to seal the exports unchecked"
    ]


def test_an_api_answer_off_its_shape_leaves_the_month_unsealed(
    monkeypatch, capsys, witness, exports
):
    witness.drop_bucket(OCT14)
    sealed, errors = run(monkeypatch, capsys, config(witness, exports[1:]))
    assert sealed == []
    assert errors == [
        "tap-openai-costs: error: 2025-10 not sealed (check_against_api): the OpenAI Costs "
        "API could not be read to check it: OpenAI costs for 2025-10-14: the API returned no "
        "bucket for this day before the one for 2025-10-15 (buckets come one per day, in day "
        "order; an idle day comes as a bucket with an empty results list); run the tap again "
        "later, or unset check_against_api to seal the exports unchecked"
    ]


def test_a_partial_export_month_is_compared_on_its_own_days(monkeypatch, capsys, witness, tmp_path):
    days = [row for row in month_rows("2025-10") if row["start_time_iso"] < "2025-10-11"]
    path = write(tmp_path / "cost_2025-10-01_2025-10-10.csv", export(days))
    sealed, errors = run(monkeypatch, capsys, config(witness, [path]))
    assert (sealed, errors) == (["2025-10"], [])
    assert witness.query_strings == [
        f"start_time={unix_of(date(2025, 10, 1))}&end_time={unix_of(date(2025, 10, 11))}"
        "&bucket_width=1d&limit=10"
    ]


def test_the_error_is_the_last_line_the_tap_writes(witness, exports, tmp_path):
    """The real console script: the SDK's metric lines first, then the one line, exit 1
    (what `meltano config test` and schedulers show)."""
    witness.costs[OCT14] = [result("9.99")]
    done = run_tap(tmp_path, config(witness, exports[1:]))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert any("METRIC" in line for line in lines)
    assert lines[-1].startswith(
        "tap-openai-costs: error: 2025-10 not sealed (check_against_api): on 2025-10-14 the export"
    )
    assert done.errors == [lines[-1]]
    assert KEY not in done.stderr


@pytest.mark.parametrize(
    ("settings", "errors"),
    [
        (
            {"check_against_api": True},
            ["admin_api_key is required when check_against_api is true"],
        ),
        (
            {"check_against_api": True, "admin_api_key": KEY, "api_base_url": "http://x.test"},
            [
                "api_base_url must use https; plain http is only allowed for loopback hosts "
                "(127.0.0.0/8, ::1, localhost), got http://x.test"
            ],
        ),
        (
            {
                "source": "api",
                "check_against_api": True,
                "admin_api_key": KEY,
                "organization_name": "Acme",
            },
            [
                "check_against_api compares export files with the Costs API, but source is "
                "api (the months come from the API already): unset check_against_api"
            ],
        ),
        (
            {"request_timeout": 0, "max_retry_seconds": -1},
            [
                "request_timeout must be a positive number of seconds (got 0)",
                "max_retry_seconds must be 0 or a positive number of seconds (got -1)",
            ],
        ),
    ],
    ids=["no admin key", "plain http", "source api", "durations"],
)
def test_check_against_api_settings_are_checked_at_start(settings, errors):
    with pytest.raises(ConfigValidationError) as raised:
        TapOpenAICosts(
            config={"paths": ["x.csv"], "organization_id": ORG, **settings},
            parse_env_config=False,
        )
    assert raised.value.errors == errors


@pytest.mark.parametrize(
    ("ours", "theirs", "apart"),
    [
        ("100", "100.50", False),  # 0.5% of the larger total
        ("100", "100.51", True),
        ("2", "2.01", False),  # at least $0.01
        ("2", "2.011", True),
        ("0", "0.01", False),
        ("0", "0.02", True),  # a day the export has idle, the API with a cost
    ],
)
def test_tolerance_is_half_a_percent_of_the_larger_total_at_least_a_cent(ours, theirs, apart):
    exported, reported = {date(2025, 10, 1): Decimal(ours)}, {date(2025, 10, 1): Decimal(theirs)}
    assert (disagreement("2025-10", exported, reported, {}) is not None) is apart
    assert tolerance(Decimal(ours), Decimal(theirs)) == max(
        Decimal(theirs) * Decimal("0.005"), Decimal("0.01")
    )
