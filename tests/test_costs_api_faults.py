"""The Costs API answering badly: no silent zeros, nothing dropped, pagination as it behaves.

Each case runs the real client against the fake OpenAI on 127.0.0.1 and asserts the exact
error line (it names the day and the field), and that no export file is left behind.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_sandboxes.openai_costs_api import (
    DAY,
    INVALID_PAGE_TOKEN,
    FakeOpenAI,
    number,
    project,
    result,
    without,
)
from openai_costs.export import CURRENT_COLUMNS, month_days, unix_of
from tap_openai_costs.costs_api.client import OpenAIAPIError, OpenAICostsClient
from tap_openai_costs.costs_api.rendering import fetch_exports, render_export
from tap_openai_costs.settings import DEFAULT_MAX_RETRY_SECONDS

KEY = "sk-admin-Faults0123456789abcdefSECRET"
ORG = "org-acme"
ORG_NAME = "Acme, Inc."
TODAY = date(2025, 10, 8)  # October's full days: the 1st to the 7th
DAYS = month_days("2025-10")[:7]
T1 = unix_of(DAYS[0])
T5 = unix_of(date(2025, 10, 5))
HEADER = ",".join(CURRENT_COLUMNS)
ADVICE = (
    "nothing was sealed; run the tap again later, or use the dashboard's Cost data export "
    "for this month (source files)"
)
TIMES5 = "1759622400,1759708800,2025-10-05T00:00:00+00:00,2025-10-06T00:00:00+00:00"
COSTS = "/v1/organization/costs"


def week() -> dict[int, list[dict[str, Any]]]:
    """October 1st to 7th: a cost a day, the 3rd idle."""
    return {unix_of(d): [result(f"{d.day}.10")] for d in DAYS if d.day != 3}


@pytest.fixture
def fake(start_openai) -> FakeOpenAI:
    return start_openai(week(), [project("proj_abc", "Acme App")], KEY)


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[OpenAICostsClient]:
    with OpenAICostsClient(
        admin_api_key=KEY,
        base_url=fake.url,
        sleep=lambda _: None,
        request_timeout=5.0,
        max_retry_seconds=DEFAULT_MAX_RETRY_SECONDS,
    ) as made:
        yield made


def fetch(client: OpenAICostsClient, directory: Path) -> bytes:
    (path,) = fetch_exports(client, ["2025-10"], TODAY, ORG, ORG_NAME, directory, print)
    return path.read_bytes()


def fails(client: OpenAICostsClient, directory: Path) -> str:
    """The error line; the month's file must be gone (nothing to validate or seal)."""
    with pytest.raises(OpenAIAPIError) as caught:
        fetch(client, directory)
    assert list(directory.iterdir()) == []
    text = str(caught.value)
    assert "\n" not in text
    assert KEY not in text
    return text


def cost_requests(fake: FakeOpenAI) -> list[dict[str, list[str]]]:
    return [query for path, query in fake.requests if path == COSTS]


# -- no silent zeros ------------------------------------------------------------------------

BUCKET_FAULTS: list[tuple[str, Callable[[FakeOpenAI], None], str]] = [
    (
        "no results",
        lambda f: f.bucket_without_results(T5),
        "the bucket has no results field (a day is idle only when results is an empty list)",
    ),
    (
        "result instead of results",
        lambda f: f.bucket_with_result_key(T5),
        "the bucket has result instead of results (the name one spec revision used; the API "
        "sends results)",
    ),
    (
        "results and result",
        lambda f: f.bucket_edits.__setitem__(T5, lambda b: {**b, "result": []}),
        "the bucket has both results and result",
    ),
    (
        "results null",
        lambda f: f.bucket_edits.__setitem__(T5, lambda b: {**b, "results": None}),
        "the bucket has results null, expected a list (empty for an idle day)",
    ),
    (
        "unknown bucket object",
        lambda f: f.bucket_object(T5, "organization.usage.bucket"),
        "the bucket has object 'organization.usage.bucket', expected 'bucket'",
    ),
    (
        "no bucket object",
        lambda f: f.bucket_edits.__setitem__(T5, lambda b: without(b, "object")),
        "the bucket has no object field (expected 'bucket')",
    ),
    (
        "end_time missing",
        lambda f: f.bucket_edits.__setitem__(T5, lambda b: without(b, "end_time")),
        "the bucket has end_time null, expected Unix seconds",
    ),
]


