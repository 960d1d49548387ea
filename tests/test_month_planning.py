"""Month planning in process: which export's copy of each day wins, how months are built
from several exports, when a month is complete, and the warning about who won. The scans
are built by hand (what a validation pass would have learnt), so no file is read."""

from __future__ import annotations

from datetime import date

import pytest

from openai_costs.export import (
    DaySlice,
    ExportError,
    ExportScan,
    Layout,
    Row,
    full_days,
    missing_days,
)
from tap_openai_costs.planner import Draft, MonthPlan, by_month, plan_months, which_copy_wins
from tests.exports import NEW, OLD, ORG, days

NEW_LAYOUT = Layout(NEW, ",".join(NEW))
OLD_LAYOUT = Layout(OLD, ",".join(OLD))
#: Modification times (ns): 2001-09-09 01:46:40 UTC and 2033-05-18 03:33:20 UTC.
EARLIER, LATER = 1_000_000_000 * 10**9, 2_000_000_000 * 10**9


def oct_(day: int) -> date:
    return date(2025, 10, day)


def scan(
    path: str,
    first: date,
    last: date,
    *,
    rows: str = "same",
    mtime_ns: int = EARLIER,
    layout: Layout = NEW_LAYOUT,
    without: tuple[date, ...] = (),
) -> ExportScan:
    """An export of ``first`` to ``last``; two exports with the same ``rows`` hold the same
    rows for the days they share."""
    covered = [day for day in days(first, last) if day not in without]
    slices = [DaySlice(day, 0, 0, 2, f"{rows}:{day}") for day in covered]
    return ExportScan(path, layout, 0, mtime_ns, "", slices)


def sources(plan: MonthPlan) -> list[tuple[int, str]]:
    """Each day of the plan and the export it comes from, as (day of month, path)."""
    return [(piece.day.day.day, piece.scan.path) for piece in plan.pieces]


def runs(plan: MonthPlan) -> list[tuple[str, int, int]]:
    """The plan's sources as runs: (path, first day, last day)."""
    found: list[tuple[str, int, int]] = []
    for day, path in sources(plan):
        if found and found[-1][0] == path and found[-1][2] == day - 1:
            found[-1] = (path, found[-1][1], day)
        else:
            found.append((path, day, day))
    return found


# -- which copy of a day wins ---------------------------------------------------------------


def test_the_export_covering_the_latest_day_wins_every_day_it_covers():
    mid = scan("mid.csv", oct_(1), oct_(15), rows="early", mtime_ns=LATER)
    full = scan("full.csv", oct_(1), oct_(31), rows="final", mtime_ns=EARLIER)
    (plan,) = plan_months([mid, full], ORG)
    assert runs(plan) == [("full.csv", 1, 31)]
    assert [(lost.day.day, lost.winner.path, lost.loser.path) for lost in plan.overruled] == [
        (day, "full.csv", "mid.csv") for day in range(1, 16)
    ]


def test_between_exports_ending_on_the_same_day_the_later_modified_wins():
    old = scan("old.csv", oct_(1), oct_(31), rows="first", mtime_ns=EARLIER)
    copy = scan("copy.csv", oct_(1), oct_(31), rows="restated", mtime_ns=LATER)
    (plan,) = plan_months([copy, old], ORG)
    assert runs(plan) == [("copy.csv", 1, 31)]


def test_between_exports_alike_in_range_and_time_the_later_file_name_wins():
    a = scan("a.csv", oct_(1), oct_(31), rows="one")
    b = scan("b.csv", oct_(1), oct_(31), rows="other")
    for order in ([a, b], [b, a]):
        (plan,) = plan_months(order, ORG)
        assert runs(plan) == [("b.csv", 1, 31)]


def test_days_two_exports_hold_alike_are_not_overruled():
    first = scan("first.csv", oct_(1), oct_(31), mtime_ns=EARLIER)
    again = scan("again.csv", oct_(1), oct_(31), mtime_ns=LATER)
    (plan,) = plan_months([first, again], ORG)
    assert runs(plan) == [("again.csv", 1, 31)]
    assert plan.overruled == []


# -- months built from several exports ------------------------------------------------------


def test_a_month_is_built_from_two_halves_in_day_order():
    second = scan("second-half.csv", oct_(16), oct_(31))
    first = scan("first-half.csv", oct_(1), oct_(15))
    (plan,) = plan_months([second, first], ORG)
    assert (plan.organization_id, plan.month, plan.key) == (ORG, "2025-10", "org-acme/2025-10")
    assert plan.days == days(oct_(1), oct_(31))
    assert runs(plan) == [("first-half.csv", 1, 15), ("second-half.csv", 16, 31)]
    assert plan.source_files == ["first-half.csv", "second-half.csv"]


