"""The export format: exact round trips and one exact message per kind of bad input."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest

from openai_costs.export import ExportError, scan_export, write_export
from tap_openai_costs.planner import plan_months
from tests.exports import (
    OLD,
    OLD_WITHOUT_PROJECT_NAME,
    ORG,
    SAMPLES,
    TODAY,
    cost,
    export,
    month_rows,
    times,
    write,
)

OCT1 = date(2025, 10, 1)
OCT2 = date(2025, 10, 2)
REPEATS_ROW_2 = (
    "repeats row 2 (same day, line item, project and every other column but the amounts), "
    "so that day would count twice, as when two exports are pasted together; export the "
    "period again as one file"
)


def rebuild(*paths: Path, organization_id: str = ORG) -> dict[str, bytes]:
    """What the pipeline would upload for each month of these files."""
    plans = plan_months([scan_export(p, organization_id, TODAY) for p in paths], organization_id)
    built = {}
    for plan in plans:
        out = io.BytesIO()
        write_export(out, plan.layout, (row.text for row in plan.rows()))
        built[plan.month] = out.getvalue()
    return built


@pytest.mark.parametrize(
    ("sample", "organization_id"),
    [
        ("acme/cost_2025-09-01_2025-09-30.csv", "org-acme"),
        ("acme/cost_2025-10-01_2025-10-31.csv", "org-acme"),
        ("globex/cost_2025-10-01_2025-10-31.csv", "org-globex"),
    ],
)
def test_bundled_samples_rebuild_byte_for_byte(sample: str, organization_id: str) -> None:
    path = SAMPLES / sample
    (content,) = rebuild(path, organization_id=organization_id).values()
    assert content == path.read_bytes()


@pytest.mark.parametrize("terminator", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("columns", [OLD, (*reversed(OLD), "new_column")])
def test_layouts_rebuild_byte_for_byte(tmp_path, terminator, bom, columns) -> None:
    rows = month_rows("2025-10", idle=(4, 5))
    rows[0] |= {"line_item": 'ft:gpt-4o:acme:"support", input', "new_column": "x, y"}
    rows[2] |= {"project_name": "Développement 東京", "amount_value": "0.8958740000000000"}
    rows[3] |= {"project_id": "", "project_name": "", "amount_value": "0.00000001"}
    content = export(rows, columns, terminator, bom)
    path = write(tmp_path / "cost.csv", content)
    assert rebuild(path) == {"2025-10": content}


def test_file_without_final_newline_rebuilds_without_one(tmp_path) -> None:
    content = export(month_rows("2025-10"))[:-1]
    assert rebuild(write(tmp_path / "cost.csv", content)) == {"2025-10": content}


def test_header_only_export_has_no_months(tmp_path) -> None:
    assert rebuild(write(tmp_path / "cost.csv", export([]))) == {}


def test_quoted_newline_inside_a_value_is_kept(tmp_path) -> None:
    rows = month_rows("2025-10")
    rows[1]["project_name"] = "two\nlines"
    content = export(rows)
    assert rebuild(write(tmp_path / "cost.csv", content)) == {"2025-10": content}


HEADER = export([])
ROW = export([cost(OCT1)])[len(HEADER) :]


def _bad(**values: str) -> bytes:
    return export([cost(OCT1), cost(OCT1, item="o3, input", **values)])


BAD_INPUTS = {
    "empty": (b"", "is empty; export the Cost data again from the OpenAI dashboard"),
    "only a BOM": (
        "\ufeff".encode(),
        "is empty; export the Cost data again from the OpenAI dashboard",
    ),
    "not UTF-8": (
        HEADER + "caf\xe9".encode("latin-1") + b"\n",
        "row 2: is not UTF-8 text (byte 0xe9); it is not the CSV OpenAI exports: "
        "download the Cost data export again as CSV",
    ),
    "a spreadsheet": (
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xe2",
        "row 1: is not UTF-8 text (byte 0xe2); it is not the CSV OpenAI exports: "
        "download the Cost data export again as CSV",
    ),
    "not a cost export": (
        b'{"object": "page", "data": []}\n',
        "does not look like an OpenAI export (no start_time column); "
        "use the CSV from Usage > Export > Cost data",
    ),
    "activity export": (
        b"start_time,end_time,start_time_iso,end_time_iso\n",
        "is an Activity export (no amount_value column), not cost data; "
        "export the Cost data tab (Usage > Export > Cost data, group by Line Item)",
    ),
    "older layout without project_name": (
        export([cost(OCT1)], OLD_WITHOUT_PROJECT_NAME),
        "lacks column(s) project_name that Pelanor requires; export the Cost data grouped "
        "by Line Item (and project) with a 1 day interval",
    ),
    "several Pelanor columns missing": (
        b"start_time,end_time,amount_value,line_item\n",
        "lacks column(s) amount_currency, project_id, organization_id, project_name, "
        "organization_name that Pelanor requires; export the Cost data grouped by Line Item "
        "(and project) with a 1 day interval",
    ),
    "hourly buckets": (
        _bad(end_time="1759280400", end_time_iso="2025-10-01T01:00:00+00:00"),
        "row 3: bucket 2025-10-01T00:00:00+00:00 to 2025-10-01T01:00:00+00:00 is not one "
        "whole UTC day; export with Time interval '1 day'",
    ),
    "minute buckets off midnight": (
        _bad(
            start_time="1759276860",
            end_time="1759363260",
            start_time_iso="2025-10-01T00:01:00+00:00",
            end_time_iso="2025-10-02T00:01:00+00:00",
        ),
        "row 3: bucket 2025-10-01T00:01:00+00:00 to 2025-10-02T00:01:00+00:00 is not one "
        "whole UTC day; export with Time interval '1 day'",
    ),
    "euro": (
        _bad(amount_currency="eur"),
        "row 3: amount_currency is 'eur', but Pelanor accepts USD only",
    ),
    "amount with a comma": (
        _bad(amount_value="0,5"),
        "row 3: amount_value '0,5' is not a decimal number; use the export unmodified",
    ),
    "empty amount on a cost row": (
        _bad(amount_value=""),
        "row 3: amount_value '' is not a decimal number; use the export unmodified",
    ),
    "fractional timestamp": (
        _bad(start_time="1759276800.0"),
        "row 3: start_time '1759276800.0' is not a whole number of Unix seconds; "
        "download the export again",
    ),
    "ISO time disagrees": (
        _bad(end_time_iso="2025-10-03T00:00:00+00:00"),
        "row 3: end_time_iso '2025-10-03T00:00:00+00:00' disagrees with end_time 1759363200 "
        "(2025-10-02T00:00:00+00:00); use the export unmodified",
    ),
    "another organization": (
        _bad(organization_id="org-globex"),
        "row 3: belongs to organization 'org-globex', not 'org-acme'; give each organization "
        "its own connector (organization_id) and exports",
    ),
    "truncated last row": (
        export([cost(OCT1), cost(OCT2)])[:-100],
        "row 3: has 4 fields, expected 17: the file is truncated; download the export again",
    ),
    "truncated inside quotes": (
        export([cost(OCT1), cost(OCT2)])[:-60],
        "row 3: ends inside a quoted value: the file is truncated; download the export again",
    ),
    "a short row in the middle": (
        HEADER + b"1759276800,1759363200\n" + ROW,
        "row 2: has 2 fields, expected 17; upload the export unmodified",
    ),
    "same key, two amounts": (
        export([cost(OCT1, "0.5"), cost(OCT1, "0.7")]),
        f"row 3: {REPEATS_ROW_2}",
    ),
    "days out of order": (
        export([cost(OCT2), cost(OCT1)]),
        "row 3: day 2025-10-01 comes after day 2025-10-02; rows must be in time order as "
        "exported, use the export unmodified",
    ),
    "mixed line endings": (
        export([cost(OCT1)]) + export([cost(OCT2)], terminator="\r\n")[len(HEADER) + 1 :],
        "row 3: mixes line endings; use the export as downloaded",
    ),
    "blank line": (HEADER + b"\n" + ROW, "row 2: is an empty line; use the export unmodified"),
}


@pytest.mark.parametrize(("content", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_gets_one_exact_message(tmp_path, content, message) -> None:
    path = write(tmp_path / "cost.csv", content)
    with pytest.raises(ExportError) as raised:
        scan_export(path, ORG, TODAY)
    assert str(raised.value) == f"{path}: {message}"


def test_pasted_exports_same_key_same_amount_twice_is_an_error(tmp_path) -> None:
    content = export([cost(OCT1), cost(OCT1)])
    path = write(tmp_path / "cost.csv", content)
    with pytest.raises(ExportError) as raised:
        scan_export(path, ORG, TODAY)
    assert str(raised.value) == f"{path}: row 3: {REPEATS_ROW_2}"


def test_pasted_exports_a_repeated_idle_day_is_an_error(tmp_path) -> None:
    path = write(tmp_path / "cost.csv", export([times(OCT1), times(OCT1), cost(OCT2)]))
    with pytest.raises(ExportError) as raised:
        scan_export(path, ORG, TODAY)
    assert str(raised.value) == f"{path}: row 3: {REPEATS_ROW_2}"


def test_pasted_exports_rows_differing_only_in_quantity_are_a_repeat(tmp_path) -> None:
    rows = [cost(OCT1, "0.5", quantity="10"), cost(OCT1, "0.5", quantity="12")]
    path = write(tmp_path / "cost.csv", export(rows))
    with pytest.raises(ExportError) as raised:
        scan_export(path, ORG, TODAY)
    assert str(raised.value) == f"{path}: row 3: {REPEATS_ROW_2}"


def test_rows_differing_in_any_identifying_column_are_kept(tmp_path) -> None:
    rows = [
        cost(OCT1, "0.5"),
        cost(OCT1, "0.5", quantity_unit="images"),
        cost(OCT1, "0.5", api_key_id="key_2"),
        cost(OCT1, "0.5", user_email="b@example.com"),
        cost(OCT1, "0.5", project_id="proj_other"),
    ]
    scan = scan_export(write(tmp_path / "cost.csv", export(rows)), ORG, TODAY)
    assert [(d.day, d.rows) for d in scan.days] == [(OCT1, 5)]


def test_idle_day_rows_need_no_organization(tmp_path) -> None:
    content = export([times(OCT1), cost(OCT2)])
    scan = scan_export(write(tmp_path / "cost.csv", content), ORG, TODAY)
    assert [(d.day, d.rows) for d in scan.days] == [(OCT1, 1), (OCT2, 1)]


def test_the_same_key_on_different_days_is_no_repeat(tmp_path) -> None:
    content = export([cost(OCT1, "0.5"), cost(OCT2, "0.7")])
    scan = scan_export(write(tmp_path / "cost.csv", content), ORG, TODAY)
    assert [(d.day, d.rows) for d in scan.days] == [(OCT1, 1), (OCT2, 1)]


def test_a_repeat_is_found_among_many_rows_of_a_day(tmp_path) -> None:
    rows = [cost(OCT1, "0.1", api_key_id=f"key_{n}") for n in range(5000)]
    rows.insert(4000, cost(OCT1, "0.2", api_key_id="key_17"))
    path = write(tmp_path / "cost.csv", export([*rows, cost(OCT2)]))
    with pytest.raises(ExportError) as raised:
        scan_export(path, ORG, TODAY)
    assert str(raised.value) == f"{path}: row 4002: {REPEATS_ROW_2.replace('2', '19', 1)}"


def test_a_file_changed_after_its_scan_is_not_emitted(tmp_path) -> None:
    path = write(tmp_path / "cost.csv", export(month_rows("2025-10")))
    (plan,) = plan_months([scan_export(path, ORG, TODAY)], ORG)
    write(path, export(month_rows("2025-10", amount="9.99")))
    with pytest.raises(ExportError) as raised:
        list(plan.rows())
    assert str(raised.value) == (
        f"{path}: changed while it was being read (rows of 2025-10-01); run the tap again"
    )
