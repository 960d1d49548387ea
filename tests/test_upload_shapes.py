"""Pelanor's upload request in another shape, end to end: the target configured for it,
against local sandboxes that each accept that one shape only (127.0.0.1, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_sandboxes.pelanor import PelanorSandbox
from target_pelanor.client import PelanorClient
from target_pelanor.settings import DEFAULT_MAX_RETRY_SECONDS, DEFAULT_REQUEST_TIMEOUT
from target_pelanor.upload_request import upload_shape
from tests.exports import SAMPLES
from tests.pelanor_sandbox import TOKEN, running_sandbox, sandbox_config
from tests.singer import Run, report, run_target, stored, tap_output, target_config
from tests.upload_guard import config_errors

ACME_SEPT = SAMPLES / "acme" / "cost_2025-09-01_2025-09-30.csv"
ACME_OCT = SAMPLES / "acme" / "cost_2025-10-01_2025-10-31.csv"
#: A PUT with the CSV as the whole body and the month in the query.
PUT_RAW = {
    "upload_method": "PUT",
    "upload_body": "raw",
    "upload_path": "/v2/openai/integrations/{integration_id}/cost-files",
    "upload_query": {"month": "{month}"},
}
#: A POST whose form names everything differently, the integration in a field.
RENAMED_PARTS = {
    "upload_path": "/api/openai/upload",
    "upload_file_field": "cost_export",
    "upload_fields": {
        "integration": "{integration_id}",
        "period_start": "{first_day}",
        "period_end": "{last_day}",
    },
}
TOKEN_ID, TOKEN_SECRET = "tokid_8f3Kx2", "s3cr3t_v4lue_Q9"
ENDS = {"2025-09": "2025-09-30", "2025-10": "2025-10-31"}


@pytest.fixture
def put_raw(tmp_path: Path) -> Iterator[PelanorSandbox]:
    with running_sandbox(tmp_path / "put-raw", **PUT_RAW) as sandbox:
        yield sandbox


@pytest.fixture
def renamed_parts(tmp_path: Path) -> Iterator[PelanorSandbox]:
    with running_sandbox(tmp_path / "renamed", **RENAMED_PARTS) as sandbox:
        yield sandbox


def logged(result: Run) -> list[str]:
    """The messages of the SDK's plain log lines (``time | LEVEL | logger | message``)."""
    return [
        line.split(" | ", 3)[3] for line in result.stderr.splitlines() if line.count(" | ") >= 3
    ]


def test_a_put_with_a_raw_body_and_the_month_in_the_query_uploads_exact_files(
    tmp_path: Path, put_raw: PelanorSandbox
) -> None:
    messages = tap_output(tmp_path, ACME_SEPT, ACME_OCT)
    result = run_target(tmp_path, target_config(put_raw, **PUT_RAW), messages)

    assert result.returncode == 0, result.stderr
    assert stored(put_raw) == {
        "int-acme/2025-09": ACME_SEPT.read_bytes(),
        "int-acme/2025-10": ACME_OCT.read_bytes(),
    }
    assert [
        (r.method, r.path, r.query, r.content_type, r.form_fields, r.file_bytes, r.status)
        for r in put_raw.requests
    ] == [
        (
            "PUT",
            "/v2/openai/integrations/int-acme/cost-files",
            (("month", month),),
            "text/csv",
            (),
            path.stat().st_size,
            200,
        )
        for month, path in (("2025-09", ACME_SEPT), ("2025-10", ACME_OCT))
    ]
    assert [row[4] for row in report(result)[1:]] == ["uploaded", "uploaded"]


def test_a_post_with_differently_named_parts_uploads_exact_files(
    tmp_path: Path, renamed_parts: PelanorSandbox
) -> None:
    messages = tap_output(tmp_path, ACME_SEPT, ACME_OCT)
    result = run_target(tmp_path, target_config(renamed_parts, **RENAMED_PARTS), messages)

    assert result.returncode == 0, result.stderr
    assert stored(renamed_parts) == {
        "int-acme/2025-09": ACME_SEPT.read_bytes(),
        "int-acme/2025-10": ACME_OCT.read_bytes(),
    }
    assert [
        (r.method, r.path, r.query, r.form_fields, r.filename, r.file_content_type)
        for r in renamed_parts.requests
    ] == [
        (
            "POST",
            "/api/openai/upload",
            (),
            ("integration", "period_start", "period_end", "cost_export"),
            path.name,
            "text/csv",
        )
        for path in (ACME_SEPT, ACME_OCT)
    ]


