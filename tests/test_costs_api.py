"""OpenAICostsClient and the export it writes, against the fake OpenAI on 127.0.0.1 only.

The faults of the API's answers (no silent zeros, unknown fields, refused page tokens) are
in test_costs_api_faults.py.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_sandboxes.openai_costs_api import DAY, FakeOpenAI, number, project, result
from openai_costs.export import (
    CURRENT_COLUMNS,
    ExportError,
    month_days,
    scan_export,
    unix_of,
)
from tap_openai_costs.costs_api.client import OpenAIAPIError, OpenAICostsClient, check_api_base_url
from tap_openai_costs.costs_api.rendering import (
    AmountTooLarge,
    decimal_text,
    export_month,
    render_export,
)
from tap_openai_costs.settings import DEFAULT_MAX_RETRY_SECONDS, DEFAULT_REQUEST_TIMEOUT
from tests.exports import TODAY
from tests.fake_clock import FakeClock

#: The settings' defaults, for a client made without the tap.
DEFAULT_TIMES = {
    "request_timeout": DEFAULT_REQUEST_TIMEOUT,
    "max_retry_seconds": DEFAULT_MAX_RETRY_SECONDS,
}

KEY = "sk-admin-Test0123456789abcdefSECRET"
ORG = "org-acme"
ORG_NAME = "Acme, Inc."
OCT5 = date(2025, 10, 5)
OCT6 = date(2025, 10, 6)
OCT7 = date(2025, 10, 7)
T5 = unix_of(OCT5)
HEADER = ",".join(CURRENT_COLUMNS)

PROJECTS = [
    project("proj_abc", "Acme App"),
    project("proj_old", 'Old "Legacy" App', archived_at=1_750_000_000),
]


@pytest.fixture
def start_fake(start_openai) -> Callable[..., FakeOpenAI]:
    """The OpenAI fake with this module's key and projects unless told otherwise."""

    def start(
        costs: dict[int, list[dict[str, Any]]] | None = None,
        projects: list[dict[str, Any]] | None = None,
        page_size_override: int | None = None,
    ) -> FakeOpenAI:
        return start_openai(
            costs if costs is not None else {},
            projects if projects is not None else list(PROJECTS),
            KEY,
            page_size_override=page_size_override,
        )

    return start


