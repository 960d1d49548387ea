"""The focus_costs stream: OpenAI's cost rows as FOCUS 1.2 CostAndUsage rows.

Pure logic first (line items read into their parts, a costs record as a FOCUS row), then
the tap end to end: not selected by default; selected, every layout the tap reads and a
Costs API month go to CSV both directly and through meltanolabs-target-csv, the month sums
equal the seals to the last digit, and the FinOps Foundation's own validator
(focus-validator, tests/focus_validator.py) finds no failed MUST rule, in one run.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from local_sandboxes.openai_costs_api import live_result, number, project
from openai_costs.export import REQUIRED_COLUMNS, month_days
from tap_openai_costs.focus.line_items import LineItem, parse
from tap_openai_costs.focus.rows import COLUMNS, FocusRows, billing_period, decimal_text
from tests.api_tap import KEY, api_tap
from tests.docs import block
from tests.exports import NEW, OLD, cost, export, times, write
from tests.focus_validator import duckdb, validate
from tests.loaders import loader_executable
from tests.singer import Run, every_stream_selected, run

# Pure logic.

KNOWN_SPELLINGS = {
    "gpt-4o-2024-08-06, input": LineItem("gpt-4o-2024-08-06", "input"),
    "gpt-4o-mini, cached input": LineItem("gpt-4o-mini", "cached input"),
    "gpt-5-nano, input_tokens": LineItem("gpt-5-nano", "input"),
    "priority | gpt-5.6-sol, output, long context": LineItem(
        "gpt-5.6-sol", "output", "priority", "long context"
    ),
    "batch | gpt-4o-2024-08-06, output": LineItem("gpt-4o-2024-08-06", "output", "batch"),
    "web search tool calls | gpt-4o mini, med": LineItem(
        "gpt-4o mini", tool="web search tool calls", options="med"
    ),
    "web search tool calls": LineItem(tool="web search tool calls"),
    "dall-e 3, standard, 1024x1024": LineItem("dall-e 3", options="standard, 1024x1024"),
    "whisper-1, audio": LineItem("whisper-1", "audio"),
    "gpt-audio-mini-2025-12-15 audio, input": LineItem("gpt-audio-mini-2025-12-15", "audio input"),
    "ft-gpt-4o-2024-08-06, input": LineItem("ft-gpt-4o-2024-08-06", "input"),
    'ft:gpt-4o-mini-2024-07-18:acme:"support":A1b2, input': LineItem(
        'ft:gpt-4o-mini-2024-07-18:acme:"support":A1b2', "input"
    ),
    "Vector storage": LineItem(tool="Vector storage"),
    "ada v2": LineItem("ada v2"),
    # A model never seen before is no new spelling: what follows it is known.
    "gpt-7-preview, output": LineItem("gpt-7-preview", "output"),
}
UNKNOWN_SPELLINGS = [
    "gpt-4o, cache write",
    "flex | gpt-4o, input",
    "gpt-4o",
    "gpt-audio audio",
    "gpt-4o, input, input",
    "image generation",
]


@pytest.mark.parametrize("text", list(KNOWN_SPELLINGS))
def test_known_line_item_spellings_are_read_into_their_parts(text) -> None:
    assert parse(text) == KNOWN_SPELLINGS[text]


@pytest.mark.parametrize("text", UNKNOWN_SPELLINGS)
def test_a_line_item_spelling_not_seen_before_is_not_guessed(text) -> None:
    assert parse(text) is None


def costs_record(**values: Any) -> dict[str, Any]:
    """A costs record as the tap writes it for a current (17-column) export row."""
    return {
        "organization": "org-acme",
        "month": "2025-12",
        "month_version": "20260101T000000.000000Z-0001",
        "row": 7,
        "day": "2025-12-31",
        "start_time": 1767139200,
        "end_time": 1767225600,
        "start_time_iso": "2025-12-31T00:00:00+00:00",
        "end_time_iso": "2026-01-01T00:00:00+00:00",
        "amount_value": "0.34090000000000000",
        "amount_currency": "usd",
        "quantity": "1000",
        "quantity_unit": "1000_tokens",
        "line_item": "priority | gpt-5.6-sol, output, long context",
        "user_id": "user-Q1",
        "api_key_id": "key_A1",
        "project_id": "proj_abc",
        "organization_id": "org-acme",
        "project_name": "Acme App",
        "organization_name": "Acme, Inc.",
        "user_email": "dev@example.com",
        "api_source": "responses",
        "csv_row": "(not read)",
    } | values


def test_a_costs_record_is_one_focus_row_with_the_amount_text_as_billed_cost() -> None:
    row = FocusRows(user_email=False).row(costs_record())
    assert row == {
        "BilledCost": "0.34090000000000000",
        "BillingAccountId": "org-acme",
        "BillingAccountName": "Acme, Inc.",
        "BillingCurrency": "USD",
        "BillingPeriodStart": "2025-12-01T00:00:00Z",
        "BillingPeriodEnd": "2026-01-01T00:00:00Z",
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeDescription": "priority | gpt-5.6-sol, output, long context",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodStart": "2025-12-31T00:00:00Z",
        "ChargePeriodEnd": "2026-01-01T00:00:00Z",
        "ConsumedQuantity": "1000.0",
        "ConsumedUnit": "1000 Tokens",
        "ContractedCost": "0.34090000000000000",
        "EffectiveCost": "0.34090000000000000",
        "InvoiceId": None,
        "InvoiceIssuerName": "OpenAI",
        "ListCost": "0.34090000000000000",
        "PricingQuantity": "1000.0",
        "PricingUnit": "1000 Tokens",
        "ProviderName": "OpenAI",
        "PublisherName": "OpenAI",
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": "OpenAI API",
        "ServiceSubcategory": "Generative AI",
        "SubAccountId": "proj_abc",
        "SubAccountName": "Acme App",
        "x_Month": "2025-12",
        "x_MonthVersion": "20260101T000000.000000Z-0001",
        "x_CostsRow": 7,
        "x_Model": "gpt-5.6-sol",
        "x_UsageKind": "output",
        "x_ServiceTier": "priority",
        "x_ContextTier": "long context",
        "x_Tool": None,
        "x_Options": None,
        "x_Quantity": "1000",
        "x_QuantityUnit": "1000_tokens",
        "x_UserId": "user-Q1",
        "x_ApiKeyId": "key_A1",
        "x_UserEmail": None,
        "x_ApiSource": "responses",
    }
    assert list(row) == list(COLUMNS)


def test_user_email_is_carried_only_when_the_setting_allows_it() -> None:
    assert FocusRows(user_email=True).row(costs_record())["x_UserEmail"] == "dev@example.com"
    assert FocusRows(user_email=False).row(costs_record())["x_UserEmail"] is None


def test_a_row_without_a_quantity_is_priced_as_one_line_item_for_one_day() -> None:
    nine_columns = {
        "quantity": None,
        "quantity_unit": None,
        "user_id": None,
        "api_key_id": None,
        "user_email": None,
        "api_source": None,
    }
    row = FocusRows(user_email=True).row(costs_record(**nine_columns))
    assert (row["PricingQuantity"], row["PricingUnit"]) == ("1.0", "Line Item-Days")
    assert (row["ConsumedQuantity"], row["ConsumedUnit"]) == (None, None)
    # A quantity without its unit says nothing FOCUS can use: the same.
    row = FocusRows(user_email=True).row(costs_record(quantity_unit=None))
    assert (row["PricingQuantity"], row["PricingUnit"], row["x_Quantity"]) == (
        "1.0",
        "Line Item-Days",
        "1000",
    )


def test_names_fall_back_to_ids_and_organization_rows_have_no_sub_account() -> None:
    row = FocusRows(user_email=False).row(costs_record(project_name=None, organization_name=None))
    assert (row["SubAccountName"], row["BillingAccountName"]) == ("proj_abc", "org-acme")
    row = FocusRows(user_email=False).row(
        costs_record(project_id=None, project_name=None, line_item=None)
    )
    assert (row["SubAccountId"], row["SubAccountName"], row["ChargeDescription"]) == (
        None,
        None,
        "OpenAI usage, not itemized by line item",
    )
    assert row["x_Model"] is None


def test_idle_day_records_have_no_focus_row() -> None:
    assert FocusRows(user_email=False).row(costs_record(amount_value=None)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30.0", "30.0"),
        ("1000", "1000.0"),
        ("1.5E-3", "0.0015"),
        ("1E+3", "1000.0"),
        ("0.000", "0.000"),
        ("many", None),
        ("NaN", None),
    ],
)
def test_quantities_are_written_as_decimals(text, expected) -> None:
    assert decimal_text(text) == expected


def test_the_billing_period_is_the_month_half_open() -> None:
    assert billing_period("2025-12") == ("2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z")
    assert billing_period("2026-02") == ("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")


def test_unknown_spellings_are_counted_once_in_one_warning(caplog) -> None:
    rows = FocusRows(user_email=False)
    for text in ["gpt-4o, cache write", "gpt-4o, input", "gpt-4o, cache write", "image gen"]:
        assert rows.row(costs_record(line_item=text))["ChargeDescription"] == text
    logger = logging.getLogger("test-focus")
    with caplog.at_level(logging.WARNING, logger="test-focus"):
        rows.unknown.say(logger, "focus_costs")
        rows.unknown.say(logger, "focus_costs")  # said once: nothing left to say
    assert [record.getMessage() for record in caplog.records] == [
        "focus_costs: 2 line item spelling(s) the tap does not know yet, kept whole in "
        "ChargeDescription with their x_ line item columns empty: 'gpt-4o, cache write' "
        "(2 rows), 'image gen' (1 row)"
    ]


# The tap end to end.

TARGET_CSV = ("meltanolabs-target-csv", "0.5.0", "target-csv")


def test_focus_costs_is_not_selected_by_default(tmp_path) -> None:
    discovered = json.loads(run("tap-openai-costs", "--discover").stdout)
    (entry,) = [e for e in discovered["streams"] if e["tap_stream_id"] == "focus_costs"]
    (root,) = [m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == []]
    assert root["selected-by-default"] is False
    assert root["selected"] is False
    export_path = write(tmp_path / "cost.csv", export([cost(date(2025, 10, 1))]))
    config = {"organization_id": "org-acme", "paths": [str(export_path)]}
    result = run("tap-openai-costs", config=config, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {m.get("stream") for m in result.messages} == {
        None,
        "costs",
        "cost_months",
        "cost_month_layouts",
    }
    # Only the SDK's line that it skips the stream: nothing is read or written for it.
    assert [
        line.split(" | ", 3)[3] for line in result.stderr.splitlines() if "'focus_costs'" in line
    ] == ["Skipping deselected stream 'focus_costs'."]


def spelled_rows(month: str) -> list[dict[str, str]]:
    """Every known line item spelling and one unknown, on each day; an idle day; rows that
    total the organization's day (no line item, no project)."""
    rows: list[dict[str, str]] = []
    for day in month_days(month):
        if day.day == 5:
            rows.append(times(day))
            continue
        for number_, text in enumerate([*KNOWN_SPELLINGS, "gpt-4o, cache write"]):
            rows.append(cost(day, f"0.00{number_ + 1}1520000000000001", text))
        rows.append(cost(day, "16.693166699999995", "", project_id="", project_name=""))
    return rows