@pytest.mark.parametrize(
    ("shape", "refusal"),
    [
        (PUT_RAW, "(HTTP 404): no such route; check integration_id and upload_path"),
        (
            PUT_RAW | {"upload_path": "/v1/integrations/openai/{integration_id}/upload"},
            "(HTTP 405): use PUT to upload, not POST",
        ),
        (
            RENAMED_PARTS | {"upload_path": "/v1/integrations/openai/{integration_id}/upload"},
            "(HTTP 400): form field 'integration' is required",
        ),
    ],
    ids=["another path", "another method", "other part names"],
)
def test_a_pelanor_that_takes_another_shape_refuses_the_default_one(
    tmp_path: Path, shape: dict[str, Any], refusal: str
) -> None:
    with running_sandbox(tmp_path / "pelanor", **shape) as sandbox:
        result = run_target(tmp_path, target_config(sandbox), tap_output(tmp_path, ACME_OCT))
    assert result.returncode == 1
    assert report(result)[1][4] == f"failed: Pelanor rejected the upload of 2025-10 {refusal}"
    assert sandbox.stored_files() == []


def test_a_raw_body_is_streamed_from_disk_again_on_every_attempt(tmp_path: Path) -> None:
    faults = [{"kind": "drop", "times": 1}, {"kind": "500", "times": 1}]
    with (
        running_sandbox(tmp_path / "pelanor", faults=faults, **PUT_RAW) as sandbox,
        PelanorClient(
            base_url=sandbox.url,
            integration_id="int-acme",
            api_token=TOKEN,
            shape=upload_shape(PUT_RAW),
            request_timeout=DEFAULT_REQUEST_TIMEOUT,
            max_retry_seconds=DEFAULT_MAX_RETRY_SECONDS,
            sleep=lambda seconds: None,
        ) as client,
    ):
        receipt = client.upload(month="2025-10", filename=ACME_OCT.name, content=ACME_OCT)
    assert receipt.attempts == 3
    assert stored(sandbox) == {"int-acme/2025-10": ACME_OCT.read_bytes()}
    assert [(r.fault, r.file_bytes) for r in sandbox.requests] == [
        ("drop", ACME_OCT.stat().st_size),
        ("500", ACME_OCT.stat().st_size),
        (None, ACME_OCT.stat().st_size),
    ]


def test_a_token_id_and_secret_from_the_environment_reach_pelanor_and_no_output(
    tmp_path: Path,
) -> None:
    tokens = [f"{TOKEN_ID}:{TOKEN_SECRET}"]
    with running_sandbox(tmp_path / "pelanor", tokens=tokens, **PUT_RAW) as sandbox:
        settings = target_config(
            sandbox,
            api_token_id_env="PELANOR_TOKEN_ID_FOR_THIS_TEST",
            api_token_secret_env="PELANOR_TOKEN_SECRET_FOR_THIS_TEST",
            **PUT_RAW,
        )
        del settings["api_token"]
        env = {
            "PELANOR_TOKEN_ID_FOR_THIS_TEST": TOKEN_ID,
            "PELANOR_TOKEN_SECRET_FOR_THIS_TEST": TOKEN_SECRET,
            "TARGET_PELANOR_LOGLEVEL": "debug",
        }
        result = run_target(tmp_path, settings, tap_output(tmp_path, ACME_OCT), env=env)
        url = sandbox.url

    assert result.returncode == 0, result.stderr
    assert stored(sandbox) == {"int-acme/2025-10": ACME_OCT.read_bytes()}
    assert [m for m in logged(result) if m.startswith("upload request")] == [
        f"upload request: PUT {url}/v2/openai/integrations/int-acme/cost-files"
        f"?month=2025-10; Content-Type: text/csv; body: the CSV {ACME_OCT.name}; "
        f"{ACME_OCT.stat().st_size} bytes"
    ]
    for text in (
        result.stdout,
        result.stderr,
        (tmp_path / "target-pelanor.config.json").read_text(),
    ):
        assert TOKEN_ID not in text
        assert TOKEN_SECRET not in text


