"""A ``costs`` record as a FOCUS 1.2 CostAndUsage row (the ``focus_costs`` stream).

Built from the ``costs`` record itself, so both streams say the same: ``BilledCost`` is
the record's ``amount_value`` text, and the four cost columns are that same text (OpenAI's
cost data carries no list, contracted or amortized price: what it bills is all there is).
Idle-day records (no amount) have no FOCUS row. Every rule is in docs/focus.md, column by
column; the FinOps Foundation's validator checks the result (tests/test_focus.py).
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from singer_sdk import typing as th

from openai_costs.contract import FOCUS_COSTS
from openai_costs.export import format_decimal
from tap_openai_costs.focus.line_items import LineItem, UnknownSpellings, parse

STREAM = FOCUS_COSTS
PROVIDER = "OpenAI"
SERVICE_NAME = "OpenAI API"
SERVICE_CATEGORY = "AI and Machine Learning"
SERVICE_SUBCATEGORY = "Generative AI"
#: What PricingQuantity and PricingUnit hold for a row without OpenAI's quantity (the
#: nine-column exports): the row is one line item's charge for one day.
NO_QUANTITY = ("1.0", "Line Item-Days")
#: ChargeDescription of a row without a line item (exports grouped by project only, rows
#: that total an organization's day): FOCUS wants a description on every row.
NOT_ITEMIZED = "OpenAI usage, not itemized by line item"
#: OpenAI's ``quantity_unit`` values (an open enum in its API spec) in FOCUS's UnitFormat;
#: any other value is carried as OpenAI spells it.
UNITS = {
    "tokens": "Tokens",
    "1000_tokens": "1000 Tokens",
    "duration_seconds": "Seconds",
    "duration_minutes": "Minutes",
    "duration_hours": "Hours",
    "gibibyte_hours": "GiB-Hours",
    "images": "Images",
    "characters": "Characters",
}
_PLAIN = re.compile(r"-?[0-9]+(\.[0-9]+)?").fullmatch

_TEXT = th.StringType(nullable=True)


def _text(name: str, description: str, *, required: bool = False) -> th.Property[Any]:
    return th.Property(
        name, th.StringType if required else _TEXT, required=required, description=description
    )


class _DecimalText(th.StringType):
    """Exact decimal text: NUMERIC in the SDK's SQL loaders, the text itself elsewhere."""

    string_format = "x-singer.decimal"


def _decimal(name: str, description: str, *, required: bool = False) -> th.Property[Any]:
    kind = _DecimalText if required else _DecimalText(nullable=True)
    return th.Property(name, kind, required=required, description=description)


