"""What `meltano config test target-pelanor` and `meltano invoke target-pelanor:check` check,
without uploading (127.0.0.1 only).

Meltano tests a loader by sending it a stream of its own and passes it when the loader exits
0 and no line it writes contains "error" or "exception": the messages below are the ones
Meltano 4.4.1's LoaderTestService writes, byte for byte.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from local_sandboxes.pelanor import PelanorSandbox
from target_pelanor.connection_check import check_path_problems, render_check_path
from tests.exports import SAMPLES
from tests.fault_server import Answer, FaultServer
from tests.pelanor_sandbox import TOKEN
from tests.singer import Run, run, run_target, tap_output, target_config

#: What Meltano 4.4.1 sends a loader it tests (SCHEMA, RECORD, STATE).
MELTANO_TEST_MESSAGES = "".join(
    json.dumps(message) + "\n"
    for message in (
        {
            "type": "SCHEMA",
            "stream": "meltano_test_stream",
            "schema": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "key_properties": ["id"],
        },
        {
            "type": "RECORD",
            "stream": "meltano_test_stream",
            "record": {
                "id": 1,
                "name": "Meltano Test Record",
                "created_at": "2025-09-29T00:00:00Z",
            },
        },
        {"type": "STATE", "value": {"bookmarks": {"meltano_test_stream": {"last_record": 1}}}},
    )
)
CHECK_PATH = "/v1/integrations/openai/{integration_id}"
NO_CHECK_PATH = (
    "check_path is not set, so no authenticated request was sent: the token and "
    "integration_id are first tried by an upload (see docs/settings.md)"
)


def logged(result: Run) -> list[str]:
    """The messages of the target's log lines (``time | LEVEL | logger | message``)."""
    return [
        line.rsplit(" | ", 1)[-1]
        for line in result.stderr.splitlines()
        if "| target-pelanor " in line and "| INFO " in line
    ]


def passes_meltanos_test(result: Run) -> bool:
    """Meltano's verdict on a tested loader."""
    output = (result.stdout + result.stderr).lower()
    return result.returncode == 0 and "error" not in output and "exception" not in output


def test_meltanos_test_stream_checks_pelanor_and_uploads_nothing(
    tmp_path: Path, pelanor: PelanorSandbox
) -> None:
    result = run_target(tmp_path, target_config(pelanor), MELTANO_TEST_MESSAGES)

    assert passes_meltanos_test(result), result.stderr
    assert result.stdout == ""  # no state confirmed: Meltano's test state is not ours
    assert logged(result)[-3:] == [
        "Checking target-pelanor without uploading: the settings are usable",
        f"Pelanor at {pelanor.url} answered over plain http (a local sandbox) (HTTP 404 to "
        "a request without the token)",
        NO_CHECK_PATH,
    ]
    assert pelanor.requests == []  # the sandbox records uploads only: none was tried
    assert pelanor.uploads() == []


def test_check_path_sends_one_authenticated_request(tmp_path: Path) -> None:
    with FaultServer(Answer(404), Answer(200, b'{"id": "int-acme"}')) as server:
        config = target_config_for(server.url) | {"check_path": CHECK_PATH}
        result = run_target(tmp_path, config, MELTANO_TEST_MESSAGES)

    assert passes_meltanos_test(result), result.stderr
    assert logged(result)[-1] == (
        f"Pelanor answered GET {server.url}/v1/integrations/openai/int-acme with HTTP 200: it "
        "takes the token for integration int-acme"
    )
    assert server.requests == [("GET", "/"), ("GET", "/v1/integrations/openai/int-acme")]
    assert server.authorizations == [None, f"Bearer {TOKEN}"]
    assert TOKEN not in result.stderr


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        (401, "check api_token (or api_token_id and api_token_secret)"),
        (404, "check integration_id and check_path"),
    ],
)
def test_a_refused_check_request_says_what_to_fix(tmp_path: Path, status: int, fix: str) -> None:
    body = json.dumps({"error": {"message": "nope"}}).encode()
    with FaultServer(Answer(404), Answer(status, body)) as server:
        config = target_config_for(server.url) | {"check_path": CHECK_PATH}
        result = run_target(tmp_path, config, MELTANO_TEST_MESSAGES)

    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: Pelanor refused the check request GET {server.url}"
        f"/v1/integrations/openai/int-acme (HTTP {status}): nope; {fix}"
    ]


def test_a_certificate_that_fails_verification_fails_the_check(tmp_path: Path) -> None:
    with FaultServer(tls=True) as server:
        config = target_config_for(server.url)
        result = run_target(tmp_path, config, MELTANO_TEST_MESSAGES)

    assert result.returncode == 1
    (error,) = result.errors
    assert error.startswith(
        f"target-pelanor: error: Pelanor at {server.url} cannot be reached: the TLS "
        "certificate of 127.0.0.1 failed verification ("
    )
    assert error.endswith("); check api_url or region")
    assert server.requests == []


