"""The Costs API as it really answers (a verbatim 2026 response's shape), against the fake
OpenAI on 127.0.0.1: string amounts of about 40 digits, ``"0E-6176"``, float quantities,
fields beyond the spec, ISO bucket times with and without an offset, zero-cost rows."""

from __future__ import annotations

import io
import logging
from datetime import date

import pytest

from local_sandboxes.openai_costs_api import FakeOpenAI, live_result, number, project, result
from openai_costs.export import CURRENT_COLUMNS
from tap_openai_costs.costs_api.client import OpenAICostsClient
from tap_openai_costs.costs_api.rendering import FieldNotes, export_month
from tap_openai_costs.settings import DEFAULT_MAX_RETRY_SECONDS, DEFAULT_REQUEST_TIMEOUT
from tests.api_tap import KEY, ORG, run_api_tap
from tests.tap_output import built_months

JUNE14 = date(2026, 6, 14)
JUNE15 = date(2026, 6, 15)
T14 = 1781395200
TIMES14 = "1781395200,1781481600,2026-06-14T00:00:00+00:00,2026-06-15T00:00:00+00:00"
TIMES15 = "1781481600,1781568000,2026-06-15T00:00:00+00:00,2026-06-16T00:00:00+00:00"
ITEM = "gpt-4.1-nano-2025-04-14"


def live_day() -> list[dict]:
    """One day of the verbatim response's shape (ids and names replaced)."""
    return [
        live_result(
            "0.000004500000000000000000000000000000000",
            f"{ITEM}, input",
            "proj_live",
            "Live App",
            quantity=number("30.0"),
            user_id="user-Q1",
            api_key_id="key_A1",
            user_email="dev@example.com",
        ),
        # A zero-cost row, its amount the exponent form of a 128-bit decimal's zero.
        live_result(
            "0E-6176", f"{ITEM}, cached input", "proj_live", "Live App", quantity=number("0.0")
        ),
        live_result(
            "0.00003420000000000000000000000000000000",
            f"{ITEM}, output",
            "proj_live",
            None,
            quantity=number("57.0"),
            organization_name=None,
        ),
    ]


@pytest.fixture
def live(start_openai) -> FakeOpenAI:
    fake = start_openai({T14: live_day()}, [project("proj_live", "Name in the projects list")], KEY)
    fake.live_buckets = True
    return fake


def test_the_live_response_shape_is_written_exactly(live):
    out = io.BytesIO()
    with OpenAICostsClient(
        admin_api_key=KEY,
        base_url=live.url,
        request_timeout=DEFAULT_REQUEST_TIMEOUT,
        max_retry_seconds=DEFAULT_MAX_RETRY_SECONDS,
    ) as client:
        rows = export_month(
            client,
            out,
            days=[JUNE14, JUNE15],
            project_names=client.project_names(),
            organization_id=ORG,
            organization_name="Acme (from the setting)",
        )
    assert rows == 4
    # The bucket with results has ISO times without an offset, the empty one with +00:00:
    # both are the day's UTC start, as its Unix time says.
    assert [b["start_time_iso"] for b in _buckets(live)] == [
        "2026-06-14T00:00:00",
        "2026-06-15T00:00:00+00:00",
    ]
    assert out.getvalue().decode().splitlines() == [
        ",".join(CURRENT_COLUMNS),
        # project_name and organization_name from the result, over the projects list and
        # the setting; user_email carried into its column.
        f'{TIMES14},0.0000045,usd,30,tokens,"{ITEM}, input",user-Q1,key_A1,proj_live,org-acme,'
        'Live App,"Acme, Inc.",dev@example.com,',
        f'{TIMES14},0,usd,0,tokens,"{ITEM}, cached input",,,proj_live,org-acme,Live App,'
        '"Acme, Inc.",,',
        # A null project_name and organization_name: the projects list and the setting.
        f'{TIMES14},0.0000342,usd,57,tokens,"{ITEM}, output",,,proj_live,org-acme,'
        "Name in the projects list,Acme (from the setting),,",
        TIMES15 + "," * 13,
    ]