def _instant(name: str, description: str) -> th.Property[Any]:
    """FOCUS's DateTimeFormat (``2025-10-05T00:00:00Z``) as text: a loader that parses a
    ``date-time`` writes it back in its own form (target-csv: ``2025-10-05 00:00:00+00:00``)."""
    return th.Property(
        name,
        th.StringType(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T00:00:00Z$"),
        required=True,
        description=f"{description}, as FOCUS writes it: YYYY-MM-DDTHH:mm:ssZ (text)",
    )


_SAME_AS_BILLED = "The same text as BilledCost: OpenAI publishes no other price in its cost data"

SCHEMA = th.PropertiesList(
    _decimal(
        "BilledCost",
        "The row's amount, exact decimal text as the costs record's amount_value",
        required=True,
    ),
    _text("BillingAccountId", "The OpenAI organization (org-...)", required=True),
    _text(
        "BillingAccountName",
        "The organization's name in the row (its id when the row has none)",
        required=True,
    ),
    _text("BillingCurrency", "USD (OpenAI bills in US dollars)", required=True),
    _instant("BillingPeriodStart", "The month's first instant (UTC)"),
    _instant("BillingPeriodEnd", "The next month's first instant (UTC), exclusive"),
    _text("ChargeCategory", "Usage", required=True),
    _text("ChargeClass", "Null: no row is a correction of an invoiced period"),
    _text(
        "ChargeDescription",
        f"OpenAI's line item, whole; '{NOT_ITEMIZED}' when the row has none",
        required=True,
    ),
    _text("ChargeFrequency", "Usage-Based", required=True),
    _instant("ChargePeriodStart", "The day's start (UTC)"),
    _instant("ChargePeriodEnd", "The next day's start (UTC), exclusive"),
    _decimal("ConsumedQuantity", "OpenAI's quantity, when the row has one with a unit"),
    _text("ConsumedUnit", "OpenAI's quantity_unit in FOCUS's unit format, with the quantity"),
    _decimal("ContractedCost", _SAME_AS_BILLED, required=True),
    _decimal("EffectiveCost", _SAME_AS_BILLED, required=True),
    _text("InvoiceId", "Null: OpenAI's cost data names no invoice"),
    _text("InvoiceIssuerName", "OpenAI", required=True),
    _decimal("ListCost", _SAME_AS_BILLED, required=True),
    _decimal(
        "PricingQuantity",
        "OpenAI's quantity; 1.0 (one line item for one day) when the row has none",
        required=True,
    ),
    _text(
        "PricingUnit",
        "OpenAI's quantity_unit in FOCUS's unit format; Line Item-Days without a quantity",
        required=True,
    ),
    _text("ProviderName", "OpenAI", required=True),
    _text("PublisherName", "OpenAI", required=True),
    _text("ServiceCategory", SERVICE_CATEGORY, required=True),
    _text("ServiceName", SERVICE_NAME, required=True),
    _text("ServiceSubcategory", SERVICE_SUBCATEGORY, required=True),
    _text("SubAccountId", "The OpenAI project (proj_...), null for organization-level rows"),
    _text("SubAccountName", "The project's name (its id when the row has none)"),
    th.Property(
        "x_Month", th.StringType, required=True, description="YYYY-MM, as the costs record's"
    ),
    _text(
        "x_MonthVersion",
        "The sending of the month, as the costs record's month_version: current rows are "
        "those of the version the month's cost_months seal names",
        required=True,
    ),
    th.Property(
        "x_CostsRow",
        th.IntegerType,
        required=True,
        description="The costs record's row: this row's place in its month's version",
    ),
    _text("x_Model", "The model in the line item"),
    _text("x_UsageKind", "input, output, cached input, audio, audio input, ..."),
    _text("x_ServiceTier", "The tier before ' | ' (priority, batch)"),
    _text("x_ContextTier", "long context"),
    _text("x_Tool", "web search tool calls, Vector storage"),
    _text("x_Options", "The line item's other known parts (standard, 1024x1024, med)"),
    _decimal("x_Quantity", "OpenAI's quantity, exact text as the costs record's"),
    _text("x_QuantityUnit", "OpenAI's quantity_unit, as written"),
    _text("x_UserId", "OpenAI's user_id"),
    _text("x_ApiKeyId", "OpenAI's api_key_id"),
    _text(
        "x_UserEmail",
        "OpenAI's user_email, only when the focus_user_email setting allows it (personal data)",
    ),
    _text("x_ApiSource", "OpenAI's api_source"),
).to_dict()

COLUMNS = tuple(SCHEMA["properties"])


def _instant_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.cache
def _instant_of(unix_seconds: int) -> str:
    return _instant_text(datetime.fromtimestamp(unix_seconds, timezone.utc))


@functools.cache
def billing_period(month: str) -> tuple[str, str]:
    """The month as FOCUS's half-open billing period: its start and the next month's."""
    year, number = int(month[:4]), int(month[5:])
    start = date(year, number, 1)
    end = date(year + number // 12, number % 12 + 1, 1)
    return f"{start.isoformat()}T00:00:00Z", f"{end.isoformat()}T00:00:00Z"


def decimal_text(text: str) -> str | None:
    """A quantity as FOCUS's Decimal type reads it: plain digits with a decimal point
    (``1000`` is ``1000.0``, ``1E+3`` is ``1000.0``); None if it is no number."""
    if not _PLAIN(text):
        try:
            value = Decimal(text)
        except InvalidOperation:
            return None
        if not value.is_finite():
            return None
        text = format_decimal(value)
    return text if "." in text else f"{text}.0"


class FocusRows:
    """Turns ``costs`` records into FOCUS rows; counts unknown line item spellings."""

    def __init__(self, *, user_email: bool) -> None:
        self.user_email = user_email
        self.unknown = UnknownSpellings()

    def row(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The FOCUS row of a costs record; None for an idle-day record (no amount)."""
        amount = record.get("amount_value")
        if amount is None:
            return None
        get = record.get
        organization = record["organization"]
        project = get("project_id")
        text = get("line_item")
        item = parse(text) if text else None
        if text and item is None:
            self.unknown.add(text)
        quantity, unit = get("quantity"), get("quantity_unit")
        consumed = consumed_unit = None
        if quantity and unit:
            consumed = decimal_text(quantity)
            consumed_unit = UNITS.get(unit, unit) if consumed is not None else None
        period_start, period_end = billing_period(record["month"])
        parts = item or _NO_PARTS
        return {
            "BilledCost": amount,
            "BillingAccountId": organization,
            "BillingAccountName": get("organization_name") or organization,
            "BillingCurrency": "USD",
            "BillingPeriodStart": period_start,
            "BillingPeriodEnd": period_end,
            "ChargeCategory": "Usage",
            "ChargeClass": None,
            "ChargeDescription": text or NOT_ITEMIZED,
            "ChargeFrequency": "Usage-Based",
            "ChargePeriodStart": _instant_of(record["start_time"]),
            "ChargePeriodEnd": _instant_of(record["end_time"]),
            "ConsumedQuantity": consumed,
            "ConsumedUnit": consumed_unit,
            "ContractedCost": amount,
            "EffectiveCost": amount,
            "InvoiceId": None,
            "InvoiceIssuerName": PROVIDER,
            "ListCost": amount,
            "PricingQuantity": consumed if consumed is not None else NO_QUANTITY[0],
            "PricingUnit": consumed_unit if consumed is not None else NO_QUANTITY[1],
            "ProviderName": PROVIDER,
            "PublisherName": PROVIDER,
            "ServiceCategory": SERVICE_CATEGORY,
            "ServiceName": SERVICE_NAME,
            "ServiceSubcategory": SERVICE_SUBCATEGORY,
            "SubAccountId": project or None,
            "SubAccountName": (get("project_name") or project) if project else None,
            "x_Month": record["month"],
            "x_MonthVersion": record["month_version"],
            "x_CostsRow": record["row"],
            "x_Model": parts.model,
            "x_UsageKind": parts.usage_kind,
            "x_ServiceTier": parts.service_tier,
            "x_ContextTier": parts.context_tier,
            "x_Tool": parts.tool,
            "x_Options": parts.options,
            "x_Quantity": quantity or None,
            "x_QuantityUnit": unit or None,
            "x_UserId": get("user_id") or None,
            "x_ApiKeyId": get("api_key_id") or None,
            "x_UserEmail": (get("user_email") or None) if self.user_email else None,
            "x_ApiSource": get("api_source") or None,
        }


_NO_PARTS = LineItem()
