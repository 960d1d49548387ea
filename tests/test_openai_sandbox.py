"""`openai-sandbox`: OpenAI's Costs API on 127.0.0.1 answering with the costs of export
files (the bundled samples by default), run as a user runs it; its one-line refusals."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from local_sandboxes.openai_sandbox import DEFAULT_ADMIN_KEY, export_files, main
from tests.exports import SAMPLES

#: The command, as `make install` puts it in the venv running the tests.
OPENAI_SANDBOX = Path(sys.executable).parent / "openai-sandbox"
OCTOBER = SAMPLES / "acme" / "cost_2025-10-01_2025-10-31.csv"
#: 1 Oct 2025's costs of one acme project, as the samples have them: amounts as the
#: export's number text, the fields the published spec has and no other.
FIRST_OF_OCTOBER_PAGE = (
    '{"object": "page", "data": [{"object": "bucket", "start_time": 1759276800, '
    '"end_time": 1759363200, "results": ['
    '{"object": "organization.costs.result", "amount": {"value": 1.63253114228796248, '
    '"currency": "usd"}, "line_item": "gpt-4o-2024-08-06, input", "project_id": '
    '"proj_Zx98Yw76Vu54", "api_key_id": null, "quantity": null, "quantity_unit": null}, '
    '{"object": "organization.costs.result", "amount": {"value": 2.72325033053789101, '
    '"currency": "usd"}, "line_item": "o3-2025-04-16, cached input", "project_id": '
    '"proj_Zx98Yw76Vu54", "api_key_id": null, "quantity": null, "quantity_unit": null}'
    ']}], "has_more": false, "next_page": null}'
)


def test_serves_the_bundled_samples_as_the_costs_api_until_terminated() -> None:
    process = subprocess.Popen(
        [str(OPENAI_SANDBOX), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"OpenAI sandbox listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        response = httpx.get(
            f"{match.group(1)}/v1/organization/costs"
            "?start_time=1759276800&end_time=1759363200&bucket_width=1d&limit=1"
            "&group_by[]=line_item&group_by[]=project_id&project_ids[]=proj_Zx98Yw76Vu54",
            headers={"Authorization": f"Bearer {DEFAULT_ADMIN_KEY}"},
            timeout=10,
        )
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert response.status_code == 200
    assert response.text == FIRST_OF_OCTOBER_PAGE
    assert process.returncode == 0
    assert stderr == "openai sandbox: 61 day(s), 786 cost result(s), 3 project(s)\n"


def bad_export(tmp_path: Path, amount: str) -> Path:
    """October's sample with the first row's amount replaced."""
    header, first, *rest = OCTOBER.read_text("utf-8").splitlines(keepends=True)
    fields = first.split(",")
    fields[4] = amount
    path = tmp_path / "cost_2025-10-01_2025-10-31.csv"
    path.write_text("".join([header, ",".join(fields), *rest]), "utf-8")
    return path


@pytest.mark.parametrize(
    ("exports", "problem"),
    [
        (
            lambda tmp: [bad_export(tmp, "1.5 USD")],
            "{tmp}/cost_2025-10-01_2025-10-31.csv, row 2: amount_value '1.5 USD' is not a number",
        ),
        (
            lambda tmp: [SAMPLES / "acme", bad_export(tmp, "0.2747543622152208")],
            "{tmp}/cost_2025-10-01_2025-10-31.csv, row 2: day 1759276800 is also in "
            f"{OCTOBER}; give each day once",
        ),
        (
            lambda tmp: [OCTOBER, SAMPLES / "acme", tmp / "absent"],
            "{tmp}/absent: no such file or folder",
        ),
        (lambda tmp: [tmp], "{tmp}: no *.csv file in this folder"),
    ],
)
def test_an_export_it_cannot_serve_is_one_line_and_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], exports, problem: str
) -> None:
    argv = ["--exports", *(str(path) for path in exports(tmp_path))]

    assert main(argv) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"openai sandbox: {problem.format(tmp=tmp_path)}\n"


def test_a_file_named_twice_is_served_once() -> None:
    september = SAMPLES / "acme" / "cost_2025-09-01_2025-09-30.csv"

    assert export_files([OCTOBER, SAMPLES / "acme"]) == [OCTOBER, september]