def test_a_newer_export_replaces_only_the_days_it_covers():
    october = scan("october.csv", oct_(1), oct_(31), rows="first")
    later = scan("later.csv", oct_(20), date(2025, 11, 3), rows="restated")
    october_plan, november_plan = plan_months([october, later], ORG)
    assert runs(october_plan) == [("october.csv", 1, 19), ("later.csv", 20, 31)]
    assert (november_plan.month, runs(november_plan)) == ("2025-11", [("later.csv", 1, 3)])
    assert [lost.day.day for lost in october_plan.overruled] == list(range(20, 32))
    assert november_plan.overruled == []


def test_an_export_of_a_quarter_gives_one_plan_per_month_in_order():
    quarter = scan("q3.csv", date(2025, 7, 1), date(2025, 9, 30))
    plans = plan_months([quarter], ORG)
    assert [(plan.month, len(plan.days), plan.source_files) for plan in plans] == [
        ("2025-07", 31, ["q3.csv"]),
        ("2025-08", 31, ["q3.csv"]),
        ("2025-09", 30, ["q3.csv"]),
    ]


def test_months_before_start_month_are_left_out():
    quarter = scan("q3.csv", date(2025, 7, 1), date(2025, 9, 30))
    assert [plan.month for plan in plan_months([quarter], ORG, "2025-08")] == [
        "2025-08",
        "2025-09",
    ]


def test_a_month_takes_the_layout_of_the_newest_export_holding_it():
    older = scan("older.csv", date(2025, 9, 1), oct_(31), layout=OLD_LAYOUT)
    newer = scan("newer.csv", oct_(25), oct_(31), rows="x", layout=NEW_LAYOUT, mtime_ns=LATER)
    september, october = plan_months([older, newer], ORG)
    assert (september.layout, october.layout) == (OLD_LAYOUT, NEW_LAYOUT)
    assert runs(october) == [("older.csv", 1, 24), ("newer.csv", 25, 31)]


def test_an_older_export_with_columns_the_newer_lacks_cannot_be_merged():
    older = scan("older.csv", oct_(1), oct_(31), layout=NEW_LAYOUT)
    newer = scan("newer.csv", oct_(20), oct_(31), rows="x", layout=OLD_LAYOUT, mtime_ns=LATER)
    with pytest.raises(ExportError) as refused:
        plan_months([older, newer], ORG)
    assert str(refused.value) == (
        "older.csv: has column(s) quantity, quantity_unit, user_id, api_key_id, user_email, "
        "api_source that the newer export of 2025-10 lacks, so the two cannot be merged; "
        "export the whole month again in one file"
    )


# -- what a month's seal says about it ------------------------------------------------------


@pytest.mark.parametrize(
    ("without", "today", "missing", "expected"),
    [
        ((), date(2026, 1, 1), [], 31),
        ((oct_(10), oct_(11), oct_(12)), date(2026, 1, 1), [oct_(10), oct_(11), oct_(12)], 31),
        ((), oct_(16), [], 15),  # the current month: complete up to yesterday
        ((oct_(15),), oct_(16), [oct_(15)], 15),
    ],
    ids=["whole month", "days missing", "current month", "yesterday missing"],
)
def test_a_month_is_complete_when_no_day_that_has_ended_is_missing(
    without, today, missing, expected
):
    last = min(oct_(31), date.fromordinal(today.toordinal() - 1))
    (plan,) = plan_months([scan("october.csv", oct_(1), last, without=without)], ORG)
    assert missing_days(plan.month, plan.days, today) == missing
    assert len(full_days(plan.month, today)) == expected


def test_a_month_after_the_current_one_is_never_complete():
    (plan,) = plan_months([scan("november.csv", date(2025, 11, 1), date(2025, 11, 30))], ORG)
    assert missing_days(plan.month, plan.days, oct_(16)) == days(
        date(2025, 11, 1), date(2025, 11, 30)
    )


def test_the_input_digest_follows_the_rows_not_the_file_name_or_time():
    (first,) = plan_months([scan("cost.csv", oct_(1), oct_(31))], ORG)
    (copied,) = plan_months([scan("copy of cost.csv", oct_(1), oct_(31), mtime_ns=LATER)], ORG)
    restated = scan("cost.csv", oct_(1), oct_(31), rows="restated")
    (changed,) = plan_months([restated], ORG)
    (other_layout,) = plan_months([scan("cost.csv", oct_(1), oct_(31), layout=OLD_LAYOUT)], ORG)
    assert first.input_digest == copied.input_digest
    assert len({first.input_digest, changed.input_digest, other_layout.input_digest}) == 3


