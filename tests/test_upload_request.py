"""The upload request's shape as settings: checks, templates, and the request as built.

In process, without sockets (httpx mock transports); the end-to-end runs against local
servers that accept one shape each are in tests/test_upload_shapes.py.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import httpx
import pytest
from singer_sdk.exceptions import ConfigValidationError

from target_pelanor.client import PelanorClient
from target_pelanor.settings import (
    DEFAULT_MAX_RETRY_SECONDS,
    DEFAULT_REQUEST_TIMEOUT,
    TargetSettings,
)
from target_pelanor.upload_request import (
    DEFAULT_SHAPE,
    MonthValues,
    render_path,
    shape_problems,
    upload_shape,
)

MONTH = "2025-10"
FILENAME = "cost_2025-10-01_2025-10-31.csv"
CSV = b"start_time,amount_value\n1759276800,0.89\n"
TOKEN = "tokid_8f3Kx2:s3cr3t_v4lue"
PUT_RAW = {
    "upload_method": "PUT",
    "upload_body": "raw",
    "upload_path": "/v2/openai/{integration_id}/months/{month}",
    "upload_query": {"from": "{first_day}", "to": "{last_day}", "org": "{organization_id}"},
}
PLACEHOLDERS = "{month}, {first_day}, {last_day}, {organization_id}, {integration_id}, {file_name}"


def send(settings: dict[str, Any], content: bytes = CSV) -> httpx.Request:
    """The one request a client with these settings sends for October."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        request.read()
        sent.append(request)
        return httpx.Response(201, json={"id": "upl_x"})

    with PelanorClient(
        base_url="https://api.pelanor.io",
        integration_id="int/acme",
        api_token=TOKEN,
        shape=upload_shape(settings),
        organization_id="org-acme",
        request_timeout=DEFAULT_REQUEST_TIMEOUT,
        max_retry_seconds=DEFAULT_MAX_RETRY_SECONDS,
        transport=httpx.MockTransport(answer),
    ) as client:
        client.upload(month=MONTH, filename=FILENAME, content=content)
    [request] = sent
    return request


def test_unset_settings_and_meltanos_defaults_give_the_adopted_contract() -> None:
    meltano_defaults = {
        "upload_path": "/v1/integrations/openai/{integration_id}/upload",
        "upload_method": "POST",
        "upload_body": "multipart",
        "upload_file_field": "file",
        "upload_content_type": "text/csv",
    }
    assert upload_shape({}) == DEFAULT_SHAPE
    assert upload_shape(meltano_defaults) == DEFAULT_SHAPE
    assert asdict(DEFAULT_SHAPE) == {
        "method": "POST",
        "body": "multipart",
        "path": "/v1/integrations/openai/{integration_id}/upload",
        "file_field": "file",
        "fields": (("month", "{month}"),),
        "query": (),
        "content_type": "text/csv",
    }


def test_template_values_of_a_month() -> None:
    february = MonthValues.of(
        "2024-02", organization_id="org-a", integration_id="int-a", file_name="f.csv"
    )
    assert february.as_dict() == {
        "month": "2024-02",
        "first_day": "2024-02-01",
        "last_day": "2024-02-29",
        "organization_id": "org-a",
        "integration_id": "int-a",
        "file_name": "f.csv",
    }


def test_path_values_are_encoded_as_one_segment_each() -> None:
    values = MonthValues.of(
        MONTH, organization_id="org a", integration_id="int/acme?x", file_name=""
    )
    assert render_path("/{organization_id}/{integration_id}/{month}", values) == (
        "/org%20a/int%2Facme%3Fx/2025-10"
    )
    assert render_path("/literal/{{braces}}/{month}", values) == "/literal/{braces}/2025-10"