def test_the_debug_line_names_the_parts_of_a_multipart_form(
    tmp_path: Path, renamed_parts: PelanorSandbox
) -> None:
    settings = target_config(renamed_parts, **RENAMED_PARTS)
    env = {"TARGET_PELANOR_LOGLEVEL": "debug"}
    result = run_target(tmp_path, settings, tap_output(tmp_path, ACME_OCT), env=env)

    assert result.returncode == 0, result.stderr
    [seen] = renamed_parts.requests
    assert [m for m in logged(result) if m.startswith("upload request")] == [
        f"upload request: POST {renamed_parts.url}/api/openai/upload; Content-Type: "
        "multipart/form-data; parts: integration=int-acme, period_start=2025-10-01, "
        f"period_end=2025-10-31, cost_export=the CSV {ACME_OCT.name} (text/csv); "
        f"{seen.body_bytes} bytes"
    ]
    assert seen.file_bytes == ACME_OCT.stat().st_size
    assert TOKEN not in result.stderr


BAD_SETTINGS = {
    "a method Pelanor's settings do not offer": (
        {"upload_method": "put"},
        "'put' is not one of ['POST', 'PUT'] in config['upload_method']",
    ),
    "form fields with a raw body": (
        {"upload_body": "raw"},
        "upload_fields cannot be used with upload_body raw (the CSV is the whole body); send "
        "them as upload_query, or set upload_body to multipart",
    ),
    "an unknown placeholder": (
        {"upload_query": {"month": "{billing_month}"}},
        "upload_query['month'] has unknown placeholder(s) {billing_month}; the placeholders are "
        "{month}, {first_day}, {last_day}, {organization_id}, {integration_id}, {file_name}",
    ),
    "a token ID without its secret": (
        {"api_token": None, "api_token_id": TOKEN_ID},
        "api_token_id is set but api_token_secret is not: set both (Pelanor shows the token ID "
        "and the token secret together), or the whole token as api_token",
    ),
}


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_shape_and_token_settings_are_checked_before_any_input_is_read(
    tmp_path: Path, pelanor: PelanorSandbox, settings: dict[str, Any], message: str
) -> None:
    given = target_config(pelanor, upload_fields={"month": "{month}"}) | settings
    config = {k: v for k, v in given.items() if v is not None}
    result = run_target(tmp_path, config, "not a Singer message\n")
    assert result.returncode == 1
    assert config_errors(result) == [message]
    assert "input line" not in result.stderr
    assert "Traceback" not in result.stderr
    assert pelanor.requests == []


def send(sandbox: PelanorSandbox, method: str, path: str, **options: Any) -> tuple[int, str, str]:
    """One request to ``sandbox``; its status, error code and message."""
    headers = {**options.pop("headers", {}), "Authorization": f"Bearer {TOKEN}"}
    response = httpx.request(method, sandbox.url + path, headers=headers, timeout=5, **options)
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


OCTOBER = ACME_OCT.read_bytes()
RAW = {"content": OCTOBER, "headers": {"Content-Type": "text/csv"}}
PUT_PATH = "/v2/openai/integrations/int-acme/cost-files"
RAW_REFUSALS = {
    "another method": (
        ("POST", PUT_PATH + "?month=2025-10", RAW),
        (405, "method_not_allowed", "use PUT to upload, not POST"),
    ),
    "no month": (
        ("PUT", PUT_PATH, RAW),
        (400, "missing_query", "query parameter 'month' is required"),
    ),
    "another parameter": (
        ("PUT", PUT_PATH + "?month=2025-10&org=org-acme", RAW),
        (400, "unexpected_query", "unexpected query parameter(s): org"),
    ),
    "a multipart form": (
        ("PUT", PUT_PATH + "?month=2025-10", {"files": {"file": ("f.csv", OCTOBER, "text/csv")}}),
        (415, "unsupported_media_type", "the body must be text/csv, got multipart/form-data"),
    ),
    "another month": (
        ("PUT", PUT_PATH + "?month=2025-09", RAW),
        (422, "month_mismatch", "row 1 start_time 1759276800 is not inside month 2025-09"),
    ),
    "an unknown integration": (
        ("PUT", "/v2/openai/integrations/int-nope/cost-files?month=2025-10", RAW),
        (404, "unknown_integration", "unknown integration int-nope"),
    ),
}


@pytest.mark.parametrize(("request_", "refusal"), RAW_REFUSALS.values(), ids=RAW_REFUSALS.keys())
def test_a_sandbox_for_a_raw_put_refuses_every_other_request(
    put_raw: PelanorSandbox, request_: tuple[str, str, dict[str, Any]], refusal: tuple
) -> None:
    method, path, options = request_
    assert send(put_raw, method, path, **options) == refusal
    assert put_raw.stored_files() == []


