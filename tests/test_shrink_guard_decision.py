"""The shrink guard's decision in process: whether a month may replace the copy uploaded
before, why not (the exact line a user reads), and the record of an upload it decides on."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from target_pelanor.shrink_guard import (
    Remembered,
    UnreadableRecord,
    Uploaded,
    read_record,
    refusal,
    tolerance,
)

UTC = timezone.utc
MONTH = "2025-10"
PELANOR = "https://api.pelanor.io"
UPLOADED_AT = datetime(2025, 11, 3, 6, 30, tzinfo=UTC)
#: October as uploaded before: two rows a day.
BEFORE = Remembered(
    Uploaded(rows=62, days=31, total=Decimal("42.6"), rows_digest="before"),
    "the state",
    PELANOR,
    UPLOADED_AT,
)
ORIGIN = "uploaded to https://api.pelanor.io at 2025-11-03 06:30:00 UTC, remembered in the state"
ADVICE = (
    "; a cut download or an older export? Export the whole month again, or list 2025-10 in "
    "allow_shrinking_months to replace it anyway"
)


def remembered(rows: int, days: int, total: str) -> Remembered:
    return Remembered(
        Uploaded(rows, days, Decimal(total), "before"), "the state", PELANOR, UPLOADED_AT
    )


def now(rows: int = 62, days: int = 31, total: str = "42.6") -> Uploaded:
    return Uploaded(rows=rows, days=days, total=Decimal(total), rows_digest="now")


# -- what may replace a month ---------------------------------------------------------------


@pytest.mark.parametrize(
    "candidate",
    [
        now(),
        now(rows=63, days=31, total="43.1"),  # a restated month that grew
        now(total="42.387"),  # 0.213 USD less: exactly the tolerance (0.5% of 42.6)
        now(total="9999"),
    ],
    ids=["same counts, other rows", "larger", "lower within tolerance", "much higher"],
)
def test_a_month_no_smaller_than_before_may_replace_it(candidate):
    assert refusal(BEFORE, candidate, MONTH) is None


def test_fewer_days_rows_and_dollars_are_all_named_in_one_line():
    assert refusal(BEFORE, now(rows=46, days=23, total="30.1"), MONTH) == (
        f"is smaller than the copy {ORIGIN}: 46 rows, 23 days, 30.1 USD against 62 "
        "rows, 31 days, 42.6 USD (8 fewer day(s), 16 fewer row(s), 12.5 USD less, more than "
        "the 0.213 USD tolerance)" + ADVICE
    )


def test_one_row_fewer_is_refused_even_with_the_same_total():
    assert refusal(BEFORE, now(rows=61), MONTH) == (
        f"is smaller than the copy {ORIGIN}: 61 rows, 31 days, 42.6 USD against 62 "
        "rows, 31 days, 42.6 USD (1 fewer row(s))" + ADVICE
    )


def test_a_total_lower_by_more_than_the_tolerance_is_refused():
    assert refusal(BEFORE, now(total="42.386"), MONTH) == (
        f"is smaller than the copy {ORIGIN}: 62 rows, 31 days, 42.386 USD against 62 "
        "rows, 31 days, 42.6 USD (0.214 USD less, more than the 0.213 USD tolerance)" + ADVICE
    )


def test_a_tiny_month_is_allowed_a_cent_less_and_no_more():
    tiny = remembered(rows=2, days=1, total="0.50")
    assert refusal(tiny, Uploaded(2, 1, Decimal("0.49"), "now"), MONTH) is None
    assert refusal(tiny, Uploaded(2, 1, Decimal("0.489"), "now"), MONTH) == (
        f"is smaller than the copy {ORIGIN}: 2 rows, 1 days, 0.489 USD against 2 rows, "
        "1 days, 0.50 USD (0.011 USD less, more than the 0.01 USD tolerance)" + ADVICE
    )


def test_totals_are_compared_to_the_last_digit():
    """0.01 USD and one 10^-30 less is more than the cent allowed (a 28-digit context
    would round the difference to the cent and let it through)."""
    tiny = remembered(rows=2, days=1, total="2")
    assert refusal(tiny, Uploaded(2, 1, Decimal("1.99"), "now"), MONTH) is None
    assert refusal(
        tiny, Uploaded(2, 1, Decimal("1.989999999999999999999999999999"), "now"), MONTH
    ) == (
        f"is smaller than the copy {ORIGIN}: 2 rows, 1 days, 1.989999999999999999999999999999 "
        "USD against 2 rows, 1 days, 2 USD (0.010000000000000000000000000001 USD less, more "
        "than the 0.01 USD tolerance)" + ADVICE
    )
    large = remembered(rows=2, days=1, total="1000000000000000000000000000.000000001")
    assert tolerance(large.uploaded) == Decimal("5000000000000000000000000.000000000005")


def test_a_month_of_credits_may_not_fall_further_than_its_tolerance():
    credits = remembered(rows=2, days=1, total="-10")
    assert refusal(credits, Uploaded(2, 1, Decimal("-10.05"), "now"), MONTH) is None
    assert refusal(credits, Uploaded(2, 1, Decimal("-10.06"), "now"), MONTH) == (
        f"is smaller than the copy {ORIGIN}: 2 rows, 1 days, -10.06 USD against 2 rows, "
        "1 days, -10 USD (0.06 USD less, more than the 0.05 USD tolerance)" + ADVICE
    )


@pytest.mark.parametrize(
    ("total", "allowed"),
    [("42.6", "0.2130"), ("1000", "5.000"), ("-10", "0.050"), ("0.5", "0.01"), ("0", "0.01")],
)
def test_the_tolerance_is_half_a_percent_of_the_total_and_at_least_a_cent(total, allowed):
    assert tolerance(Uploaded(1, 1, Decimal(total), "")) == Decimal(allowed)


# -- the record of an upload ----------------------------------------------------------------


def test_an_upload_is_kept_in_state_as_ints_and_decimal_text_with_where_and_when():
    uploaded = Uploaded(rows=62, days=31, total=Decimal("0.10000000000000000555"), rows_digest="d")
    record = Remembered(uploaded, "the state", PELANOR, UPLOADED_AT).to_state()
    assert record == {
        "rows": 62,
        "days": 31,
        "total_usd": "0.10000000000000000555",
        "rows_digest": "d",
        "endpoint": PELANOR,
        "uploaded_at": "2025-11-03T06:30:00Z",
    }
    assert read_record(record, "the state") == Remembered(
        uploaded, "the state", PELANOR, UPLOADED_AT
    )


def test_a_tiny_total_is_kept_as_plain_text_never_an_exponent():
    assert Uploaded(1, 1, Decimal("1E-8"), "d").to_state()["total_usd"] == "0.00000001"


def test_a_record_of_an_earlier_version_says_it_does_not_know_where_or_when():
    old = read_record({"rows": 62, "days": 31, "total_usd": "42.6", "rows_digest": "d"}, "x")
    assert old.origin() == "remembered in x, by an earlier version that did not note where or when"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "it is null, not a map"),
        ("62 rows", "it is text, not a map"),
        (
            {"rows": "62", "days": 31, "total_usd": "42.6", "rows_digest": "d"},
            'rows is "62", not a whole number of rows',
        ),
        (
            {"rows": 62, "days": 31.0, "total_usd": "42.6", "rows_digest": "d"},
            "days is 31.0, not a whole number of days",
        ),
        (
            {"rows": 62, "days": 31, "total_usd": 42.6, "rows_digest": "d"},
            "total_usd is 42.6, not decimal text",
        ),
        ({"rows": 62, "days": 31, "total_usd": "42.6"}, "rows_digest is null, not text"),
        (
            {"rows": 62, "days": 31, "total_usd": "forty", "rows_digest": "d"},
            'total_usd "forty" is not plain decimal text',
        ),
        (
            {"rows": 62, "days": 31, "total_usd": "NaN", "rows_digest": "d"},
            'total_usd "NaN" is not plain decimal text',
        ),
        (
            {"rows": 62, "days": 31, "total_usd": "1e999", "rows_digest": "d"},
            'total_usd "1e999" is not plain decimal text',
        ),
        (
            {"rows": 1, "days": 1, "total_usd": "1000000001", "rows_digest": "d"},
            'total_usd "1000000001" is more than 1 row(s) can add up to',
        ),
    ],
    ids=[
        "none",
        "text",
        "rows as text",
        "days as float",
        "total as number",
        "no digest",
        "total not a number",
        "NaN",
        "an exponent",
        "beyond what its rows can hold",
    ],
)
def test_a_record_this_target_did_not_write_is_unreadable_with_the_reason(value, reason):
    with pytest.raises(UnreadableRecord) as unreadable:
        read_record(value, "the state")
    assert str(unreadable.value) == reason


# -- what the refusal says ---------------------------------------------------------------------


def test_a_costs_api_month_reported_lower_is_called_openais_restatement():
    assert refusal(BEFORE, now(total="40"), MONTH, from_api=True) == (
        f"is smaller than the copy {ORIGIN}: 62 rows, 31 days, 40 USD against 62 rows, 31 "
        "days, 42.6 USD (2.6 USD less, more than the 0.213 USD tolerance); OpenAI's Costs API "
        "now reports this month lower than when it was uploaded (OpenAI restated it). If the "
        "lower figures are right, list 2025-10 in allow_shrinking_months to upload it"
    )


def test_more_rows_with_a_lower_total_is_called_a_credit():
    assert refusal(BEFORE, now(rows=63, total="40"), MONTH) == (
        f"is smaller than the copy {ORIGIN}: 63 rows, 31 days, 40 USD against 62 rows, 31 "
        "days, 42.6 USD (2.6 USD less, more than the 0.213 USD tolerance), although it has 1 "
        "more row(s): a credit or refund (a negative amount) lowers the total; if OpenAI "
        "booked one, list 2025-10 in allow_shrinking_months to upload it, otherwise export "
        "the whole month again"
    )