def test_a_put_with_a_raw_body_sends_the_csv_as_the_whole_body() -> None:
    request = send(PUT_RAW)
    assert request.method == "PUT"
    assert str(request.url) == (
        "https://api.pelanor.io/v2/openai/int%2Facme/months/2025-10"
        "?from=2025-10-01&to=2025-10-31&org=org-acme"
    )
    assert request.content == CSV
    assert request.headers["Content-Type"] == "text/csv"
    assert request.headers["Content-Length"] == str(len(CSV))
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_multipart_form_with_other_names_sends_exactly_those_parts() -> None:
    request = send(
        {
            "upload_file_field": "csv_file",
            "upload_fields": {"period": "{first_day}..{last_day}", "name": "{file_name}"},
            "upload_content_type": "text/csv; charset=utf-8",
        }
    )
    boundary = request.headers["Content-Type"].removeprefix("multipart/form-data; boundary=")
    assert (
        request.content
        == (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="period"\r\n\r\n'
            "2025-10-01..2025-10-31\r\n"
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="name"\r\n\r\n'
            f"{FILENAME}\r\n"
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="csv_file"; filename="{FILENAME}"\r\n'
            "Content-Type: text/csv; charset=utf-8\r\n\r\n"
        ).encode()
        + CSV
        + f"\r\n--{boundary}--\r\n".encode()
    )
    assert request.headers["Content-Length"] == str(len(request.content))


def test_no_form_fields_when_upload_fields_is_empty() -> None:
    request = send({"upload_fields": {}})
    assert b'name="month"' not in request.content
    assert b'name="file"; filename="' + FILENAME.encode() + b'"' in request.content


def test_the_debug_line_says_what_is_sent_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="target_pelanor.client")
    raw = send(PUT_RAW | {"upload_query": {"month": "{month}", "key": "tokid_8f3Kx2"}})
    multipart = send({})
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("upload request")]
    assert lines == [
        "upload request: PUT https://api.pelanor.io/v2/openai/int%2Facme/months/2025-10"
        f"?month=2025-10&key=***; Content-Type: text/csv; body: the CSV {FILENAME}; "
        f"{len(raw.content)} bytes",
        "upload request: POST https://api.pelanor.io/v1/integrations/openai/int%2Facme/upload; "
        f"Content-Type: multipart/form-data; parts: month=2025-10, file=the CSV {FILENAME} "
        f"(text/csv); {len(multipart.content)} bytes",
    ]
    assert "s3cr3t" not in caplog.text
    assert "tokid_8f3Kx2" not in caplog.text