def form(**fields: str) -> dict[str, Any]:
    """A form for the renamed-parts sandbox: its fields for October, changed by ``fields``
    (an empty value leaves the field out), and the CSV as part ``cost_export``."""
    data = {"integration": "int-acme", "period_start": "2025-10-01", "period_end": "2025-10-31"}
    data = {k: v for k, v in (data | fields).items() if v}
    return {"data": data, "files": {"cost_export": (ACME_OCT.name, OCTOBER, "text/csv")}}


FORM_REFUSALS = {
    "the default part name": (
        {"data": form()["data"], "files": {"file": (ACME_OCT.name, OCTOBER, "text/csv")}},
        (400, "missing_field", "multipart part 'cost_export' is required"),
    ),
    "a missing field": (
        form(period_end=""),
        (400, "missing_field", "form field 'period_end' is required"),
    ),
    "another field": (
        form(month="2025-10"),
        (400, "unexpected_field", "unexpected form part(s): month"),
    ),
    "a last day that is not the month's": (
        form(period_end="2025-10-30"),
        (400, "invalid_day", "last_day of 2025-10 is 2025-10-31, got '2025-10-30'"),
    ),
    "a first day that is not a date": (
        form(period_start="October"),
        (400, "invalid_month", "first_day must be YYYY-MM-DD, got 'October'"),
    ),
    "another content type": (
        {"data": form()["data"], "files": {"cost_export": ("f.csv", OCTOBER, "text/plain")}},
        (415, "unsupported_media_type", "part 'cost_export' must be text/csv, got text/plain"),
    ),
    "an unknown integration": (
        form(integration="int-nope"),
        (404, "unknown_integration", "unknown integration int-nope"),
    ),
}


@pytest.mark.parametrize(("options", "refusal"), FORM_REFUSALS.values(), ids=FORM_REFUSALS.keys())
def test_a_sandbox_for_renamed_parts_refuses_every_other_form(
    renamed_parts: PelanorSandbox, options: dict[str, Any], refusal: tuple
) -> None:
    assert send(renamed_parts, "POST", "/api/openai/upload", **options) == refusal
    assert renamed_parts.stored_files() == []


SANDBOX_SHAPES = {
    "no integration anywhere": (
        {"upload_path": "/upload"},
        "the upload shape must carry {integration_id} (in upload_path, upload_query or "
        "upload_fields): the sandbox finds the integration by it",
    ),
    "no month anywhere": (
        {"upload_fields": {}},
        "the upload shape must carry {month}, {first_day} or {last_day} (in upload_path, "
        "upload_query or upload_fields): the sandbox files uploads by month",
    ),
    "form fields with a raw body": (
        {"upload_body": "raw", "upload_fields": {"month": "{month}"}},
        "config 'upload_fields' cannot be used with upload_body raw",
    ),
    "an unknown placeholder": (
        {"upload_query": {"m": "{period}"}},
        "config 'upload_query.m' has an unknown placeholder in '{period}'; the placeholders "
        "are {month}, {first_day}, {last_day}, {organization_id}, {integration_id}, {file_name}",
    ),
    "another method": (
        {"upload_method": "PATCH"},
        "config 'upload_method' must be POST or PUT, got 'PATCH'",
    ),
}


@pytest.mark.parametrize(("shape", "message"), SANDBOX_SHAPES.values(), ids=SANDBOX_SHAPES.keys())
def test_a_sandbox_shape_that_cannot_file_an_upload_is_refused_at_start(
    tmp_path: Path, shape: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=r".") as refused:
        PelanorSandbox(sandbox_config(**shape), tmp_path)
    assert str(refused.value) == message


def test_the_sandbox_takes_the_targets_settings_as_they_are(tmp_path: Path) -> None:
    """A config dumped from target-pelanor (nulls for what is unset, the token settings
    beside the shape) gives the shape the target sends."""
    dumped = {
        "upload_fields": None,
        "upload_query": None,
        "upload_file_field": "file",
        "api_token_env": None,
    }
    with running_sandbox(tmp_path / "pelanor", **dumped) as sandbox:
        result = run_target(tmp_path, target_config(sandbox), tap_output(tmp_path, ACME_OCT))
    assert result.returncode == 0, result.stderr
    assert stored(sandbox) == {"int-acme/2025-10": OCTOBER}