@pytest.mark.parametrize(
    ("make_fault", "problem"),
    [case[1:] for case in BUCKET_FAULTS],
    ids=[case[0] for case in BUCKET_FAULTS],
)
def test_a_bucket_off_the_spec_is_an_error_naming_the_day(
    fake, client, tmp_path, make_fault, problem
):
    make_fault(fake)
    assert fails(client, tmp_path) == f"OpenAI costs for 2025-10-05: {problem}; {ADVICE}"


UPDATE_ADVICE = (
    "nothing was sealed; update tap-openai-costs, or use the dashboard's Cost data export "
    "for this month (source files)"
)
RESULT_FAULTS: list[tuple[str, dict[str, Any], str]] = [
    ("no amount", without(result("2"), "amount"), f"has no amount; {ADVICE}"),
    (
        "amount null",
        {**result("2"), "amount": None},
        f"has amount null, expected an object with value and currency; {ADVICE}",
    ),
    ("no amount.value", without(result("2"), "amount", "value"), f"has no amount.value; {ADVICE}"),
    ("amount.value null", result(None), f"has amount.value null; {ADVICE}"),
    (
        "amount.value not decimal",
        result("1,50"),
        f"has amount.value '1,50', not a decimal number; {ADVICE}",
    ),
    (
        "amount.value NaN text",
        result("NaN"),
        f"has amount.value 'NaN', not a decimal number; {ADVICE}",
    ),
    ("amount.value true", result(True), f"has amount.value True, not a decimal number; {ADVICE}"),
    ("no amount.currency", result("2", currency=None), f"has no amount.currency; {ADVICE}"),
    (
        "quantity not decimal",
        result("2", quantity="many"),
        f"has quantity 'many', not a decimal number; {ADVICE}",
    ),
    (
        "line_item not text",
        {**result("2"), "line_item": number("5")},
        f"has line_item 5, expected text or null; {ADVICE}",
    ),
    (
        "unknown result object",
        result("2", object="organization.usage.completions.result"),
        "has object 'organization.usage.completions.result', expected "
        f"'organization.costs.result'; {ADVICE}",
    ),
    (
        "a usage result",
        {"object": "organization.usage.completions.result", "input_tokens": 10},
        "has object 'organization.usage.completions.result', expected "
        f"'organization.costs.result'; {ADVICE}",
    ),
    (
        "no result object",
        without(result("2"), "object"),
        f"has no object field (expected 'organization.costs.result'); {ADVICE}",
    ),
    (
        "unknown amount field",
        {**result("2"), "amount": {"value": "2", "currency": "usd", "credit": number("0.50")}},
        f"has amount field(s) this tap does not know: amount.credit; {UPDATE_ADVICE}",
    ),
    (
        "another currency",
        result("2", currency="eur"),
        "has amount.currency 'eur', but Pelanor accepts USD only; nothing was sealed; Pelanor "
        "takes OpenAI costs in USD only",
    ),
    (
        "amount.value beyond any cost row",
        result("1E+100"),
        f"has amount.value 1E+100, beyond ±1,000,000,000 USD, more than any real cost row; "
        f"{ADVICE}",
    ),
    (
        "another organization",
        result("2", organization_id="org-globex"),
        "belongs to organization 'org-globex', not 'org-acme'; nothing was sealed; check "
        "organization_id against the admin key's organization",
    ),
    ("not an object", ["2"], f"is not an object: ['2']; {ADVICE}"),
]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [case[1:] for case in RESULT_FAULTS],
    ids=[case[0] for case in RESULT_FAULTS],
)
def test_a_result_off_the_spec_is_an_error_naming_day_result_and_field(
    fake, client, tmp_path, bad, problem
):
    fake.costs[T5] = [result("1"), bad]
    assert fails(client, tmp_path) == f"OpenAI costs for 2025-10-05: result 2 {problem}"


def test_a_page_off_the_spec_is_an_error_naming_the_days(fake, client, tmp_path):
    span = "OpenAI costs from 2025-10-01 to 2025-10-07: page 1"
    fake.page_object("list")
    assert fails(client, tmp_path) == f"{span} has object 'list', expected 'page'; {ADVICE}"
    fake.page_overrides = {"has_more": None}
    assert fails(client, tmp_path) == (
        f"{span} has has_more null, expected true or false; {ADVICE}"
    )
    fake.page_overrides = {"next_page": None}
    assert fails(client, tmp_path) == (
        f"{span} says more pages follow (has_more) but gives no next_page cursor; {ADVICE}"
    )
    fake.page_overrides = {"data": None}
    assert fails(client, tmp_path) == f"{span} has no data list; {ADVICE}"


