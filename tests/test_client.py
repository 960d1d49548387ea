"""PelanorClient against the in-process Pelanor sandbox on 127.0.0.1 (no other network)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_sandboxes.pelanor import PelanorSandbox
from target_pelanor.client import (
    DEFAULT_UPLOAD_PATH,
    REGION_URLS,
    PelanorClient,
    PelanorError,
    PelanorRejected,
    UploadReceipt,
    resolve_base_url,
)
from target_pelanor.settings import DEFAULT_MAX_RETRY_SECONDS, DEFAULT_REQUEST_TIMEOUT
from target_pelanor.upload_request import DEFAULT_SHAPE, UploadShape
from tests.fake_clock import FakeClock
from tests.pelanor_sandbox import TOKEN, running_sandbox

UTC = timezone.utc  # datetime.UTC needs Python 3.11
MONTH = "2025-10"
FILENAME = "cost_2025-10-01_2025-10-31.csv"
CSV = (
    b"start_time,end_time,start_time_iso,end_time_iso,amount_value,amount_currency,line_item,"
    b"project_id,organization_id,project_name,organization_name\n"
    b"1759276800,1759363200,2025-10-01T00:00:00+00:00,2025-10-02T00:00:00+00:00,"
    b'0.8958740000000000,usd,"gpt-4o-2024-08-06, input",proj_abc,org-acme,Acme App,Acme Inc\n'
)


#: The settings' defaults, for a client made without the target.
TIMES: dict[str, Any] = {
    "request_timeout": DEFAULT_REQUEST_TIMEOUT,
    "max_retry_seconds": DEFAULT_MAX_RETRY_SECONDS,
}


def make_client(url: str, **overrides: Any) -> PelanorClient:
    options: dict[str, Any] = {
        "base_url": url,
        "integration_id": "int-acme",
        "api_token": TOKEN,
        "request_timeout": 5.0,
        "max_retry_seconds": DEFAULT_MAX_RETRY_SECONDS,
        "sleep": FakeClock().sleep,
        "random": lambda: 0.5,
    }
    options.update(overrides)
    return PelanorClient(**options)


def upload(client: PelanorClient, content: bytes = CSV) -> UploadReceipt:
    return client.upload(month=MONTH, filename=FILENAME, content=content)


def test_success_returns_id_and_stores_exact_bytes(start_pelanor: Callable[..., PelanorSandbox]):
    sandbox = start_pelanor()
    content = CSV.replace(b"\n", b"\r\n").replace(b"Acme App", "Acmé App".encode())
    fake_time = FakeClock()
    with make_client(sandbox.url, sleep=fake_time.sleep) as client:
        receipt = upload(client, content)

    assert receipt.status_code == 200
    assert receipt.attempts == 1
    assert receipt.response_id is not None
    assert re.fullmatch(r"upl_[0-9a-f]{12}", receipt.response_id)
    assert fake_time.sleeps == []
    stored = sandbox.data_dir / "files" / "int-acme" / "2025-10.csv"
    assert sandbox.stored_files() == [stored]
    assert stored.read_bytes() == content
    [logged] = sandbox.uploads()
    assert logged["id"] == receipt.response_id
    assert logged["filename"] == FILENAME
    assert logged["bytes"] == len(content)
    assert logged["rows"] == 1


def test_a_file_is_streamed_from_disk_on_every_attempt(
    start_pelanor: Callable[..., PelanorSandbox], tmp_path: Path
):
    sandbox = start_pelanor(faults=[{"kind": "drop", "times": 1}, {"kind": "500", "times": 1}])
    path = tmp_path / FILENAME
    path.write_bytes(CSV * 1 + CSV.split(b"\n", 1)[1] * 2000)
    with make_client(sandbox.url) as client:
        receipt = client.upload(month=MONTH, filename=FILENAME, content=path)
    assert receipt.attempts == 3
    stored = sandbox.data_dir / "files" / "int-acme" / "2025-10.csv"
    assert stored.read_bytes() == path.read_bytes()


def test_multipart_fields_seen_by_server(start_pelanor: Callable[..., PelanorSandbox]):
    sandbox = start_pelanor()
    with make_client(sandbox.url) as client:
        upload(client)

    [seen] = sandbox.requests
    assert seen.method == "POST"
    assert seen.path == "/v1/integrations/openai/int-acme/upload"
    assert seen.status == 200
    assert seen.month == MONTH
    assert seen.filename == FILENAME
    assert seen.file_content_type == "text/csv"
    assert seen.file_bytes == len(CSV)
    assert sorted(seen.form_fields) == ["file", "month"]
    assert seen.content_type is not None
    assert seen.content_type.startswith("multipart/form-data; boundary=")
    assert seen.auth_scheme == "Bearer"
    assert seen.user_agent is not None
    assert re.fullmatch(r"target-pelanor/\S+", seen.user_agent)


def test_request_headers_and_path_exact() -> None:
    """The raw request as sent, checked without any server (MockTransport, no sockets)."""
    captured: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        captured.append(request)
        return httpx.Response(201, json={"id": "upl_x"})

    client = make_client(
        "https://api.pelanor.io/",
        integration_id="int/acme",
        transport=httpx.MockTransport(handler),
    )
    receipt = upload(client)
    client.close()

    assert receipt == UploadReceipt(response_id="upl_x", status_code=201, attempts=1)
    [request] = captured
    assert str(request.url) == "https://api.pelanor.io/v1/integrations/openai/int%2Facme/upload"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["User-Agent"].startswith("target-pelanor/")
    body = request.content
    assert b'Content-Disposition: form-data; name="month"\r\n\r\n2025-10\r\n' in body
    assert (
        b'Content-Disposition: form-data; name="file"; filename="' + FILENAME.encode() + b'"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + CSV + b"\r\n"
    ) in body


@pytest.mark.parametrize(
    ("fault", "attempts", "min_first_delay"),
    [
        ({"kind": "429", "retry_after": 1, "times": 1}, 2, 1.0),
        ({"kind": "500", "times": 2}, 3, 0.0),
        ({"kind": "503", "times": 1}, 2, 0.0),
        ({"kind": "drop", "times": 1}, 2, 0.0),
        ({"kind": "slow", "seconds": 1, "times": 1}, 2, 0.0),
    ],
    ids=["429", "500x2", "503", "drop", "slow"],
)
def test_each_fault_retried_to_exactly_one_stored_file(
    start_pelanor: Callable[..., PelanorSandbox],
    fault: dict[str, Any],
    attempts: int,
    min_first_delay: float,
):
    sandbox = start_pelanor(faults=[{"integration_id": "int-acme", "month": MONTH, **fault}])
    fake_time = FakeClock()
    # Only the slow fault needs a short timeout (the server sleeps 1s); others get slack.
    timeout = 0.3 if fault["kind"] == "slow" else 5.0
    with make_client(sandbox.url, sleep=fake_time.sleep, request_timeout=timeout) as client:
        receipt = upload(client)
    sandbox.stop()  # waits for a slow request still sleeping on the server to finish

    assert receipt.attempts == attempts
    assert receipt.status_code == 200
    assert len(fake_time.sleeps) == attempts - 1
    assert fake_time.sleeps[0] >= min_first_delay
    assert [f.relative_to(sandbox.data_dir).as_posix() for f in sandbox.stored_files()] == [
        "files/int-acme/2025-10.csv"
    ]
    assert sandbox.stored_files()[0].read_bytes() == CSV
    assert [r.fault for r in sandbox.requests].count(fault["kind"]) == fault["times"]


def test_fault_filters_do_not_match_other_month(start_pelanor: Callable[..., PelanorSandbox]):
    sandbox = start_pelanor(
        faults=[{"integration_id": "int-acme", "month": "2025-09", "kind": "500"}]
    )
    with make_client(sandbox.url) as client:
        assert upload(client).attempts == 1


def test_backoff_is_exponential_with_full_jitter(start_pelanor: Callable[..., PelanorSandbox]):
    sandbox = start_pelanor(faults=[{"kind": "500", "times": 4}])
    fake_time = FakeClock()
    with make_client(sandbox.url, sleep=fake_time.sleep, random=lambda: 0.5) as client:
        assert upload(client).attempts == 5
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_retry_after_seconds_honoured(start_pelanor: Callable[..., PelanorSandbox]):
    sandbox = start_pelanor(faults=[{"kind": "429", "retry_after": 3, "times": 2}])
    fake_time = FakeClock()
    with make_client(sandbox.url, sleep=fake_time.sleep, random=lambda: 0.0) as client:
        assert upload(client).attempts == 3
    assert fake_time.sleeps == [3.0, 3.0]


def test_retry_after_http_date_honoured() -> None:
    responses = iter(
        [
            httpx.Response(
                503,
                headers={
                    "Retry-After": format_datetime(
                        datetime.now(UTC) + timedelta(seconds=30), usegmt=True
                    )
                },
                json={"message": "maintenance"},
            ),
            httpx.Response(200, json={"id": "upl_ok"}),
        ]
    )
    fake_time = FakeClock()
    client = make_client(
        "https://api.pelanor.io",
        sleep=fake_time.sleep,
        random=lambda: 0.0,
        transport=httpx.MockTransport(lambda request: next(responses)),
    )
    assert upload(client).attempts == 2
    [delay] = fake_time.sleeps
    assert 25.0 <= delay <= 30.0


def test_retry_after_does_not_shorten_jitter(start_pelanor: Callable[..., PelanorSandbox]):
    sandbox = start_pelanor(faults=[{"kind": "503", "retry_after": 0, "times": 1}])
    fake_time = FakeClock()
    with make_client(sandbox.url, sleep=fake_time.sleep, random=lambda: 0.75) as client:
        upload(client)
    assert fake_time.sleeps == [0.75]


@pytest.mark.parametrize(
    ("integration_id", "token", "content", "expected"),
    [
        (
            "int-acme",
            "tok_wrong",
            CSV,
            "Pelanor rejected the upload of 2025-10 (HTTP 401): invalid bearer token; "
            "check api_token (or api_token_id and api_token_secret)",
        ),
        (
            "int-nope",
            TOKEN,
            CSV,
            "Pelanor rejected the upload of 2025-10 (HTTP 404): unknown integration int-nope; "
            "check integration_id and upload_path",
        ),
        (
            "int-globex",
            TOKEN,
            CSV,
            "Pelanor rejected the upload of 2025-10 (HTTP 422): organization_id org-acme does "
            "not match this integration (org-globex)",
        ),
        (
            "int-acme",
            TOKEN,
            b"start_time,end_time\n1,2\n",
            "Pelanor rejected the upload of 2025-10 (HTTP 422): missing required columns: "
            "amount_value, amount_currency, line_item, project_id, organization_id, "
            "project_name, organization_name",
        ),
    ],
    ids=["401", "404", "422-org", "422-columns"],
)
def test_rejections_not_retried(
    start_pelanor: Callable[..., PelanorSandbox],
    integration_id: str,
    token: str,
    content: bytes,
    expected: str,
):
    sandbox = start_pelanor()
    fake_time = FakeClock()
    with (
        make_client(
            sandbox.url, sleep=fake_time.sleep, integration_id=integration_id, api_token=token
        ) as client,
        pytest.raises(PelanorRejected) as info,
    ):
        upload(client, content)

    assert str(info.value) == expected
    assert info.value.attempts == 1
    assert len(sandbox.requests) == 1
    assert fake_time.sleeps == []
    assert sandbox.stored_files() == []


def test_rejection_message_from_other_body_shapes() -> None:
    bodies = iter(
        [
            httpx.Response(400, json={"detail": "month is required"}),
            httpx.Response(403, json={"message": "token lacks scope"}),
            httpx.Response(409, text="conflict\n" + "x" * 300),
        ]
    )
    client = make_client(
        "https://api.pelanor.io",
        transport=httpx.MockTransport(lambda request: next(bodies)),
    )
    messages = []
    for _ in range(3):
        with pytest.raises(PelanorRejected) as info:
            upload(client)
        messages.append(str(info.value))
    assert messages == [
        "Pelanor rejected the upload of 2025-10 (HTTP 400): month is required",
        "Pelanor rejected the upload of 2025-10 (HTTP 403): token lacks scope; "
        "check api_token (or api_token_id and api_token_secret)",
        "Pelanor rejected the upload of 2025-10 (HTTP 409): conflict " + "x" * 191,
    ]


def test_retry_budget_exhausted_message_exact(start_pelanor: Callable[..., PelanorSandbox]):
    sandbox = start_pelanor(faults=[{"kind": "503", "times": 100}])
    fake_time = FakeClock()

    with (
        make_client(
            sandbox.url,
            sleep=fake_time.sleep,
            random=lambda: 1.0,
            clock=fake_time.clock,
            max_retry_seconds=10,
        ) as client,
        pytest.raises(PelanorError) as info,
    ):
        upload(client)

    assert not isinstance(info.value, PelanorRejected)
    assert str(info.value) == (
        "Pelanor upload of 2025-10 failed after 4 attempts over 7s: "
        "last error HTTP 503: service unavailable (injected fault)"
    )
    assert fake_time.sleeps == [1.0, 2.0, 4.0]
    assert len(sandbox.requests) == 4
    assert sandbox.stored_files() == []


def test_backoff_capped_at_60s() -> None:
    fake_time = FakeClock()
    client = make_client(
        "https://api.pelanor.io",
        sleep=fake_time.sleep,
        random=lambda: 1.0,
        clock=lambda: 0.0,
        transport=httpx.MockTransport(lambda request: httpx.Response(502, text="bad gateway")),
    )
    with pytest.raises(PelanorError, match=r"after 100 attempts over 0s: last error HTTP 502"):
        upload(client)
    assert fake_time.sleeps[:8] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_connection_refused_retried_then_reported(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sandbox:
        url = sandbox.url
    # nothing listens on this loopback port any more
    fake_time = FakeClock(now=0.0)

    client = make_client(
        url,
        sleep=fake_time.sleep,
        random=lambda: 1.0,
        clock=fake_time.clock,
        max_retry_seconds=2,
    )
    with pytest.raises(PelanorError) as info:
        upload(client)
    assert str(info.value).startswith(
        "Pelanor upload of 2025-10 failed after 2 attempts over 1s: last error connection error"
    )


@pytest.mark.parametrize(
    ("region", "api_url", "expected"),
    [
        ("us", None, "https://api.pelanor.io"),
        ("eu", None, "https://api-eu.pelanor.io"),
        ("EU", "", "https://api-eu.pelanor.io"),
        ("us", "https://pelanor.example.com/", "https://pelanor.example.com"),
        ("nowhere", "https://pelanor.example.com/api", "https://pelanor.example.com/api"),
        ("us", "http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("us", "http://127.5.6.7:8080/", "http://127.5.6.7:8080"),
        ("us", "http://localhost:9", "http://localhost:9"),
        ("us", "http://[::1]:9", "http://[::1]:9"),
    ],
)
def test_resolve_base_url_accepts(region: str, api_url: str | None, expected: str):
    assert resolve_base_url(region, api_url) == expected


def test_region_urls() -> None:
    assert REGION_URLS == {"us": "https://api.pelanor.io", "eu": "https://api-eu.pelanor.io"}
    assert DEFAULT_UPLOAD_PATH == "/v1/integrations/openai/{integration_id}/upload"


@pytest.mark.parametrize(
    ("region", "api_url", "message"),
    [
        (
            "us",
            "http://pelanor.example.com",
            "api_url must use https; plain http is only allowed for loopback hosts "
            "(127.0.0.0/8, ::1, localhost), got http://pelanor.example.com",
        ),
        (
            "us",
            "http://10.0.0.1:8080",
            "api_url must use https; plain http is only allowed for loopback hosts "
            "(127.0.0.0/8, ::1, localhost), got http://10.0.0.1",
        ),
        (
            "us",
            "ftp://pelanor.example.com",
            "api_url must be an absolute https:// URL such as https://api.pelanor.io "
            "(got 'ftp://pelanor.example.com')",
        ),
        (
            "us",
            "https://user:pw@pelanor.example.com",
            "api_url must not contain credentials; use api_token",
        ),
        ("mars", None, "region must be one of: us, eu (got 'mars'); or set api_url"),
    ],
)
def test_resolve_base_url_refuses(region: str, api_url: str | None, message: str):
    with pytest.raises(ValueError, match=r".") as info:
        resolve_base_url(region, api_url)
    assert str(info.value) == message


def test_token_never_in_errors_repr_or_logs(
    start_pelanor: Callable[..., PelanorSandbox], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    sandbox = start_pelanor(
        faults=[{"kind": "429", "retry_after": 1, "times": 1}, {"kind": "drop"}]
    )
    texts: list[str] = []
    with make_client(sandbox.url, request_timeout=2) as client:
        texts.append(repr(client))
        texts.append(str(vars(client)))
        upload(client)
    with make_client(sandbox.url, integration_id="int-nope") as client:
        with pytest.raises(PelanorRejected) as rejected:
            upload(client)
        texts += [str(rejected.value), repr(rejected.value)]

    fake_time = FakeClock(now=0.0)

    echo = httpx.MockTransport(
        lambda request: httpx.Response(500, text=request.headers["Authorization"])
    )
    with make_client(
        "https://api.pelanor.io",
        transport=echo,
        sleep=fake_time.sleep,
        random=lambda: 1.0,
        clock=fake_time.clock,
        max_retry_seconds=1,
    ) as client:
        with pytest.raises(PelanorError) as failed:
            upload(client)
        texts += [str(failed.value), repr(failed.value)]

    assert texts[0] == (
        f"PelanorClient(base_url={sandbox.url!r}, integration_id='int-acme', "
        "upload_path='/v1/integrations/openai/{integration_id}/upload')"
    )
    assert str(failed.value) == (
        "Pelanor upload of 2025-10 failed after 2 attempts over 1s: last error HTTP 500: Bearer ***"
    )
    assert any("retrying" in r.getMessage() for r in caplog.records)
    for text in [*texts, caplog.text, *(r.getMessage() for r in caplog.records)]:
        assert TOKEN not in text


def test_invalid_constructor_arguments_do_not_echo_token() -> None:
    with pytest.raises(ValueError, match="api_token") as info:
        PelanorClient(base_url="https://x", integration_id="i", api_token="tok secret\n", **TIMES)
    assert str(info.value) == (
        "api_token contains whitespace or a line break; set it without spaces or newlines "
        "(copy it again, or strip the file or variable it comes from)"
    )
    with pytest.raises(ValueError, match="upload_path"):
        PelanorClient(
            base_url="https://x",
            integration_id="i",
            api_token="t",
            shape=replace(DEFAULT_SHAPE, path="/{x}"),
            **TIMES,
        )
    with (
        PelanorClient(base_url="https://x", integration_id="i", api_token="t", **TIMES) as client,
        pytest.raises(ValueError, match="month must be YYYY-MM"),
    ):
        client.upload(month="2025-13", filename="f.csv", content=b"")


@pytest.mark.parametrize("body", ["multipart", "raw"])
def test_a_large_upload_says_how_much_is_sent_about_every_ten_seconds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, body: str
) -> None:
    """1,000,000 bytes read by httpx 64 KiB at a time while the clock moves 4 s at each look:
    a line once 10 s have passed since the last; the request is as for the plain file."""
    path = tmp_path / FILENAME
    path.write_bytes(bytes(range(250)) * 4000)
    sent: list[httpx.Request] = []

    def pelanor(request: httpx.Request) -> httpx.Response:
        request.read()
        sent.append(request)
        return httpx.Response(200, json={"id": "upl_1"})

    ticks = iter(range(0, 1000, 4))
    client = make_client(
        "https://api.pelanor.io",
        organization_id="org-acme",
        shape=UploadShape(body=body, fields=() if body == "raw" else DEFAULT_SHAPE.fields),
        transport=httpx.MockTransport(pelanor),
        progress_clock=lambda: next(ticks),
    )
    with client, caplog.at_level(logging.INFO, logger="target_pelanor.client"):
        client.upload(month=MONTH, filename=FILENAME, content=path)
    assert [r.getMessage() for r in caplog.records if ": sending" in r.getMessage()] == [
        "org-acme 2025-10: sending 1.0 MB (1,000,000 bytes) to Pelanor",
        "org-acme 2025-10: sending, 19% (196.6 kB of 1.0 MB) sent in 12.0 s",
        "org-acme 2025-10: sending, 39% (393.2 kB of 1.0 MB) sent in 24.0 s",
        "org-acme 2025-10: sending, 58% (589.8 kB of 1.0 MB) sent in 36.0 s",
        "org-acme 2025-10: sending, 78% (786.4 kB of 1.0 MB) sent in 48.0 s",
        "org-acme 2025-10: sending, 98% (983.0 kB of 1.0 MB) sent in 60.0 s",
    ]
    (request,) = sent
    assert "Transfer-Encoding" not in request.headers
    assert int(request.headers["Content-Length"]) == len(request.content)
    if body == "raw":
        assert request.content == path.read_bytes()
    else:
        assert path.read_bytes() in request.content
