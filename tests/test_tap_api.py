"""tap-openai-costs with source api: the Costs API read into the same exact, sealed months."""

from __future__ import annotations

import json
from datetime import date

import pytest

from local_sandboxes.openai_costs_api import number, result
from openai_costs import export as cost_export
from openai_costs.export import month_days, unix_of
from tap_openai_costs.streams import TapStopped
from tap_openai_costs.tap import TapOpenAICosts
from tests.api_tap import KEY, ORG, api_tap, run_api_tap
from tests.exports import NEW, NINE, cost, export, times
from tests.fake_clock import elapsed_blanked
from tests.tap_output import built_months


def expected_export(month: str, last_day: date, columns: tuple[str, ...] = NINE) -> bytes:
    """The month as the tap sends it: the nine-column layout unless told, amounts as the
    shortest exact decimal text of what the API sent."""
    rows = []
    for day in month_days(month):
        if day > last_day:
            break
        if day == date(2025, 10, 5):
            rows.append(times(day))
            continue
        org = {"organization_name": "Acme, Inc."}
        rows.append(cost(day, "0.895874", project_id="proj_live", **org))
        rows.append(
            cost(
                day,
                "0.06",
                "gpt-4o-2024-08-06, output",
                project_id="proj_old",
                project_name='Old, "v1"',
                **org,
            )
        )
    return export(rows, columns)