def test_a_day_without_a_bucket_is_an_error_not_an_idle_day(fake, client, tmp_path):
    fake.drop_bucket(T5)
    assert fails(client, tmp_path) == (
        "OpenAI costs for 2025-10-05: the API returned no bucket for this day before the one "
        "for 2025-10-06 (buckets come one per day, in day order; an idle day comes as a "
        f"bucket with an empty results list); {ADVICE}"
    )
    fake.drop_bucket(T5 + DAY)
    fake.drop_bucket(T5 + 2 * DAY)
    assert fails(client, tmp_path) == (
        "OpenAI costs for 2025-10-05 to 2025-10-07: the API returned no bucket for these days "
        f"(an idle day comes as a bucket with an empty results list); {ADVICE}"
    )


def bucket(start: int, results: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "object": "bucket",
        "start_time": start,
        "end_time": start + DAY,
        "results": results or [],
    }


@pytest.mark.parametrize(
    ("starts", "message"),
    [
        (
            [T5 + DAY, T5],
            "OpenAI costs for 2025-10-05: the API returned no bucket for this day before the "
            "one for 2025-10-06 (buckets come one per day, in day order; an idle day comes as "
            f"a bucket with an empty results list); {ADVICE}",
        ),
        (
            [T5, T5],
            "OpenAI costs for 2025-10-05: a second bucket for this day, or one out of day "
            f"order; {ADVICE}",
        ),
        (
            [T5, T5 + DAY, T5],
            "OpenAI costs for 2025-10-05: a second bucket for this day, or one out of day "
            f"order; {ADVICE}",
        ),
        (
            [T5 - DAY],
            "OpenAI costs for 2025-10-04: a bucket outside the days requested (2025-10-05 to "
            f"2025-10-06); {ADVICE}",
        ),
        (
            [T5, T5 + DAY, T5 + 2 * DAY],
            "OpenAI costs for 2025-10-07: a bucket outside the days requested (2025-10-05 to "
            f"2025-10-06); {ADVICE}",
        ),
    ],
    ids=["out of order", "twice", "again later", "before", "after"],
)
def test_buckets_come_once_a_day_in_day_order(starts, message):
    with pytest.raises(OpenAIAPIError) as caught:
        render_export(
            io.BytesIO(),
            days=[date(2025, 10, 5), date(2025, 10, 6)],
            buckets=[bucket(start) for start in starts],
            project_names={},
            organization_id=ORG,
            organization_name=ORG_NAME,
        )
    assert str(caught.value) == message


def test_unknown_fields_that_are_null_carry_nothing_and_pass(fake, client, tmp_path):
    fake.costs[T5] = [result("1", service_tier=None, organization_id=ORG)]
    assert (
        f'{TIMES5},1,usd,,,"gpt-4o-2024-08-06, input",,,proj_abc,org-acme,Acme App,"Acme, Inc.",,\n'
    ).encode() in fetch(client, tmp_path)


def test_two_results_for_one_line_item_and_project_are_refused(fake, client, tmp_path):
    fake.costs[T5] = [result("1"), result("2", "o1, output"), result("3")]
    assert fails(client, tmp_path) == (
        "OpenAI costs for 2025-10-05: results 1 and 3 are both for line item "
        "'gpt-4o-2024-08-06, input' and project 'proj_abc' (the API groups costs by line item "
        f"and project, one result each); {ADVICE}"
    )


def test_a_bucket_iso_time_that_is_not_its_unix_time_is_refused(fake, client, tmp_path):
    fake.bucket_edits[T5] = lambda b: {**b, "end_time_iso": "2025-10-05T00:00:00"}
    assert fails(client, tmp_path) == (
        "OpenAI costs for 2025-10-05: the bucket has end_time_iso '2025-10-05T00:00:00', which "
        f"is not end_time 1759708800 (2025-10-06T00:00:00+00:00); {ADVICE}"
    )


def test_the_export_is_streamed_a_day_at_a_time():
    """Each day is written before the next bucket is asked for (nothing accumulates)."""
    out = io.BytesIO()
    seen: list[int] = []

    def buckets() -> Iterator[dict[str, Any]]:
        for n, start in enumerate((T5, T5 + DAY, T5 + 2 * DAY)):
            seen.append(out.getvalue().count(b"\n"))
            yield {**bucket(start), "results": [result(str(n), f"item {k}") for k in range(n + 1)]}

    rows = render_export(
        out,
        days=[date(2025, 10, 5), date(2025, 10, 6), date(2025, 10, 7)],
        buckets=buckets(),
        project_names={},
        organization_id=ORG,
        organization_name=ORG_NAME,
    )
    # The format's writer puts each row's line ending before it: after the header 0 line
    # endings, then 1 and 2 more rows, written as they came.
    assert seen == [0, 1, 3]
    assert rows == 6
    assert out.getvalue().count(b"\n") == 7


