"""What the HTTP clients make of what comes back: a month is delivered only when Pelanor
accepted it, an answer is read up to a bound, and what retrying cannot fix (a name that
does not resolve, a certificate that fails verification, a redirect) is not retried.

Servers are local (tests/fault_server.py on 127.0.0.1); a name that does not resolve is the
resolver's answer, replaced in process, so no test sends a DNS query anywhere.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from openai_costs.safe_http import ANSWER_LIMIT
from tap_openai_costs.costs_api.client import OpenAIAPIError, OpenAICostsClient
from target_pelanor.client import (
    PelanorClient,
    PelanorError,
    PelanorNotAccepted,
    PelanorRejected,
)
from tests.exports import SAMPLES
from tests.fault_server import ENDLESS_LENGTH, Answer, FaultServer
from tests.singer import report, run_target, tap_output, target_config

MONTH = "2025-10"
TOKEN = "tok_8f3Kx2:s3cr3t_value"
NOT_JSON = "instead of Pelanor's JSON answer; check api_url, region and upload_path"


@pytest.fixture(autouse=True)
def no_proxy_no_ca_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clients go straight to the local server, and trust the usual CA bundle only."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


class Sleeps:
    """Injected sleep and clock: waits are recorded, and time moves only by them."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def pelanor(url: str, sleeps: Sleeps | None = None, **options: Any) -> PelanorClient:
    sleeps = sleeps or Sleeps()
    settings: dict[str, Any] = {"request_timeout": 5, "max_retry_seconds": 600} | options
    return PelanorClient(
        base_url=url,
        integration_id="int-acme",
        api_token=TOKEN,
        sleep=sleeps.sleep,
        clock=sleeps.clock,
        random=lambda: 1.0,
        **settings,
    )


def openai(url: str, sleeps: Sleeps) -> OpenAICostsClient:
    return OpenAICostsClient(
        admin_api_key="sk-admin-abcdefgh",
        base_url=url,
        request_timeout=5,
        max_retry_seconds=600,
        sleep=sleeps.sleep,
        clock=sleeps.clock,
        random=lambda: 1.0,
    )


def upload_error(client: PelanorClient) -> PelanorError:
    with client, pytest.raises(PelanorError) as raised:
        client.upload(month=MONTH, filename="cost.csv", content=b"a,b\n1,2\n")
    return raised.value


def html(title: str) -> Answer:
    page = f"<!DOCTYPE html>\n<html><head><title>\n  {title}\n</title></head><body>…</body>"
    return Answer(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})


NOT_ACCEPTED = {
    "an error object": (
        Answer(200, b'{"error": {"message": "integration int-acme is disabled"}}'),
        "HTTP 200 with an error: integration int-acme is disabled",
    ),
    "an error text": (
        Answer(201, b'{"id": "upl_1", "error": "month 2025-10 is locked"}'),
        "HTTP 201 with an error: month 2025-10 is locked",
    ),
    "an error flag": (
        Answer(202, b'{"id": "upl_1", "error": true}'),
        "HTTP 202 with an error: true",
    ),
    "a sign-in page": (
        html("Sign in &middot; Pelanor"),
        "HTTP 200 with an HTML page titled 'Sign in · Pelanor' instead of Pelanor's JSON "
        "answer; an HTML page (often a sign-in page) usually means a wrong api_url or region",
    ),
    "an empty body": (Answer(200, b""), f"HTTP 200 with an empty body {NOT_JSON}"),
    "a body that is not JSON": (
        Answer(201, b"OK\n"),
        f"HTTP 201 with a body that is not JSON ('OK') {NOT_JSON}",
    ),
    "JSON that is not an object": (
        Answer(202, b'["upl_1"]'),
        f"HTTP 202 with JSON that is not an object ('[\"upl_1\"]') {NOT_JSON}",
    ),
    "204 no content": (
        Answer(204),
        "HTTP 204 (no content), which is not an acceptance (that is HTTP 200, 201 or 202 with "
        "Pelanor's JSON answer); check api_url, region and upload_path",
    ),
}


@pytest.mark.parametrize(("answer", "said"), NOT_ACCEPTED.values(), ids=NOT_ACCEPTED.keys())
def test_a_2xx_that_is_not_pelanors_acceptance_fails_the_upload_saying_what_came_back(
    answer: Answer, said: str
) -> None:
    sleeps = Sleeps()
    with FaultServer(answer) as server:
        error = upload_error(pelanor(server.url, sleeps))
    assert isinstance(error, PelanorNotAccepted)
    assert str(error) == f"Pelanor did not accept the upload of {MONTH}: {said}"
    assert len(server.requests) == 1  # not retried
    assert sleeps.delays == []


@pytest.mark.parametrize("status", [200, 201, 202])
def test_200_201_and_202_with_a_json_object_accept_the_upload(status: int) -> None:
    with FaultServer(Answer(status, b'{"id": "upl_9", "error": null}')) as server:
        client = pelanor(server.url)
        with client:
            receipt = client.upload(month=MONTH, filename="cost.csv", content=b"a\n")
    assert (receipt.response_id, receipt.status_code, receipt.attempts) == ("upl_9", status, 1)