def months_of(records, stream: str) -> list[str]:
    return sorted({m["record"]["month"] for m in records if m["stream"] == stream})


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
    assert built_months(records) == {
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
    from tap_openai_costs.costs_api.schedule import months_to_read

    assert months_to_read("2025-09", today, 3, read_before) == expected


def test_months_sealed_for_another_organization_do_not_count_as_read():
    from tap_openai_costs.costs_api.schedule import months_due

    delivered = {"org-other/2025-09": "digest", "org-acme/2025-10": "digest"}
    # No start month: the previous month on; 2025-09 was sealed for another organization.
    assert months_due("org-acme", None, 3, delivered, date(2025, 11, 10)) == ["2025-11"]
    assert months_due("org-acme", "2025-09", 3, delivered, date(2025, 11, 10)) == [
        "2025-09",
        "2025-11",
    ]


# -- the API answering badly: one error line, exit status 1, nothing sent -------------------

ADVICE = (
    "nothing was sealed; run the tap again later, or use the dashboard's Cost data export "
    "for this month (source files)"
)
OCT7 = unix_of(date(2025, 10, 7))


def run_failing_api_tap(monkeypatch, capsys, openai, today: date, **config):
    """Run the tap in process until it stops: its exit status, the error lines its command
    line would write last, and its messages."""
    tap = api_tap(monkeypatch, openai, today, None, **config)
    with pytest.raises(TapStopped) as stopped:
        tap.sync_all()
    captured = capsys.readouterr()
    messages = [json.loads(line) for line in captured.out.splitlines()]
    errors = [f"tap-openai-costs: error: {problem}" for problem in stopped.value.problems]
    return stopped.value.code, errors, messages


@pytest.mark.parametrize(
    ("make_fault", "error"),
    [
        (
            lambda f: f.bucket_without_results(OCT7),
            "OpenAI costs for 2025-10-07: the bucket has no results field (a day is idle only "
            f"when results is an empty list); {ADVICE}",
        ),
        (
            lambda f: f.bucket_with_result_key(OCT7),
            "OpenAI costs for 2025-10-07: the bucket has result instead of results (the name "
            f"one spec revision used; the API sends results); {ADVICE}",
        ),
        (
            lambda f: f.drop_bucket(OCT7),
            "OpenAI costs for 2025-10-07: the API returned no bucket for this day before the "
            "one for 2025-10-08 (buckets come one per day, in day order; an idle day comes as "
            f"a bucket with an empty results list); {ADVICE}",
        ),
        (
            lambda f: f.costs[OCT7].append(result(None)),
            f"OpenAI costs for 2025-10-07: result 3 has amount.value null; {ADVICE}",
        ),
        (
            lambda f: f.costs[OCT7].append({**result("1"), "amount": None}),
            "OpenAI costs for 2025-10-07: result 3 has amount null, expected an object with "
            f"value and currency; {ADVICE}",
        ),
        (
            lambda f: f.costs[OCT7].append(result("1", object="organization.costs")),
            "OpenAI costs for 2025-10-07: result 3 has object 'organization.costs', expected "
            f"'organization.costs.result'; {ADVICE}",
        ),
        (
            lambda f: f.costs[OCT7].append(result("1", currency="eur")),
            "OpenAI costs for 2025-10-07: result 3 has amount.currency 'eur', but Pelanor "
            "accepts USD only; nothing was sealed; Pelanor takes OpenAI costs in USD only",
        ),
        (
            lambda f: (f.short_pages(0, 7), f.reject_page_tokens(None)),
            "OpenAI costs from 2025-10-01 to 2025-10-31: OpenAI refused its own next_page "
            "cursor 3 times in a row without sending 2025-10-01 (HTTP 400: The page token is "
            f"invalid, have you modified the query parameters?); {ADVICE}",
        ),
    ],
    ids=[
        "no results",
        "result not results",
        "no bucket",
        "null value",
        "null amount",
        "unknown object",
        "another currency",
        "page token always refused",
    ],
)
def test_a_bad_api_answer_stops_the_tap_with_one_line(
    monkeypatch, capsys, openai, make_fault, error
):
    make_fault(openai)
    code, errors, messages = run_failing_api_tap(
        monkeypatch, capsys, openai, date(2025, 11, 3), start_month="2025-10"
    )
    assert code == 1
    assert errors == [f"tap-openai-costs: error: {error}"]
    assert [m for m in messages if m["type"] in ("RECORD", "BATCH")] == []


def test_a_bad_api_answer_fails_the_tap_process(tmp_path, openai):
    """The real console script: exit status 1, the one line, no traceback, no records."""
    from tests.singer import run_tap

    openai.drop_bucket(unix_of(date(2025, 9, 3)))
    done = run_tap(
        tmp_path,
        {
            "source": "api",
            "admin_api_key": KEY,
            "organization_id": ORG,
            "organization_name": "Acme, Inc.",
            "api_base_url": openai.url,
            "start_month": "2025-09",  # read first, whatever today is
        },
    )
    assert done.returncode == 1
    assert done.errors == [
        "tap-openai-costs: error: OpenAI costs for 2025-09-03: the API returned no bucket "
        "for this day before the one for 2025-09-04 (buckets come one per day, in day order; "
        f"an idle day comes as a bucket with an empty results list); {ADVICE}"
    ]
    assert "Traceback" not in done.stderr
    assert KEY not in done.stderr
    assert [m for m in done.messages if m["type"] == "RECORD"] == []


def test_quantity_and_the_other_api_columns_reach_the_records_exactly(monkeypatch, capsys, openai):
    openai.costs[OCT7] = [
        result(
            number("0.8958740000000000"),
            "gpt-4o-2024-08-06, input",
            "proj_live",
            quantity=number("15000.0"),
            quantity_unit="tokens",
            api_key_id="key_Ab12",
            user_id="user-9zQ",
            api_source="responses",
        ),
        result("1e-05", "dall-e-3", None, quantity="2", quantity_unit="images"),
        result(number("0.25"), "web search", "proj_old", quantity=number("1.5E-3")),
    ]
    records, _ = run_api_tap(monkeypatch, capsys, openai, date(2025, 11, 3), start_month="2025-10")
    day7 = [
        m["record"]
        for m in records
        if m["stream"] == "costs" and m["record"]["day"] == "2025-10-07"
    ]
    # The file has the nine columns Pelanor lists...
    assert [record["csv_row"] for record in day7] == [
        '1759795200,1759881600,0.895874,usd,"gpt-4o-2024-08-06, input",proj_live,org-acme,'
        'Acme App,"Acme, Inc."',
        '1759795200,1759881600,0.00001,usd,dall-e-3,,org-acme,,"Acme, Inc."',
        '1759795200,1759881600,0.25,usd,web search,proj_old,org-acme,"Old, ""v1""","Acme, Inc."',
    ]
    # ...and the records every value, typed.
    assert [typed(record) for record in day7] == DAY7_TYPED


DAY7_TYPED = [
    {
        "amount_value": "0.895874",
        "quantity": "15000",
        "quantity_unit": "tokens",
        "api_key_id": "key_Ab12",
        "user_id": "user-9zQ",
        "user_email": None,
        "api_source": "responses",
        "project_name": "Acme App",
        "start_time_iso": "2025-10-07T00:00:00+00:00",
        "end_time_iso": "2025-10-08T00:00:00+00:00",
    },
    {
        "amount_value": "0.00001",
        "quantity": "2",
        "quantity_unit": "images",
        "api_key_id": None,
        "user_id": None,
        "user_email": None,
        "api_source": None,
        "project_name": None,
        "start_time_iso": "2025-10-07T00:00:00+00:00",
        "end_time_iso": "2025-10-08T00:00:00+00:00",
    },
    {
        "amount_value": "0.25",
        "quantity": "0.0015",
        "quantity_unit": None,
        "api_key_id": None,
        "user_id": None,
        "user_email": None,
        "api_source": None,
        "project_name": 'Old, "v1"',
        "start_time_iso": "2025-10-07T00:00:00+00:00",
        "end_time_iso": "2025-10-08T00:00:00+00:00",
    },
]


def typed(record: dict) -> dict:
    return {name: record.get(name) for name in DAY7_TYPED[0]}


def test_the_wide_layout_setting_writes_every_api_column_into_the_file(monkeypatch, capsys, openai):
    openai.costs[OCT7] = [
        result(
            number("0.8958740000000000"),
            "gpt-4o-2024-08-06, input",
            "proj_live",
            quantity=number("15000.0"),
            quantity_unit="tokens",
            api_key_id="key_Ab12",
            user_id="user-9zQ",
            api_source="responses",
        ),
    ]
    records, _ = run_api_tap(
        monkeypatch, capsys, openai, date(2025, 11, 3), start_month="2025-10", api_layout="wide"
    )
    assert built_months(records)["2025-11"] == expected_export("2025-11", date(2025, 11, 2), NEW)
    layouts = [m["record"]["layout"] for m in records if m["stream"] == "cost_month_layouts"]
    assert [layout["columns"] for layout in layouts] == [list(NEW), list(NEW)]
    (row,) = [
        m["record"]
        for m in records
        if m["stream"] == "costs" and m["record"]["day"] == "2025-10-07"
    ]
    assert row["csv_row"] == (
        "1759795200,1759881600,2025-10-07T00:00:00+00:00,2025-10-08T00:00:00+00:00,0.895874,"
        'usd,15000,tokens,"gpt-4o-2024-08-06, input",user-9zQ,key_Ab12,proj_live,org-acme,'
        'Acme App,"Acme, Inc.",,responses'
    )
    assert typed(row) == DAY7_TYPED[0]


def test_short_pages_and_a_refused_page_token_give_the_same_months(monkeypatch, capsys, openai):
    openai.short_pages(0, 1)
    openai.reject_page_tokens(2)
    records, _ = run_api_tap(monkeypatch, capsys, openai, date(2025, 11, 3), start_month="2025-10")
    assert built_months(records) == {
        "2025-10": expected_export("2025-10", date(2025, 10, 31)),
        "2025-11": expected_export("2025-11", date(2025, 11, 2)),
    }
    # Two cursors refused before October's first day came: asked again from the 1st twice.
    assert cost_requests(openai) == [("2025-10-01", "2025-10-31")] * 3 + [
        ("2025-11-01", "2025-11-02")
    ]


def test_a_month_openai_restated_lower_is_refused_as_a_restatement(
    monkeypatch, capsys, openai, pelanor, tmp_path
):
    """An API month smaller than the copy uploaded before is OpenAI restating it: the
    target says so, and how to allow that month, instead of asking for a new export."""
    from tests.singer import report, run_target, target_config
    from tests.upload_guard import remembered_in_state

    def tap_output(state: dict | None) -> str:
        api_tap(monkeypatch, openai, date(2025, 11, 3), state, start_month="2025-10").sync_all()
        return capsys.readouterr().out

    target = target_config(pelanor, allow_partial_month=True)
    first = run_target(tmp_path, target, tap_output(None))
    assert first.returncode == 0, first.stderr

    openai.costs[unix_of(date(2025, 10, 30))][0] = result(
        "0.1", "gpt-4o-2024-08-06, input", "proj_live"
    )
    refused = run_target(tmp_path, target, tap_output(first.last_state))
    assert refused.returncode == 1
    assert report(refused)[1] == [
        "org-acme",
        "2025-10",
        "61",
        "27.880346",
        "withheld: is smaller than the copy "
        + remembered_in_state(pelanor, first.last_state, "org-acme/2025-10")
        + ": 61 rows, 31 days, 27.880346 USD against 61 rows, 31 days, 28.676220 USD "
        "(0.795874 USD less, more than the 0.1433811 USD tolerance); OpenAI's Costs API now "
        "reports this month lower than when it was uploaded (OpenAI restated it). If the "
        "lower figures are right, list 2025-10 in allow_shrinking_months to upload it",
    ]


def test_request_timeout_and_max_retry_seconds_bound_the_api_requests(monkeypatch, capsys, openai):
    openai.fail_next(0, delay=3.0)  # answers nothing for longer than request_timeout
    code, errors, _ = run_failing_api_tap(
        monkeypatch, capsys, openai, date(2025, 11, 3), request_timeout=1, max_retry_seconds=0
    )
    assert code == 1
    assert [elapsed_blanked(error) for error in errors] == [
        "tap-openai-costs: error: OpenAI GET /v1/organization/projects failed after 1 attempt "
        "over Ns: last error timeout: no complete response within 1s"
    ]