# -- quantity and the other columns ---------------------------------------------------------


def test_quantity_unit_api_key_user_and_source_are_carried_exactly(fake, client, tmp_path):
    fake.costs[T5] = [
        result(
            number("0.8958740000000000"),
            quantity=number("1234.500"),
            quantity_unit="1000_tokens",
            api_key_id="key_abc",
            user_id="user-Xy1",
            api_source="api",
        ),
        result("0.06", "o1, output", None, quantity="0.00100", quantity_unit="tokens"),
        result(number("1e-05"), "images", quantity=number("3"), quantity_unit="images"),
        result("5.5e-05", "web search", quantity=number("2.5E-7"), quantity_unit=None),
    ]
    lines = fetch(client, tmp_path).decode().splitlines()
    assert lines[0] == HEADER
    assert lines[5:9] == [
        f"{TIMES5},0.895874,usd,1234.5,1000_tokens,"
        '"gpt-4o-2024-08-06, input",user-Xy1,key_abc,proj_abc,org-acme,Acme App,'
        '"Acme, Inc.",,api',
        f'{TIMES5},0.06,usd,0.001,tokens,"o1, output",,,,org-acme,,"Acme, Inc.",,',
        f'{TIMES5},0.00001,usd,3,images,images,,,proj_abc,org-acme,Acme App,"Acme, Inc.",,',
        f'{TIMES5},0.000055,usd,0.00000025,,web search,,,proj_abc,org-acme,Acme App,"Acme, Inc.",,',
    ]


# -- pagination as the API behaves ---------------------------------------------------------


def test_short_pages_with_has_more_are_followed(fake, client, tmp_path):
    expected = fetch(client, tmp_path)
    fake.requests.clear()
    fake.short_pages(0, 1, 0)  # empty pages that still say has_more
    assert fetch(client, tmp_path) == expected
    # Pages of 0, 1, 0 buckets in turn: three requests a day, but for the last day's
    # trailing empty page (has_more is false once the 7th day is out).
    assert len(cost_requests(fake)) == 7 * 3 - 1
    assert expected.count(b"\n") == 8


def test_short_pages_below_a_larger_limit(fake, client):
    fake.short_pages(2, 0, 1)
    buckets = list(client.cost_buckets(T1, T1 + 7 * DAY, limit=3))
    assert [b["start_time"] for b in buckets] == [T1 + n * DAY for n in range(7)]
    # Pages of 2, 0, 1, 2, 0, 1, 2 buckets: seven requests, though each page could hold 3.
    assert len(cost_requests(fake)) == 7
    assert [q["limit"] for q in cost_requests(fake)] == [["3"]] * 7


def test_a_refused_page_token_is_answered_by_asking_from_the_first_missing_day(
    fake, client, tmp_path, caplog
):
    expected = fetch(client, tmp_path)
    fake.requests.clear()
    fake.reject_page_tokens(1)
    with caplog.at_level(logging.WARNING, logger="tap_openai_costs"):
        assert fetch(client, tmp_path) == expected  # every day once, in order
    warnings = [(r.name, r.getMessage()) for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        (
            "openai_costs.safe_http",
            "OpenAI GET /v1/organization/costs: attempt 1, HTTP 400, not retrying",
        ),
        (
            "tap_openai_costs.costs_api.client",
            "OpenAI costs from 2025-10-01 to 2025-10-07: OpenAI refused its own next_page "
            f"cursor after the bucket for 2025-10-01 (HTTP 400: {INVALID_PAGE_TOKEN}); asking "
            "again from 2025-10-02, without a cursor (refusal 1 of 3)",
        ),
    ]
    # Page 1 (the 1st), the refused page 2, then a new request from the 2nd: 6 pages.
    requests = cost_requests(fake)
    assert [(q["start_time"][0], "page" in q) for q in requests] == [
        (str(T1), False),
        (str(T1), True),
        (str(T1 + DAY), False),
    ] + [(str(T1 + DAY), True)] * 5
    assert all(q["end_time"] == [str(T1 + 7 * DAY)] for q in requests)


def test_a_page_token_refused_before_any_bucket(fake, client, tmp_path, caplog):
    expected = fetch(client, tmp_path)
    fake.short_pages(0, 1)
    fake.reject_page_tokens(1)
    with caplog.at_level(logging.WARNING, logger="tap_openai_costs"):
        assert fetch(client, tmp_path) == expected
    assert (
        "refused its own next_page cursor before any bucket (HTTP 400: "
        f"{INVALID_PAGE_TOKEN}); asking again from 2025-10-01, without a cursor (refusal 1 "
        "of 3)" in caplog.text
    )