def test_a_draft_holds_only_if_the_plan_is_its_export_in_its_layout():
    draft = Draft(ORG, "2025-10", NEW_LAYOUT, "october.csv")
    (alone,) = plan_months([scan("october.csv", oct_(1), oct_(31))], ORG)
    (merged,) = plan_months(
        [
            scan("october.csv", oct_(1), oct_(31)),
            scan("late.csv", oct_(31), oct_(31), rows="x", mtime_ns=LATER),
        ],
        ORG,
    )
    (relaid,) = plan_months([scan("october.csv", oct_(1), oct_(31), layout=OLD_LAYOUT)], ORG)
    assert [draft.matches(plan) for plan in (alone, merged, relaid)] == [True, False, False]


# -- the warning about which copy won -------------------------------------------------------


def warnings(*scans: ExportScan) -> list[str]:
    return which_copy_wins(
        lost for plan in plan_months(list(scans), ORG) for lost in plan.overruled
    )


def test_the_warning_says_newer_by_range_with_the_days_as_runs():
    mid = scan("mid.csv", oct_(1), oct_(15), rows="early", without=(oct_(4),), mtime_ns=LATER)
    full = scan("full.csv", oct_(1), oct_(31), rows="final")
    assert warnings(mid, full) == [
        "full.csv and mid.csv both cover 2025-10-01 to 2025-10-03, 2025-10-05 to 2025-10-15 "
        "with different rows; using full.csv for those days: it is newer by range (it covers "
        "up to 2025-10-31, the other up to 2025-10-15)"
    ]


def test_the_warning_says_modified_later_for_one_day():
    old = scan("old.csv", oct_(1), oct_(31), rows="first", mtime_ns=EARLIER)
    copy = scan("copy.csv", oct_(1), oct_(31), rows="first", mtime_ns=LATER)
    copy.days[20].hexdigest = "restated"
    assert warnings(old, copy) == [
        "copy.csv and old.csv both cover 2025-10-21 with different rows; using copy.csv for "
        "that day: both cover up to 2025-10-31 and it was modified later (2033-05-18 03:33:20 "
        "UTC, the other 2001-09-09 01:46:40 UTC)"
    ]


def test_the_warning_says_the_later_file_name_won_a_tie():
    a = scan("a.csv", oct_(30), oct_(31), rows="one")
    b = scan("b.csv", oct_(30), oct_(31), rows="other")
    assert warnings(a, b) == [
        "b.csv and a.csv both cover 2025-10-30 to 2025-10-31 with different rows; using b.csv "
        "for those days: both cover up to 2025-10-31 and were modified at the same time, so "
        "the later file name wins"
    ]


def test_one_warning_line_per_pair_of_exports():
    first = scan("1.csv", oct_(1), oct_(10), rows="one")
    second = scan("2.csv", oct_(1), oct_(20), rows="two")
    third = scan("3.csv", oct_(1), oct_(31), rows="three")
    assert [line.split(" with ")[0] for line in warnings(first, second, third)] == [
        "3.csv and 2.csv both cover 2025-10-01 to 2025-10-20",
        "3.csv and 1.csv both cover 2025-10-01 to 2025-10-10",
    ]


def test_rows_are_grouped_into_runs_of_one_month_each_in_order():
    """A file spanning a month boundary: each run holds its month's rows only, in file
    order, whether or not the one before was read to its end."""
    rows = [
        Row(day, f"{day} row {n}", [], NEW)
        for day in (date(2025, 9, 29), date(2025, 9, 30), oct_(1), oct_(2))
        for n in range(3)
    ] + [Row(date(2025, 11, 1), "2025-11-01 row 0", [], NEW)]
    runs = [(month, [row.text for row in run]) for month, run in by_month(iter(rows))]
    assert runs == [
        ("2025-09", [row.text for row in rows[:6]]),
        ("2025-10", [row.text for row in rows[6:12]]),
        ("2025-11", ["2025-11-01 row 0"]),
    ]
    # Each run is good until the next is asked for: a run left unread is skipped.
    skipped = [(month, next(run).text) for month, run in by_month(iter(rows))]
    assert skipped == [
        ("2025-09", "2025-09-29 row 0"),
        ("2025-10", "2025-10-01 row 0"),
        ("2025-11", "2025-11-01 row 0"),
    ]