def test_an_answer_is_read_up_to_1_mib_and_a_longer_2xx_is_not_an_acceptance() -> None:
    with FaultServer(Answer(200, endless=True)) as server:
        error = upload_error(pelanor(server.url))
    assert str(error) == (
        f"Pelanor did not accept the upload of {MONTH}: HTTP 200 with an answer larger than "
        f"1 MiB {NOT_JSON}"
    )
    # The client hung up after its 1 MiB: the rest of the 1.5 GB was never sent (what the
    # socket buffers took before it hung up is at most a few MiB).
    assert ANSWER_LIMIT <= server.sent < 64 * ANSWER_LIMIT < ENDLESS_LENGTH


def test_an_error_answer_is_read_up_to_1_mib_too() -> None:
    body = b"bad request " + b"x" * (3 * ANSWER_LIMIT)
    with FaultServer(Answer(400, body)) as server:
        error = upload_error(pelanor(server.url))
    assert isinstance(error, PelanorRejected)
    assert str(error) == f"Pelanor rejected the upload of {MONTH} (HTTP 400): bad request " + (
        "x" * 188
    )


def test_a_redirect_is_not_followed_and_names_where_it_pointed() -> None:
    moved = Answer(302, b"", {"Location": "https://login.pelanor.example/sso?next=/upload"})
    with FaultServer(moved) as server:
        error = upload_error(pelanor(server.url))
    assert isinstance(error, PelanorRejected)
    assert str(error) == (
        f"Pelanor upload of {MONTH} failed: HTTP 302, redirect to login.pelanor.example not "
        "followed; check api_url, region and upload_path"
    )
    assert len(server.requests) == 1


def test_a_tls_certificate_that_fails_verification_is_not_retried_by_either_client() -> None:
    sleeps = Sleeps()
    with FaultServer(tls=True) as server:
        error = upload_error(pelanor(server.url, sleeps))
        with openai(server.url, sleeps) as client, pytest.raises(OpenAIAPIError) as tap_error:
            client.project_names()
    verification = (
        r"the TLS certificate of 127\.0\.0\.1 failed verification \(self[- ]signed certificate\)"
    )
    proxy = (
        "; behind a proxy that inspects TLS, set SSL_CERT_FILE to a CA bundle that includes "
        "its certificate"
    )
    assert re.fullmatch(
        rf"Pelanor upload of {MONTH} failed: {verification}; not retried: check api_url or "
        rf"region{proxy}",
        str(error),
    )
    assert re.fullmatch(
        rf"OpenAI GET /v1/organization/projects failed: {verification}; not retried: check "
        rf"api_base_url{proxy}",
        str(tap_error.value),
    )
    assert (error.attempts, tap_error.value.attempts) == (1, 1)
    assert sleeps.delays == []
    assert server.requests == []  # nothing was sent: the token never left


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The resolver's answer for names under .invalid (RFC 6761): ``EAI_NONAME`` (no such
    name) unless the test says otherwise; other names resolve as usual."""
    answers = {"errno": socket.EAI_NONAME}
    real = socket.getaddrinfo
    messages = {socket.EAI_NONAME: "Name or service not known"}
    messages[socket.EAI_AGAIN] = "Temporary failure in name resolution"

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            raise socket.gaierror(answers["errno"], messages[answers["errno"]])
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_a_host_name_that_does_not_resolve_is_not_retried_by_either_client(resolver) -> None:
    sleeps = Sleeps()
    error = upload_error(pelanor("https://api.pelanor.invalid", sleeps))
    with (
        openai("https://api.openai.invalid", sleeps) as client,
        pytest.raises(OpenAIAPIError) as tap_error,
    ):
        client.project_names()
    assert str(error) == (
        f"Pelanor upload of {MONTH} failed: the host name api.pelanor.invalid does not resolve "
        "(Name or service not known); not retried: check api_url or region (and this "
        "machine's DNS)"
    )
    assert str(tap_error.value) == (
        "OpenAI GET /v1/organization/projects failed: the host name api.openai.invalid does "
        "not resolve (Name or service not known); not retried: check api_base_url (and this "
        "machine's DNS)"
    )
    assert sleeps.delays == []


def test_a_resolver_that_does_not_answer_is_retried_within_the_budget(resolver) -> None:
    resolver["errno"] = socket.EAI_AGAIN
    sleeps = Sleeps()
    error = upload_error(pelanor("https://api.pelanor.invalid", sleeps, max_retry_seconds=10))
    assert str(error).startswith(
        f"Pelanor upload of {MONTH} failed after 4 attempts over 7s: last error connection "
        "error (ConnectError: [Errno -3] Temporary failure in name resolution)"
    )
    assert sleeps.delays == [1.0, 2.0, 4.0]


def test_a_month_pelanor_did_not_accept_is_not_delivered(tmp_path: Path) -> None:
    """End to end: the table says what came back, no state records the month, exit 1."""
    messages = tap_output(tmp_path, SAMPLES / "acme" / "cost_2025-10-01_2025-10-31.csv")
    with FaultServer(html("Sign in to Pelanor")) as server:
        result = run_target(tmp_path, target_config(server), messages)
    assert result.returncode == 1
    assert report(result)[1][4] == (
        f"failed: Pelanor did not accept the upload of {MONTH}: HTTP 200 with an HTML page "
        "titled 'Sign in to Pelanor' instead of Pelanor's JSON answer; an HTML page (often a "
        "sign-in page) usually means a wrong api_url or region"
    )
    assert result.errors == [
        "target-pelanor: error: 1 month(s) not uploaded (see the table); no state was saved, "
        "so the next run retries them"
    ]
    assert result.last_state is None
    assert list(Path(os.environ["XDG_STATE_HOME"]).rglob("*.json")) == []  # no record either
