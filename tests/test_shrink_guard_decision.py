"""The shrink guard's decision in process: whether a month may replace the copy uploaded
before, why not (the exact line a user reads), and the record of an upload it decides on."""

from __future__ import annotations

from decimal import Decimal

import pytest

from target_pelanor.shrink_guard import Uploaded, refusal, tolerance

#: October as uploaded before: two rows a day.
BEFORE = Uploaded(rows=62, days=31, total=Decimal("42.6"), rows_digest="before")
ADVICE = (
    "; a cut download or an older export? Export the whole month again, or set "
    "allow_shrinking_months to replace it anyway"
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
    assert refusal(BEFORE, candidate) is None


def test_fewer_days_rows_and_dollars_are_all_named_in_one_line():
    assert refusal(BEFORE, now(rows=46, days=23, total="30.1")) == (
        "is smaller than the copy uploaded before: 46 rows, 23 days, 30.1 USD against 62 "
        "rows, 31 days, 42.6 USD (8 fewer day(s), 16 fewer row(s), 12.5 USD less, more than "
        "the 0.21 USD tolerance)" + ADVICE
    )


def test_one_row_fewer_is_refused_even_with_the_same_total():
    assert refusal(BEFORE, now(rows=61)) == (
        "is smaller than the copy uploaded before: 61 rows, 31 days, 42.6 USD against 62 "
        "rows, 31 days, 42.6 USD (1 fewer row(s))" + ADVICE
    )


def test_a_total_lower_by_more_than_the_tolerance_is_refused():
    assert refusal(BEFORE, now(total="42.386")) == (
        "is smaller than the copy uploaded before: 62 rows, 31 days, 42.386 USD against 62 "
        "rows, 31 days, 42.6 USD (0.214 USD less, more than the 0.21 USD tolerance)" + ADVICE
    )


def test_a_tiny_month_is_allowed_a_cent_less_and_no_more():
    tiny = Uploaded(rows=2, days=1, total=Decimal("0.50"), rows_digest="tiny")
    assert refusal(tiny, Uploaded(2, 1, Decimal("0.49"), "now")) is None
    assert refusal(tiny, Uploaded(2, 1, Decimal("0.489"), "now")) == (
        "is smaller than the copy uploaded before: 2 rows, 1 days, 0.489 USD against 2 rows, "
        "1 days, 0.50 USD (0.011 USD less, more than the 0.01 USD tolerance)" + ADVICE
    )


def test_a_month_of_credits_may_not_fall_further_than_its_tolerance():
    credits = Uploaded(rows=2, days=1, total=Decimal("-10"), rows_digest="credits")
    assert refusal(credits, Uploaded(2, 1, Decimal("-10.05"), "now")) is None
    assert refusal(credits, Uploaded(2, 1, Decimal("-10.06"), "now")) == (
        "is smaller than the copy uploaded before: 2 rows, 1 days, -10.06 USD against 2 rows, "
        "1 days, -10 USD (0.06 USD less, more than the 0.05 USD tolerance)" + ADVICE
    )


@pytest.mark.parametrize(
    ("total", "allowed"),
    [("42.6", "0.2130"), ("1000", "5.000"), ("-10", "0.050"), ("0.5", "0.01"), ("0", "0.01")],
)
def test_the_tolerance_is_half_a_percent_of_the_total_and_at_least_a_cent(total, allowed):
    assert tolerance(Uploaded(1, 1, Decimal(total), "")) == Decimal(allowed)


# -- the record of an upload ----------------------------------------------------------------


def test_an_upload_is_kept_in_state_as_ints_and_decimal_text():
    uploaded = Uploaded(rows=62, days=31, total=Decimal("0.10000000000000000555"), rows_digest="d")
    assert uploaded.to_state() == {
        "rows": 62,
        "days": 31,
        "total_usd": "0.10000000000000000555",
        "rows_digest": "d",
    }
    assert Uploaded.from_state(uploaded.to_state()) == uploaded


def test_a_tiny_total_is_kept_as_plain_text_never_an_exponent():
    assert Uploaded(1, 1, Decimal("1E-8"), "d").to_state()["total_usd"] == "0.00000001"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "62 rows",
        {"rows": "62", "days": 31, "total_usd": "42.6", "rows_digest": "d"},
        {"rows": 62, "days": 31.0, "total_usd": "42.6", "rows_digest": "d"},
        {"rows": 62, "days": 31, "total_usd": 42.6, "rows_digest": "d"},
        {"rows": 62, "days": 31, "total_usd": "42.6"},
        {"rows": 62, "days": 31, "total_usd": "forty", "rows_digest": "d"},
        {"rows": 62, "days": 31, "total_usd": "NaN", "rows_digest": "d"},
        {"rows": 62, "days": 31, "total_usd": "Infinity", "rows_digest": "d"},
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
        "infinite",
    ],
)
def test_a_record_this_target_did_not_write_is_not_read_as_one(value):
    assert Uploaded.from_state(value) is None