def test_a_page_token_always_refused_fails_clearly(fake, client, tmp_path, caplog):
    # Each new request's first page is empty and says has_more: its cursor, refused,
    # brings no new day; the third refusal in a row gives up, naming the day.
    fake.short_pages(0, 1)
    fake.reject_page_tokens(None)
    with caplog.at_level(logging.WARNING, logger="tap_openai_costs"):
        message = fails(client, tmp_path)
    assert message == (
        "OpenAI costs from 2025-10-01 to 2025-10-07: OpenAI refused its own next_page cursor "
        f"3 times in a row without sending 2025-10-01 (HTTP 400: {INVALID_PAGE_TOKEN}); "
        f"{ADVICE}"
    )
    assert caplog.text.count("without a cursor (refusal") == 2
    assert [("page" in q) for q in cost_requests(fake)] == [False, True] * 3


def test_refusals_that_bring_new_days_never_give_up(fake, client, tmp_path):
    """Every cursor refused, a day a page: each day comes in its own request, and the
    month is still assembled and checked whole."""
    expected = fetch(client, tmp_path)
    fake.requests.clear()
    fake.reject_page_tokens(None)
    assert fetch(client, tmp_path) == expected
    firsts = [q["start_time"][0] for q in cost_requests(fake) if "page" not in q]
    assert firsts == [str(T1 + n * DAY) for n in range(7)]


def test_a_refused_cursor_after_the_last_day_ends_the_range(fake, client, tmp_path, caplog):
    expected = fetch(client, tmp_path)
    fake.requests.clear()
    fake.has_more_after_the_last_day()
    with caplog.at_level(logging.INFO, logger="tap_openai_costs"):
        assert fetch(client, tmp_path) == expected
    assert (
        "OpenAI costs from 2025-10-01 to 2025-10-07: every day has arrived; OpenAI refused the "
        f"next_page cursor of the last page (HTTP 400: {INVALID_PAGE_TOKEN}), so the range is "
        "complete" in caplog.text
    )
    assert [("page" in q) for q in cost_requests(fake)] == [False] + [True] * 7


# -- array parameters as OpenAI's SDK sends them --------------------------------------------


def test_project_ids_are_sent_as_the_sdk_sends_arrays(fake, client):
    fake.costs[T5] = [result("1", project_id="proj_a"), result("2", project_id="proj_b")]
    fake.costs[T5].append(result("3", project_id="proj_c"))
    buckets = list(client.cost_buckets(T5, T5 + DAY, project_ids=["proj_a", "proj_c"]))
    assert [r["project_id"] for r in buckets[0]["results"]] == ["proj_a", "proj_c"]
    assert fake.query_strings[-1] == (
        f"start_time={T5}&end_time={T5 + DAY}&bucket_width=1d&group_by%5B%5D=line_item"
        "&group_by%5B%5D=project_id&project_ids%5B%5D=proj_a&project_ids%5B%5D=proj_c&limit=1"
    )
    assert cost_requests(fake)[-1]["project_ids"] == ["proj_a", "proj_c"]


@pytest.mark.parametrize(
    ("query", "refused"),
    [
        ("group_by=line_item&group_by=project_id", "group_by"),
        ("group_by[0]=line_item&group_by[1]=project_id", "group_by[0]"),
        ("group_by=line_item,project_id", "group_by"),
        ("group_by[]=line_item&group_by[]=project_id&limit[]=1", "limit[]"),
        ("group_by[]=line_item&group_by[]=project_id&project_id=proj_a", "project_id"),
    ],
)
def test_the_fake_reads_only_the_sdk_array_format(fake, query, refused):
    response = httpx.get(
        f"{fake.url}{COSTS}?start_time={T5}&{query}",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        f"Unrecognized request argument supplied: {refused}"
    )
    plain = httpx.get(
        f"{fake.url}{COSTS}?start_time={T5}&group_by[]=line_item&group_by[]=project_id",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert plain.status_code == 200
    assert plain.json()["data"][0] == {
        "object": "bucket",
        "start_time": T5,
        "end_time": T5 + DAY,
        "results": [
            {
                "object": "organization.costs.result",
                "amount": {"value": "5.10", "currency": "usd"},
                "line_item": "gpt-4o-2024-08-06, input",
                "project_id": "proj_abc",
                "api_key_id": None,
                "quantity": None,
                "quantity_unit": None,
            }
        ],
    }
    assert set(plain.json()) == {"object", "data", "has_more", "next_page"}