BAD_SHAPES = {
    "an unknown placeholder in a query parameter": (
        {"upload_query": {"month": "{period}"}},
        f"upload_query['month'] has unknown placeholder(s) {{period}}; the placeholders are "
        f"{PLACEHOLDERS}",
    ),
    "a format spec in a form field": (
        {"upload_fields": {"month": "{month:>10}"}},
        f"upload_fields['month'] has unknown placeholder(s) {{month:>10}}; the placeholders are "
        f"{PLACEHOLDERS}",
    ),
    "an unmatched brace in the path": (
        {"upload_path": "/v1/{integration_id/upload"},
        "upload_path has an unmatched { or } (got '/v1/{integration_id/upload'); write {{ and }} "
        "for a literal brace",
    ),
    "form fields with a raw body": (
        {"upload_body": "raw", "upload_fields": {"month": "{month}"}},
        "upload_fields cannot be used with upload_body raw (the CSV is the whole body); send "
        "them as upload_query, or set upload_body to multipart",
    ),
    "a part name with a raw body": (
        {"upload_body": "raw", "upload_file_field": "csv"},
        "upload_file_field cannot be used with upload_body raw (the CSV is the whole body, not "
        "a part); unset it, or set upload_body to multipart",
    ),
    "a form field named like the CSV's part": (
        {"upload_fields": {"file": "{month}"}},
        "upload_fields has a field named 'file', the name of the CSV's part (upload_file_field); "
        "rename one of them",
    ),
    "a part name with a quote": (
        {"upload_file_field": 'the "file"'},
        "upload_file_field must be a name without control characters, quotes or backslashes "
        "(got 'the \"file\"')",
    ),
    "a template that is not text": (
        {"upload_query": {"year": 2025}},
        "upload_query['year'] must be text (a template), got 2025",
    ),
    "a content type that is not one": (
        {"upload_content_type": "csv"},
        "upload_content_type must be a media type such as text/csv (got 'csv')",
    ),
    "a method other than POST or PUT": (
        {"upload_method": "PATCH"},
        "upload_method must be one of POST, PUT (got 'PATCH')",
    ),
    "a path leading back up": (
        {"upload_path": "/v1/integrations/../../admin/{integration_id}"},
        "upload_path has a '.' or '..' segment, which would send the upload elsewhere on the "
        "server (got '/v1/integrations/../../admin/{integration_id}'); write the path without it",
    ),
    "a path leading back up, encoded": (
        {"upload_path": "/v1/%2E%2e/{integration_id}"},
        "upload_path has a '.' or '..' segment, which would send the upload elsewhere on the "
        "server (got '/v1/%2E%2e/{integration_id}'); write the path without it",
    ),
    "a path with '#'": (
        {"upload_path": "/v1/integrations/openai#/{integration_id}/upload"},
        "upload_path has '#', which ends a URL's path, so what follows it would never be sent "
        "(got '/v1/integrations/openai#/{integration_id}/upload'); remove it, or write %23 for "
        "a '#' in the path",
    ),
    "a path with a line break": (
        {"upload_path": "/v1/{integration_id}/upload\r\n"},
        "upload_path has a control character, such as a line break (got "
        "'/v1/{integration_id}/upload\\r\\n'); write it on one line",
    ),
    "a path of 5,000 characters": (
        {"upload_path": "/" + "v" * 4999},
        "upload_path is 5,000 characters long, more than an upload path needs (at most 1,000); "
        "the default is /v1/integrations/openai/{integration_id}/upload",
    ),
    "an integration_id of '..'": (
        {"integration_id": ".."},
        "integration_id '..' is not an ID: it names a folder, and would move the upload path; "
        "copy the ID from the integration's page in Pelanor",
    ),
    "an integration_id of '.'": (
        {"integration_id": "."},
        "integration_id '.' is not an ID: it names a folder, and would move the upload path; "
        "copy the ID from the integration's page in Pelanor",
    ),
    "an integration_id with a line break": (
        {"integration_id": "int-acme\r\n"},
        "integration_id has a control character, such as a line break (got 'int-acme\\r\\n'); "
        "copy the ID again from the integration's page in Pelanor, without it",
    ),
    "an integration_id of 5,000 characters": (
        {"integration_id": "i" * 5000},
        "integration_id is 5,000 characters long ('iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii...'), "
        "more than an ID has (at most 200 once URL-encoded); copy the ID from the "
        "integration's page in Pelanor",
    ),
    "an organization_id of '..' placed in the path": (
        {"organization_id": "..", "upload_path": "/v1/{organization_id}/{integration_id}"},
        "organization_id '..' is not an ID: it names a folder, and would move the upload path; "
        "copy the ID from OpenAI's organization settings (org-...)",
    ),
}