def _buckets(fake: FakeOpenAI) -> list[dict]:
    import httpx

    response = httpx.get(
        f"{fake.url}/v1/organization/costs?start_time={T14}&end_time={T14 + 2 * 86400}"
        "&group_by[]=line_item&group_by[]=project_id&limit=2",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    return list(response.json()["data"])


def test_the_live_response_through_the_tap_is_a_nine_column_month(monkeypatch, capsys, live):
    records, _ = run_api_tap(monkeypatch, capsys, live, date(2026, 6, 16), start_month="2026-06")
    june = built_months(records)["2026-06"].decode().splitlines()
    assert june[0] == (
        "start_time,end_time,amount_value,amount_currency,line_item,project_id,"
        "organization_id,project_name,organization_name"
    )
    assert june[14:] == [
        f'1781395200,1781481600,0.0000045,usd,"{ITEM}, input",proj_live,org-acme,Live App,'
        '"Acme, Inc."',
        f'1781395200,1781481600,0,usd,"{ITEM}, cached input",proj_live,org-acme,Live App,'
        '"Acme, Inc."',
        f'1781395200,1781481600,0.0000342,usd,"{ITEM}, output",proj_live,org-acme,'
        'Name in the projects list,"Acme, Inc."',
        "1781481600,1781568000,,,,,,,",
    ]
    (seal,) = [m["record"] for m in records if m["stream"] == "cost_months"]
    assert seal["total_usd"] == "0.0000387"
    assert seal["complete"] is True
    assert seal["source_files"] == [f"{live.url}/v1/organization/costs"]
    typed = [
        (r["amount_value"], r["quantity"], r["user_email"])
        for r in (m["record"] for m in records if m["stream"] == "costs")
        if r["day"] == "2026-06-14"
    ]
    assert typed == [
        ("0.0000045", "30", "dev@example.com"),
        ("0", "0", None),
        ("0.0000342", "57", None),
    ]


def test_unknown_fields_are_named_once_a_run_without_their_values(
    monkeypatch, capsys, live, caplog
):
    live.costs = {
        T14: [
            {
                **result("1.5", project_id="proj_live"),
                "service_tier": "flex",
                "reviewer_email": "boss@example.com",
            }
        ],
        # Another month: the same names again, said once all the same.
        T14 - 30 * 86400: [{**result("2", project_id="proj_live"), "service_tier": "default"}],
    }
    live.bucket_edits[T14] = lambda bucket: {**bucket, "granularity": "1d"}
    with caplog.at_level(logging.WARNING):
        run_api_tap(monkeypatch, capsys, live, date(2026, 6, 16), start_month="2026-05")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "OpenAI's Costs API sent field(s) this tap does not use, ignored: bucket.granularity, "
        "result.reviewer_email, result.service_tier (not an error; values not shown)"
    ]
    shown = caplog.text + capsys.readouterr().err
    for value in ("boss@example.com", "flex", "default"):
        assert value not in shown


def test_field_notes_say_each_name_once():
    notes = FieldNotes()
    log = logging.getLogger("tests.field_notes")
    notes.note("result", ["b", "a"])
    notes.note("result", ["a"])
    with pytest.MonkeyPatch.context() as patch:
        said: list[str] = []
        patch.setattr(log, "warning", lambda message, *args: said.append(message % args))
        notes.say(log)
        notes.say(log)
        notes.note("bucket", ["c"])
        notes.say(log)
    assert said == [
        "OpenAI's Costs API sent field(s) this tap does not use, ignored: result.a, result.b "
        "(not an error; values not shown)",
        "OpenAI's Costs API sent field(s) this tap does not use, ignored: bucket.c (not an "
        "error; values not shown)",
    ]