def current_rows(month: str) -> list[dict[str, str]]:
    """The current 17-column export: quantities, users, keys, e-mails."""
    rows: list[dict[str, str]] = []
    for day in month_days(month):
        rows.append(
            cost(
                day,
                "0.8958740000000000",
                quantity="33983.0",
                quantity_unit="tokens",
                user_id="user-Q1",
                api_key_id="key_A1",
                user_email="dev@example.com",
                api_source="responses",
            )
        )
        rows.append(cost(day, "0.23616135", "dall-e 3, standard, 1024x1024", quantity="2"))
        rows.append(
            cost(day, "0.5", "whisper-1, audio", quantity="60", quantity_unit="duration_seconds")
        )
    return rows


def by_project_only(month: str) -> list[dict[str, str]]:
    return [
        cost(day, amount, item="", project_id=project, project_name=name)
        for day in month_days(month)
        for amount, project, name in (
            ("0.019733999999999998", "proj_abc", "Acme App"),
            ("5.5e-05", "proj_def", "Bots"),
        )
    ]


def overlapping(month: str) -> list[list[dict[str, str]]]:
    """Two exports of one month that overlap (days 1-20, then 10-31 restated): the month
    goes out as a draft while the first is read, then again merged."""
    days = month_days(month)
    early = [cost(day, "0.0036963") for day in days[:20]]
    late = [cost(day, "0.005705150000000001", "gpt-4o-mini, cached input") for day in days[9:]]
    return [early, late]