def test_nothing_listening_fails_the_check(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    result = run_target(tmp_path, target_config_for(url), MELTANO_TEST_MESSAGES)

    assert result.returncode == 1
    assert result.errors == [
        f"target-pelanor: error: Pelanor at {url} cannot be reached: could not connect to "
        "127.0.0.1 (ConnectError); check api_url or region"
    ]


def test_check_flag_runs_the_same_checks_without_input(
    tmp_path: Path, pelanor: PelanorSandbox
) -> None:
    """`meltano invoke target-pelanor:check` (the definitions' `check` command)."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(target_config(pelanor)))
    result = run("target-pelanor", "--config", str(config_path), "--check")

    assert result.returncode == 0, result.stderr
    assert logged(result)[-2:] == [
        f"Pelanor at {pelanor.url} answered over plain http (a local sandbox) (HTTP 404 to "
        "a request without the token)",
        NO_CHECK_PATH,
    ]


def test_check_flag_reads_settings_from_the_environment_as_meltano_passes_them(
    tmp_path: Path, pelanor: PelanorSandbox
) -> None:
    """The `check` command runs `--config ENV --check`: Meltano exports every setting as
    TARGET_PELANOR_<SETTING> (an inheriting loader's own values included)."""
    env = {
        "TARGET_PELANOR_ORGANIZATION_ID": "org-acme",
        "TARGET_PELANOR_INTEGRATION_ID": "int-acme",
        "TARGET_PELANOR_API_TOKEN": TOKEN,
        "TARGET_PELANOR_API_URL": pelanor.url,
        "TARGET_PELANOR_CHECK_PATH": "/healthz",
    }
    result = run("target-pelanor", "--config", "ENV", "--check", env=env)

    assert result.returncode == 0, result.stderr
    assert logged(result)[-1] == (
        f"Pelanor answered GET {pelanor.url}/healthz with HTTP 200: it takes the token for "
        "integration int-acme"
    )


def test_settings_that_cannot_work_fail_the_check_with_one_line_naming_them_all(
    tmp_path: Path,
) -> None:
    config = {"organization_id": "org-acme", "api_url": "http://127.0.0.1:9", "check_path": "x"}
    result = run_target(tmp_path, config, MELTANO_TEST_MESSAGES)

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].rsplit(" | ", 1)[-1] == (
        "Config validation failed, 3 problems: (1) api_token is required unless dry_run is "
        "true (2) check_path must be a path starting with '/', such as "
        "/v1/integrations/openai/{integration_id} (got 'x') (3) integration_id is required "
        "unless dry_run is true"
    )


def test_meltanos_test_stream_never_comes_with_cost_streams(
    tmp_path: Path, pelanor: PelanorSandbox
) -> None:
    messages = tap_output(tmp_path, SAMPLES / "acme" / "cost_2025-10-01_2025-10-31.csv")
    result = run_target(tmp_path, target_config(pelanor), messages + MELTANO_TEST_MESSAGES)

    assert result.returncode == 1
    assert result.errors[-1] == (
        "target-pelanor: error: meltano_test_stream (Meltano's config test) comes alone: a "
        "run that tests target-pelanor loads no other stream"
    )


def target_config_for(url: str) -> dict[str, str]:
    return {
        "organization_id": "org-acme",
        "integration_id": "int-acme",
        "api_token": TOKEN,
        "api_url": url,
    }


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (
            "v1/check",
            "check_path must be a path starting with '/', such as "
            "/v1/integrations/openai/{integration_id} (got 'v1/check')",
        ),
        (
            "/v1/../admin",
            "check_path must not contain '..' segments (got '/v1/../admin')",
        ),
        (
            "/v1/check#part",
            "check_path must be a plain path without spaces, control characters, '?', '#' or "
            "backslashes, such as /v1/integrations/openai/{integration_id} "
            "(got '/v1/check#part')",
        ),
        (
            "/v1/check\r\nX: y",
            "check_path must be a plain path without spaces, control characters, '?', '#' or "
            "backslashes, such as /v1/integrations/openai/{integration_id} "
            "(got '/v1/check\\r\\nX: y')",
        ),
        (
            "/v1/{month}",
            "check_path may use only {organization_id}, {integration_id} (got 'month')",
        ),
        (
            "/v1/{integration_id",
            "check_path has an unmatched brace (got '/v1/{integration_id'); such as "
            "/v1/integrations/openai/{integration_id}",
        ),
    ],
    ids=["relative", "dot-dot", "fragment", "CR LF", "a month", "unmatched brace"],
)
def test_check_path_is_refused_at_start_when_it_cannot_be_one_path(path: str, problem: str) -> None:
    assert check_path_problems(path) == [problem]


def test_each_value_in_check_path_is_one_path_segment() -> None:
    config = {"integration_id": "../admin", "organization_id": "org a"}
    assert render_check_path("/v1/{organization_id}/{integration_id}", config) == (
        "/v1/org%20a/..%2Fadmin"
    )