@pytest.mark.parametrize(("settings", "message"), BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_a_shape_that_cannot_work_is_one_line(settings: dict[str, Any], message: str) -> None:
    assert shape_problems(settings) == [message]
    if "integration_id" in settings or "organization_id" in settings:
        return  # IDs are not part of the shape: only checked with it at start
    with pytest.raises(ValueError, match=r".") as raised:
        upload_shape(settings)
    assert str(raised.value) == message


def test_an_organization_id_not_placed_in_the_path_is_not_checked_as_a_segment() -> None:
    assert shape_problems({"organization_id": ".."}) == []


def test_a_raw_body_with_no_fields_set_sends_none() -> None:
    assert upload_shape({"upload_body": "raw"}).fields == ()
    assert upload_shape({"upload_body": "raw", "upload_fields": {}}).fields == ()


def test_a_template_naming_the_organization_needs_one() -> None:
    with pytest.raises(ValueError, match=r".") as raised:
        PelanorClient(
            base_url="https://api.pelanor.io",
            integration_id="int-acme",
            api_token=TOKEN,
            shape=upload_shape({"upload_query": {"org": "{organization_id}"}}),
            request_timeout=DEFAULT_REQUEST_TIMEOUT,
            max_retry_seconds=DEFAULT_MAX_RETRY_SECONDS,
        )
    assert str(raised.value) == "organization_id is required: the upload request uses it"


def setting_errors(config: dict[str, Any]) -> list[str]:
    """The problems the settings object finds, in its order (none: it was built)."""
    try:
        TargetSettings.from_config(config)
    except ConfigValidationError as invalid:
        return list(invalid.errors)
    return []


def api_token(config: dict[str, Any]) -> str | None:
    """The token the settings send (a dry run's: no integration or records folder needed)."""
    settings = {"organization_id": "org-acme", "dry_run": True} | config
    return TargetSettings.from_config(settings).api_token


def test_the_token_id_and_secret_are_joined_as_pelanor_sends_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_FOR_THIS_TEST", "s3cr3t_v4lue")
    assert api_token({"api_token_id": "tokid", "api_token_secret": "s3cr3t"}) == "tokid:s3cr3t"
    assert (
        api_token({"api_token_id": "tokid", "api_token_secret_env": "SECRET_FOR_THIS_TEST"})
        == "tokid:s3cr3t_v4lue"
    )
    # Meltano's guard pins the unused settings to "" (meltano.yml): they count as unset.
    pinned = {"api_token": "", "api_token_env": "", "api_token_id_env": ""}
    assert api_token(pinned | {"api_token_id": "tokid", "api_token_secret": "s3cr3t"}) == (
        "tokid:s3cr3t"
    )


BAD_TOKENS = {
    "an ID without its secret": (
        {"api_token_id": "tokid"},
        "api_token_id is set but api_token_secret is not: set both (Pelanor shows the token ID "
        "and the token secret together), or the whole token as api_token",
    ),
    "a secret without its ID": (
        {"api_token_secret_env": "SECRET_FOR_THIS_TEST"},
        "api_token_secret is set but api_token_id is not: set both (Pelanor shows the token ID "
        "and the token secret together), or the whole token as api_token",
    ),
    "both ways of giving the token": (
        {"api_token": TOKEN, "api_token_id": "tokid", "api_token_secret": "s3cr3t"},
        "set api_token, or api_token_id and api_token_secret, not both",
    ),
    "a secret and its variable": (
        {"api_token_id": "tokid", "api_token_secret": "s", "api_token_secret_env": "X"},
        "set api_token_secret or api_token_secret_env, not both",
    ),
    "a variable that is not set": (
        {"api_token_id": "tokid", "api_token_secret_env": "PELANOR_SECRET_NOT_SET_ANYWHERE"},
        "api_token_secret_env names PELANOR_SECRET_NOT_SET_ANYWHERE, which is not set in the "
        "environment",
    ),
    "the whole token as the ID": (
        {"api_token_id": TOKEN, "api_token_secret": "s3cr3t"},
        "api_token_id contains ':'; set the token ID alone (the part before ':') with "
        "api_token_secret, or the whole '<id>:<secret>' as api_token",
    ),
    "a secret with a line break": (
        {"api_token_id": "tokid", "api_token_secret": "s3cr3t\n"},
        "api_token_secret contains whitespace or a line break; set it without spaces or "
        "newlines (copy it again, or strip the file or variable it comes from)",
    ),
}


@pytest.mark.parametrize(("settings", "message"), BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_token_id_and_secret_that_cannot_be_sent_is_one_line(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any], message: str
) -> None:
    monkeypatch.setenv("SECRET_FOR_THIS_TEST", "s3cr3t_v4lue")
    config = {"organization_id": "org-acme", "integration_id": "int-acme"} | settings
    assert setting_errors(config) == [message]


def test_a_dry_run_needs_neither_the_token_id_nor_its_secret() -> None:
    config = {"organization_id": "org-acme", "dry_run": True, "api_token_id": "tokid"}
    assert setting_errors(config) == []