#: One export per layout the tap reads (name, month, rows, columns).
LAYOUTS = [
    ("current 17 columns", "2025-09", current_rows, NEW),
    ("nine columns by line item", "2025-10", spelled_rows, REQUIRED_COLUMNS),
    ("nine columns by project", "2025-11", by_project_only, REQUIRED_COLUMNS),
    ("2025 eleven columns", "2025-12", spelled_rows, OLD),
    ("overlapping exports", "2026-01", overlapping, NEW),
]


def export_run(tmp_path: Path, name: str, month: str, rows: Any, columns: Any) -> Run:
    folder = tmp_path / name.replace(" ", "-")
    files = rows(month)
    paths = [
        write(
            folder / f"cost_{month}_{number}.csv",
            export(part, columns),
            mtime=1_900_000_000 + number,
        )
        for number, part in enumerate(files if isinstance(files[0], list) else [files])
    ]
    config = {
        "organization_id": "org-acme",
        "paths": [str(path) for path in paths],
        "focus_user_email": True,
    }
    catalog = every_stream_selected(folder)
    result = run("tap-openai-costs", "--catalog", str(catalog), config=config, tmp=folder)
    assert result.returncode == 0, result.stderr
    return result


def api_run(tmp_path, monkeypatch, capsys, start_openai) -> list[dict[str, Any]]:
    """A Costs API month (the live API's shape, the wide layout), in process, its FOCUS
    rows written two at a time."""
    t14 = 1781395200
    day = [
        live_result(
            "0.000004500000000000000000000000000000000",
            "gpt-4.1-nano-2025-04-14, input",
            "proj_live",
            "Live App",
            quantity=number("30.0"),
            user_id="user-Q1",
            api_key_id="key_A1",
            user_email="dev@example.com",
        ),
        live_result(
            "0E-6176",
            "gpt-4.1-nano-2025-04-14, cached input",
            "proj_live",
            "Live App",
            quantity=number("0.0"),
        ),
        live_result(
            "0.00003420000000000000000000000000000000",
            "gpt-4.1-nano-2025-04-14, output",
            "proj_live",
            None,
            quantity=number("57.0"),
            organization_name=None,
        ),
    ]
    fake = start_openai({t14: day}, [project("proj_live", "Name in the projects list")], KEY)
    fake.live_buckets = True
    monkeypatch.setattr("tap_openai_costs.focus.stream.CHUNK", 2)
    catalog = json.loads(every_stream_selected(tmp_path).read_text())
    tap = api_tap(
        monkeypatch,
        fake,
        date(2026, 7, 2),
        None,
        catalog=catalog,
        start_month="2026-06",
        api_layout="wide",
    )
    capsys.readouterr()
    tap.sync_all()
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def check_sums_and_amounts(messages: list[dict[str, Any]]) -> int:
    """Per organization and month, BilledCost adds up to the seal exactly, and each FOCUS
    row's BilledCost is its costs row's amount_value text. The number of FOCUS rows."""
    records = defaultdict(list)
    for message in messages:
        if message["type"] == "RECORD":
            records[message["stream"]].append(message["record"])
    amounts = {
        (r["organization"], r["month_version"], r["row"]): r["amount_value"]
        for r in records["costs"]
    }
    totals: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for row in records["focus_costs"]:
        key = (row["BillingAccountId"], row["x_Month"], row["x_MonthVersion"])
        totals[key] += Decimal(row["BilledCost"])
        assert row["BilledCost"] == amounts[(key[0], key[2], row["x_CostsRow"])]
    seals = {
        (s["organization"], s["month"], s["month_version"]): Decimal(s["total_usd"])
        for s in records["cost_months"]
    }
    # A month of idle days only has no FOCUS row, and a seal of 0.
    assert {key: totals.get(key, Decimal(0)) for key in seals} == seals
    # Rows of a version without a seal are a draft's: the month was sent again, sealed.
    sealed_months = {(organization, month) for organization, month, _ in seals}
    assert {(organization, month) for organization, month, _ in totals} <= sealed_months
    assert len(records["focus_costs"]) == sum(
        r["amount_value"] is not None for r in records["costs"]
    )
    return len(records["focus_costs"])