@pytest.fixture
def make_client(fake_time: FakeClock) -> Iterator[Callable[..., OpenAICostsClient]]:
    clients: list[OpenAICostsClient] = []

    def make(fake: FakeOpenAI, **overrides: Any) -> OpenAICostsClient:
        options: dict[str, Any] = {
            "admin_api_key": KEY,
            "base_url": fake.url,
            "sleep": fake_time.sleep,
            "clock": fake_time.clock,
            "random": lambda: 0.5,
            "request_timeout": 5.0,
            "max_retry_seconds": DEFAULT_MAX_RETRY_SECONDS,
        }
        options.update(overrides)
        client = OpenAICostsClient(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def small_costs() -> dict[int, list[dict[str, Any]]]:
    """Three days: two results (string and number amounts), an idle day, an archived project."""
    return {
        T5: [
            result("0.0600"),
            result(number("1e-05"), "gpt-4o-2024-08-06, output", project_id=None),
        ],
        T5 + 2 * DAY: [
            result(number("0.8958740000000000"), "text-embedding-3-small", "proj_old"),
        ],
    }


SMALL_EXPECTED = (
    HEADER + "\n"
    "1759622400,1759708800,2025-10-05T00:00:00+00:00,2025-10-06T00:00:00+00:00,0.06,usd,,,"
    '"gpt-4o-2024-08-06, input",,,proj_abc,org-acme,Acme App,"Acme, Inc.",,\n'
    "1759622400,1759708800,2025-10-05T00:00:00+00:00,2025-10-06T00:00:00+00:00,0.00001,usd,,,"
    '"gpt-4o-2024-08-06, output",,,,org-acme,,"Acme, Inc.",,\n'
    "1759708800,1759795200,2025-10-06T00:00:00+00:00,2025-10-07T00:00:00+00:00"
    ",,,,,,,,,,,,,\n"
    "1759795200,1759881600,2025-10-07T00:00:00+00:00,2025-10-08T00:00:00+00:00,"
    "0.895874,usd,,,text-embedding-3-small,,,proj_old,org-acme,"
    '"Old ""Legacy"" App","Acme, Inc.",,\n'
).encode()


def fetch_and_render(client: OpenAICostsClient, days: list[date]) -> bytes:
    out = io.BytesIO()
    export_month(
        client,
        out,
        days=days,
        project_names=client.project_names(),
        organization_id=ORG,
        organization_name=ORG_NAME,
    )
    return out.getvalue()


def bucket(start: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "bucket", "start_time": start, "end_time": start + DAY, "results": results}


def render(days: list[date], buckets: list[dict[str, Any]], **names: str) -> bytes:
    out = io.BytesIO()
    render_export(
        out,
        days=days,
        buckets=buckets,
        project_names=names,
        organization_id=ORG,
        organization_name=ORG_NAME,
    )
    return out.getvalue()


# -- rendering ----------------------------------------------------------------------------


def test_small_export_exact_bytes(start_fake, make_client):
    fake = start_fake(small_costs())
    content = fetch_and_render(make_client(fake), [OCT5, OCT6, OCT7])
    assert content == SMALL_EXPECTED


def test_rendered_export_passes_the_taps_validation(start_fake, make_client, tmp_path: Path):
    fake = start_fake(small_costs())
    path = tmp_path / "cost_2025-10-05_2025-10-07.csv"
    path.write_bytes(fetch_and_render(make_client(fake), [OCT5, OCT6, OCT7]))
    scan = scan_export(path, ORG, TODAY)
    assert scan.layout.columns == CURRENT_COLUMNS
    assert scan.layout.line_terminator == "\n"
    assert not scan.layout.bom
    assert scan.layout.final_newline
    assert [(d.day, d.rows) for d in scan.days] == [(OCT5, 2), (OCT6, 1), (OCT7, 1)]
    with pytest.raises(ExportError, match="org-globex"):
        scan_export(path, "org-globex", TODAY)


def test_whole_month_rendered_and_validated(start_fake, make_client, tmp_path: Path):
    days = month_days("2025-10")
    costs = {unix_of(d): [result(f"{d.day}.50"), result(number("0.1"), "o1, output")] for d in days}
    del costs[unix_of(date(2025, 10, 13))]  # an idle day mid-month
    fake = start_fake(costs)
    content = fetch_and_render(make_client(fake), days)
    path = tmp_path / "cost_2025-10-01_2025-10-31.csv"
    path.write_bytes(content)
    scan = scan_export(path, ORG, TODAY)
    assert len(scan.days) == 31
    assert [d.rows for d in scan.days].count(1) == 1
    assert content.count(b"\n") == 1 + 30 * 2 + 1
    assert (
        b"1760313600,1760400000,2025-10-13T00:00:00+00:00,2025-10-14T00:00:00+00:00"
        + (b"," * 13)
        + b"\n"
        in content
    )


def test_amounts_string_and_number_are_exact(start_fake, make_client):
    fake = start_fake(
        {
            T5: [
                result("0.0600"),
                result(number("1e-05"), "a"),
                result(number("0.34090000000000000"), "b"),
                result(number("0"), "c"),
                result(number("-0.5"), "credit"),
                result("0.000004500000000000000000000000000000000", "live, cached input"),
                result("0E-6176", "live zero"),
                result(number("0E-6176"), "live zero as a number"),
                result("123.45600000000000000000000000000000000000", "forty digits"),
            ]
        }
    )
    client = make_client(fake)
    buckets = list(client.cost_buckets(T5, T5 + DAY))
    values = [r["amount"]["value"] for r in buckets[0]["results"]]
    assert values[0] == "0.0600"
    assert isinstance(values[1], Decimal)
    assert not any(isinstance(v, float) for v in values)
    content = render([OCT5], buckets).decode()
    amounts = [line.split(",")[4] for line in content.splitlines()[1:]]
    assert amounts == ["0.06", "0.00001", "0.3409", "0", "-0.5", "0.0000045", "0", "0", "123.456"]


def test_decimal_text_rules():
    # API numbers are written as the shortest exact decimal text of their value.
    assert decimal_text("0.0600") == "0.06"
    assert decimal_text("1e-05") == "0.00001"
    assert decimal_text("1e-07") == "0.0000001"  # never 1E-7, as str() would write it
    assert decimal_text(Decimal("1E-7")) == "0.0000001"
    assert decimal_text("-2.5e-08") == "-0.000000025"
    assert decimal_text("5.5E-05") == "0.000055"
    assert decimal_text("-0.5") == "-0.5"
    assert decimal_text("0.000004500000000000000000000000000000000") == "0.0000045"
    assert decimal_text("0.00003420000000000000000000000000000000") == "0.0000342"
    assert decimal_text("0E-6176") == "0"
    assert decimal_text("-0.000") == "0"
    assert decimal_text("1E+2") == "100"
    assert decimal_text("100") == "100"
    assert decimal_text(".5") == "0.5"
    assert decimal_text(Decimal("1E-5")) == "0.00001"
    assert decimal_text(Decimal("0.8958740000000000")) == "0.895874"
    assert decimal_text(Decimal("30.0")) == "30"  # a float quantity, read exactly
    assert decimal_text(Decimal("0.0")) == "0"
    assert decimal_text(3) == "3"
    with pytest.raises(TypeError, match="never float"):
        decimal_text(0.06)
    for bad in (None, "abc", "NaN", "1,000", " 1", "1_000", "Infinity", "1e", True, {"v": 1}):
        with pytest.raises(ValueError, match=r"^not a decimal number$"):
            decimal_text(bad)
    with pytest.raises(ValueError, match=r"^not a finite number$"):
        decimal_text(Decimal("NaN"))
    with pytest.raises(AmountTooLarge):
        decimal_text("1E+999999999")  # beyond any cost row
    with pytest.raises(ValueError, match=r"^too large or too small for an export's amount$"):
        decimal_text("1E+999999999", limit=None)  # a quantity: no bound, but no such number
    with pytest.raises(ValueError, match=r"^too large or too small for an export's amount$"):
        decimal_text("1E-61")
    with pytest.raises(ValueError, match=r"^longer than the 64 characters an export's amount has$"):
        decimal_text("0." + "1" * 63)
    with pytest.raises(ValueError, match=r"^not a decimal number$"):
        decimal_text("0." + "0" * 300)


def test_archived_project_name_and_unknown_project(start_fake, make_client, caplog):
    fake = start_fake(
        {T5: [result("1", "x", "proj_old"), result("2", "y", "proj_gone")]},
        projects=[*PROJECTS, project("proj_new", "New")],
        page_size_override=1,
    )
    client = make_client(fake)
    names = client.project_names()
    assert names == {"proj_abc": "Acme App", "proj_old": 'Old "Legacy" App', "proj_new": "New"}
    with caplog.at_level(logging.WARNING, logger="tap_openai_costs"):
        content = fetch_and_render(client, [OCT5]).decode()
    rows = content.splitlines()[1:]
    assert ',proj_old,org-acme,"Old ""Legacy"" App",' in rows[0]
    assert ',proj_gone,org-acme,,"Acme, Inc.",' in rows[1]
    assert "proj_gone" in caplog.text


def test_idle_day_is_an_empty_results_list_and_a_zero_stays_a_cost():
    buckets = [bucket(T5, []), bucket(T5 + DAY, [result("0")])]
    lines = render([OCT5, OCT6], buckets, proj_abc="Acme App").decode().splitlines()
    assert lines == [
        HEADER,
        "1759622400,1759708800,2025-10-05T00:00:00+00:00,2025-10-06T00:00:00+00:00" + "," * 13,
        "1759708800,1759795200,2025-10-06T00:00:00+00:00,2025-10-07T00:00:00+00:00,0,usd,,,"
        '"gpt-4o-2024-08-06, input",,,proj_abc,org-acme,Acme App,"Acme, Inc.",,',
    ]


def test_bad_render_arguments_and_partial_days_are_refused():
    with pytest.raises(ValueError, match="increasing"):
        render([OCT6, OCT5], [])
    with pytest.raises(ValueError, match="increasing"):
        render([], [])
    with pytest.raises(ValueError, match="organization_id"):
        render_export(
            io.BytesIO(),
            days=[OCT5],
            buckets=[],
            project_names={},
            organization_id="",
            organization_name="",
        )
    with pytest.raises(OpenAIAPIError) as caught:
        render([OCT5], [{**bucket(T5, []), "start_time": T5 + 3600}])
    assert str(caught.value) == (
        "OpenAI returned a cost bucket from 1759626000 to 1759708800 that is not one whole "
        "UTC day; request 1d buckets from 00:00 UTC"
    )


def test_restated_day_is_read_again(start_fake, make_client):
    fake = start_fake({T5: [result("0.50")]})
    client = make_client(fake)
    assert b",0.5,usd," in fetch_and_render(client, [OCT5])
    fake.costs[T5] = [result("0.75")]  # OpenAI restates the day between runs
    assert b",0.75,usd," in fetch_and_render(client, [OCT5])


# -- requests and pagination --------------------------------------------------------------


def test_costs_paginate_a_day_a_page_with_the_export_grouping(start_fake, make_client):
    costs = {T5 + n * DAY: [result(f"{n}.25")] for n in range(5)}
    fake = start_fake(costs)
    buckets = list(make_client(fake).cost_buckets(T5, T5 + 5 * DAY))
    assert [b["start_time"] for b in buckets] == [T5 + n * DAY for n in range(5)]
    assert [b["results"][0]["amount"]["value"] for b in buckets] == [f"{n}.25" for n in range(5)]
    cost_requests = [q for path, q in fake.requests if path == "/v1/organization/costs"]
    assert len(cost_requests) == 5  # one day (bucket) a page: a month is never held whole
    # The exact query string: arrays as OpenAI's SDK sends them (group_by[]=..., encoded).
    assert fake.query_strings[0] == (
        f"start_time={T5}&end_time={T5 + 5 * DAY}&bucket_width=1d"
        "&group_by%5B%5D=line_item&group_by%5B%5D=project_id&limit=1"
    )
    assert cost_requests[0] == {
        "start_time": [str(T5)],
        "end_time": [str(T5 + 5 * DAY)],
        "bucket_width": ["1d"],
        "group_by": ["line_item", "project_id"],
        "limit": ["1"],
    }
    cursors = [q["page"][0] for q in cost_requests[1:]]
    assert all(c.startswith("page_") for c in cursors)
    assert len(set(cursors)) == 4
    assert fake.query_strings[1] == fake.query_strings[0] + f"&page={cursors[0]}"


def test_projects_paginate_with_after(start_fake, make_client):
    projects = [project(f"proj_{n}", f"Project {n}") for n in range(5)]
    projects.append(project("proj_arch", "Archived one", archived_at=1_760_000_000))
    fake = start_fake(projects=projects, page_size_override=2)
    names = make_client(fake).project_names()
    assert names == {p["id"]: p["name"] for p in projects}
    queries = [q for path, q in fake.requests if path == "/v1/organization/projects"]
    assert len(queries) == 3
    assert all(q["include_archived"] == ["true"] and q["limit"] == ["100"] for q in queries)
    assert "after" not in queries[0]
    assert queries[1]["after"] == ["proj_1"]
    assert queries[2]["after"] == ["proj_3"]


# -- retries ------------------------------------------------------------------------------


def test_429_retry_after_is_honoured(start_fake, make_client, fake_time):
    fake = start_fake({T5: [result("0.0600")]})
    fake.fail_next(429, retry_after=7, message="Rate limit reached")
    buckets = list(make_client(fake).cost_buckets(T5, T5 + DAY))
    assert buckets[0]["results"][0]["amount"]["value"] == "0.0600"
    assert len(fake_time.sleeps) == 1
    assert fake_time.sleeps[0] >= 7
    assert len(fake.requests) == 2


def test_5xx_and_dropped_connection_are_retried_with_jitter(start_fake, make_client, fake_time):
    fake = start_fake({T5: [result("1")]})
    fake.fail_next(500, times=2)
    fake.fail_next(0)  # connection closed without an answer
    client = make_client(fake, random=lambda: 1.0)
    assert len(list(client.cost_buckets(T5, T5 + DAY))) == 1
    assert fake_time.sleeps == [1.0, 2.0, 4.0]  # full jitter of 1, 2, 4 at random() == 1


def test_timeout_is_retried(start_fake, make_client, fake_time):
    fake = start_fake({T5: [result("1")]})
    fake.fail_next(0, delay=1.0)
    client = make_client(fake, request_timeout=0.2)
    assert len(list(client.cost_buckets(T5, T5 + DAY))) == 1
    assert len(fake_time.sleeps) == 1


def test_retry_budget_gives_up(start_fake, make_client, fake_time):
    fake = start_fake({})
    fake.fail_next(503, times=10, message="Service unavailable")
    client = make_client(fake, random=lambda: 1.0, max_retry_seconds=5)
    with pytest.raises(OpenAIAPIError) as caught:
        list(client.cost_buckets(T5, T5 + DAY))
    assert str(caught.value) == (
        "OpenAI GET /v1/organization/costs failed after 3 attempts over 3s: "
        "last error HTTP 503: Service unavailable"
    )
    assert caught.value.status_code == 503
    assert fake_time.sleeps == [1.0, 2.0]


def test_retry_after_beyond_budget_gives_up_at_once(start_fake, make_client, fake_time):
    fake = start_fake({})
    fake.fail_next(429, retry_after=1000, message="Rate limit reached")
    with pytest.raises(OpenAIAPIError, match="after 1 attempt over 0s"):
        list(make_client(fake, max_retry_seconds=300).cost_buckets(T5, T5 + DAY))
    assert fake_time.sleeps == []


# -- errors and the key -------------------------------------------------------------------


def test_wrong_key_message_exact_and_key_never_shown(start_fake, make_client, caplog):
    wrong = "sk-admin-WrongKey9876543210zyxwvu"
    fake = start_fake({})
    client = make_client(fake, admin_api_key=wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(OpenAIAPIError) as caught:
        list(client.cost_buckets(T5, T5 + DAY))
    assert str(caught.value) == (
        "OpenAI rejected the admin key (HTTP 401): Incorrect API key provided: sk-***. "
        "You can find your API key at https://platform.openai.com/account/api-keys; "
        "the Costs API needs an organization admin key (sk-admin-...), created under "
        "Organization settings > Admin keys"
    )
    assert caught.value.status_code == 401
    assert len(fake.requests) == 1  # not retried
    for text in (str(caught.value), repr(caught.value), repr(client), repr(vars(client))):
        assert wrong not in text
    assert wrong not in caplog.text
    assert "WrongKey" not in caplog.text


def test_403_gets_the_admin_key_hint(start_fake, make_client):
    fake = start_fake({})
    fake.fail_next(403, message=f"Key {KEY} lacks the scope api.usage.read.")
    with pytest.raises(OpenAIAPIError) as caught:
        make_client(fake).project_names()
    assert str(caught.value).startswith(
        "OpenAI rejected the admin key (HTTP 403): Key sk-*** lacks the scope api.usage.read; "
    )
    assert KEY not in str(caught.value)


def test_other_4xx_shows_openais_message(start_fake, make_client, caplog):
    fake = start_fake({})
    fake.fail_next(400, message=f"Invalid value for 'limit' (you sent {KEY}).")
    caplog.set_level(logging.DEBUG)
    client = make_client(fake)
    with pytest.raises(OpenAIAPIError) as caught:
        list(client.cost_buckets(T5, T5 + DAY))
    assert str(caught.value) == (
        "OpenAI refused GET /v1/organization/costs (HTTP 400): "
        "Invalid value for 'limit' (you sent sk-***)"
    )
    assert KEY not in caplog.text
    assert KEY not in repr(client)


def test_successful_run_never_logs_the_key(start_fake, make_client, caplog):
    fake = start_fake(small_costs())
    fake.fail_next(502)
    caplog.set_level(logging.DEBUG)
    fetch_and_render(make_client(fake), [OCT5, OCT6, OCT7])
    assert KEY not in caplog.text
    assert "tap_openai_costs.costs_api.client" in {r.name for r in caplog.records}


def test_non_json_success_body_is_an_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>captive portal</html>")

    client = OpenAICostsClient(
        admin_api_key=KEY,
        base_url="http://127.0.0.1:9",
        transport=httpx.MockTransport(handler),
        **DEFAULT_TIMES,
    )
    with client, pytest.raises(OpenAIAPIError, match="not JSON"):
        client.project_names()


def test_client_refuses_bad_settings():
    with pytest.raises(ValueError, match="admin_api_key"):
        OpenAICostsClient(admin_api_key="", **DEFAULT_TIMES)
    with pytest.raises(ValueError, match="admin_api_key"):
        OpenAICostsClient(admin_api_key="sk-admin-a b", **DEFAULT_TIMES)
    with pytest.raises(ValueError, match="api_base_url"):
        OpenAICostsClient(admin_api_key=KEY, base_url="http://api.openai.com", **DEFAULT_TIMES)


# -- base URL -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.openai.com", "https://api.openai.com"),
        ("https://api.openai.com/", "https://api.openai.com"),
        ("https://proxy.example.com/openai/", "https://proxy.example.com/openai"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.9.9.9", "http://127.9.9.9"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
        ("http://localhost:1234", "http://localhost:1234"),
    ],
)
def test_check_api_base_url_accepts(url: str, expected: str):
    assert check_api_base_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://api.openai.com",
        "http://10.0.0.1",
        "http://localhost.example.com",
        "ftp://api.openai.com",
        "api.openai.com",
        "",
        "https://user:pw@api.openai.com",
        "https://api.openai.com?x=1",
        "https://api.openai.com/v1",
        "https://api.openai.com:notaport",
    ],
)
def test_check_api_base_url_refuses(url: str):
    with pytest.raises(ValueError, match="api_base_url") as caught:
        check_api_base_url(url)
    assert "\n" not in str(caught.value)