def direct_csv(messages: list[dict[str, Any]]) -> bytes:
    """The focus_costs records written as CSV by the csv module (as target-csv writes)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, dialect="excel")
    writer.writeheader()
    for message in messages:
        if message["type"] == "RECORD" and message["stream"] == "focus_costs":
            writer.writerow(message["record"])
    return out.getvalue().encode()


def test_every_layout_and_an_api_month_pass_the_focus_validator(
    tmp_path, monkeypatch, capsys, start_openai
) -> None:
    messages: list[dict[str, Any]] = []
    for layout in LAYOUTS:
        messages_of = export_run(tmp_path, *layout).messages
        assert check_sums_and_amounts(messages_of) > 0, layout[0]
        messages += messages_of
    api_messages = api_run(tmp_path, monkeypatch, capsys, start_openai)
    assert check_sums_and_amounts(api_messages) == 3
    messages += api_messages

    direct = tmp_path / "direct" / "focus_costs.csv"
    write(direct, direct_csv(messages))
    loaded = tmp_path / "output" / "focus"
    loaded.mkdir(parents=True)
    config = {"output_path": str(loaded)}
    lines = "".join(json.dumps(m) + "\n" for m in messages)
    target_csv = loader_executable(*TARGET_CSV)
    result = run(
        target_csv.name, stdin=lines, config=config, tmp=tmp_path, bin_dir=target_csv.parent
    )
    assert result.returncode == 0, result.stderr
    assert (loaded / "focus_costs.csv").read_bytes() == direct.read_bytes()

    verdict = validate(loaded / "focus_costs.csv")
    assert verdict.failed_must == [], verdict.output
    # "InvoiceId MUST be null without an invoice / MUST NOT be null with one": the
    # validator scores the second half alone (docs/focus.md); nothing else fails.
    assert verdict.failed == ["InvoiceId-C-005-C"], verdict.output
    assert verdict.passed >= 140, verdict.output

    # docs/focus.md: DuckDB keeps the current rows of target-csv's files, as one FOCUS file.
    duckdb(block("sql", "as one FOCUS CSV file", page="docs/focus.md"), cwd=tmp_path)
    current = list(csv.DictReader(io.StringIO((tmp_path / "output" / "focus.csv").read_text())))
    rows = list(csv.DictReader(io.StringIO(direct.read_text())))
    seals = {
        (m["record"]["month"], m["record"]["month_version"]): m["record"]["total_usd"]
        for m in messages
        if m["type"] == "RECORD" and m["stream"] == "cost_months"
    }
    assert current == [row for row in rows if (row["x_Month"], row["x_MonthVersion"]) in seals]
    assert len(current) < len(rows)  # the overlapping month's draft is left out
    current_totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in current:
        current_totals[row["x_Month"]] += Decimal(row["BilledCost"])
    assert {month: str(total) for month, total in current_totals.items()} == {
        month: total for (month, _), total in seals.items() if Decimal(total)
    }

    by_layout = defaultdict(set)
    for row in csv.DictReader(io.StringIO(direct.read_text())):
        by_layout[row["x_Month"]].add((row["PricingUnit"], row["x_UserEmail"]))
    assert by_layout["2025-09"] == {
        ("Tokens", "dev@example.com"),
        ("Line Item-Days", ""),
        ("Seconds", ""),
    }
    assert by_layout["2025-11"] == {("Line Item-Days", "")}
    assert by_layout["2026-06"] == {("Tokens", "")}


def test_an_unknown_spelling_is_one_warning_of_the_tap_run(tmp_path) -> None:
    result = export_run(tmp_path, *LAYOUTS[1])
    warnings = [line for line in result.stderr.splitlines() if "does not know yet" in line]
    assert [line.split(" | ", 3)[3] for line in warnings] == [
        "focus_costs: 1 line item spelling(s) the tap does not know yet, kept whole in "
        "ChargeDescription with their x_ line item columns empty: 'gpt-4o, cache write' "
        "(30 rows)"
    ]


def test_a_focus_only_load_sends_focus_rows_and_seals_and_says_so_in_one_info_line(
    tmp_path,
) -> None:
    """A warehouse that wants FOCUS rows only (and the seals, for the current rows)."""
    catalog_path = every_stream_selected(tmp_path)
    catalog = json.loads(catalog_path.read_text())
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in {
                    "focus_costs",
                    "cost_months",
                }
    catalog_path.write_text(json.dumps(catalog))
    path = write(tmp_path / "oct.csv", export(spelled_rows("2025-10"), REQUIRED_COLUMNS))
    config = {"organization_id": "org-acme", "paths": [str(path)]}
    result = run("tap-openai-costs", "--catalog", str(catalog_path), config=config, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {m["stream"] for m in result.messages if m["type"] == "RECORD"} == {
        "focus_costs",
        "cost_months",
    }
    (seal,) = result.records("cost_months")
    billed = sum(Decimal(row["BilledCost"]) for row in result.records("focus_costs"))
    assert billed == Decimal(seal["total_usd"])
    (line,) = [line for line in result.stderr.splitlines() if "deselected:" in line]
    assert " | INFO     | " in line
