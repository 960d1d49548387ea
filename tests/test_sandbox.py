"""The local Pelanor sandbox: contract checks, storage, faults and the CLI (127.0.0.1 only)."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_sandboxes.pelanor import PelanorSandbox, main, parse_multipart
from tests.pelanor_sandbox import TOKEN, running_sandbox, sandbox_config

HEADER = (
    "start_time,end_time,start_time_iso,end_time_iso,amount_value,amount_currency,line_item,"
    "project_id,organization_id,project_name,organization_name\n"
)
ROW = (
    "1759276800,1759363200,2025-10-01T00:00:00+00:00,2025-10-02T00:00:00+00:00,"
    '0.8958740000000000,usd,"gpt-4o-2024-08-06, input",proj_abc,org-acme,Acme App,Acme Inc\n'
)
CSV = (HEADER + ROW).encode()
CONFIG: dict[str, Any] = sandbox_config(faults=[])
#: The sandbox's command, as `make install` puts it in the venv running the tests.
PELANOR_SANDBOX = Path(sys.executable).parent / "pelanor-sandbox"
PATH = "/v1/integrations/openai/{}/upload"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[PelanorSandbox]:
    with running_sandbox(tmp_path / "pelanor") as running:
        yield running


@pytest.fixture
def http(sandbox: PelanorSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=5) as client:
        yield client


def post(
    http: httpx.Client,
    integration_id: str = "int-acme",
    *,
    content: bytes = CSV,
    month: str | None = "2025-10",
    token: str | None = TOKEN,
    filename: str = "cost_2025-10-01_2025-10-31.csv",
    with_file: bool = True,
    timeout: float = 5.0,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = {"month": month} if month is not None else {"other": "x"}
    files = {"file": (filename, content, "text/csv")} if with_file else {"x": ("x", b"", "a/b")}
    return http.post(
        PATH.format(integration_id), headers=headers, data=data, files=files, timeout=timeout
    )


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["code"], body["message"]


def test_healthz(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_url_file_written(sandbox: PelanorSandbox) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.url)
    assert (sandbox.data_dir / "sandbox.url").read_text() == sandbox.url


def test_accepts_and_stores_exact_bytes(sandbox: PelanorSandbox, http: httpx.Client) -> None:
    content = "\ufeff".encode() + CSV.replace(b"\n", b"\r\n").replace(b"Acme App", "Acmé".encode())
    response = post(http, content=content)

    assert response.status_code == 200
    body = response.json()
    assert re.fullmatch(r"upl_[0-9a-f]{12}", body["id"])
    assert body == {
        "id": body["id"],
        "integration_id": "int-acme",
        "month": "2025-10",
        "rows": 1,
        "status": "accepted",
    }
    stored = sandbox.data_dir / "files" / "int-acme" / "2025-10.csv"
    assert stored.read_bytes() == content
    [line] = (sandbox.data_dir / "uploads.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert set(record) == {
        "id",
        "integration_id",
        "month",
        "filename",
        "bytes",
        "sha256",
        "rows",
        "received_at",
    }
    assert record["id"] == body["id"]
    assert record["filename"] == "cost_2025-10-01_2025-10-31.csv"
    assert record["bytes"] == len(content)
    assert record["rows"] == 1
    assert len(record["sha256"]) == 64


def test_new_upload_replaces_month(sandbox: PelanorSandbox, http: httpx.Client) -> None:
    assert post(http).status_code == 200
    second = CSV + ROW.replace("0.89587", "1.5").encode()
    response = post(http, content=second)
    assert response.json()["rows"] == 2
    assert sandbox.stored_files() == [sandbox.data_dir / "files" / "int-acme" / "2025-10.csv"]
    assert sandbox.stored_files()[0].read_bytes() == second
    assert [u["rows"] for u in sandbox.uploads()] == [1, 2]
    assert not list((sandbox.data_dir / "files" / "int-acme").glob(".*"))  # no temp files left


def test_header_only_file_accepted(http: httpx.Client) -> None:
    response = post(http, content=HEADER.encode())
    assert response.status_code == 200
    assert response.json()["rows"] == 0


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"token": None}, (401, "unauthorized", "missing bearer token")),
        ({"token": "tok_wrong"}, (401, "unauthorized", "invalid bearer token")),
        (
            {"integration_id": "int-nope"},
            (404, "unknown_integration", "unknown integration int-nope"),
        ),
        ({"month": None}, (400, "missing_field", "form field 'month' is required")),
        (
            {"month": "2025-10-01"},
            (400, "invalid_month", "month must be YYYY-MM, got '2025-10-01'"),
        ),
        ({"with_file": False}, (400, "missing_field", "multipart part 'file' is required")),
        (
            {"content": b"\xff\xfe" + CSV},
            (422, "invalid_file", "file is not UTF-8 encoded CSV"),
        ),
        (
            {"content": CSV.replace(b"project_name", b"projectname")},
            (422, "missing_columns", "missing required columns: project_name"),
        ),
        (
            {"content": b"foo,bar\n"},
            (
                422,
                "missing_columns",
                "missing required columns: start_time, end_time, amount_value, amount_currency,"
                " line_item, project_id, organization_id, project_name, organization_name",
            ),
        ),
        (
            {"content": CSV.replace(b",usd,", b",EUR,")},
            (422, "invalid_currency", "row 1 amount_currency is EUR; only usd is supported"),
        ),
        (
            {"integration_id": "int-globex"},
            (
                422,
                "organization_mismatch",
                "organization_id org-acme does not match this integration (org-globex)",
            ),
        ),
        (
            {"month": "2025-11"},
            (422, "month_mismatch", "row 1 start_time 1759276800 is not inside month 2025-11"),
        ),
        (
            {"content": CSV + b"1,2\n"},
            (422, "invalid_file", "row 2 has 2 fields, the header has 11"),
        ),
    ],
    ids=[
        "no-token",
        "bad-token",
        "unknown-integration",
        "no-month",
        "bad-month",
        "no-file",
        "not-utf8",
        "missing-column",
        "not-a-cost-csv",
        "currency",
        "org",
        "month",
        "ragged-row",
    ],
)
def test_rejections(
    sandbox: PelanorSandbox,
    http: httpx.Client,
    kwargs: dict[str, Any],
    expected: tuple[int, str, str],
) -> None:
    response = post(http, **kwargs)
    assert error(response) == expected
    assert sandbox.stored_files() == []
    assert sandbox.uploads() == []


def test_uppercase_usd_and_empty_currency_accepted(http: httpx.Client) -> None:
    content = CSV.replace(b",usd,", b",USD,") + ROW.replace(",usd,", ",,").encode()
    assert post(http, content=content).status_code == 200


def test_month_boundaries(http: httpx.Client) -> None:
    last_second = ROW.replace("1759276800", str(1761955200 - 1)).encode()
    assert post(http, content=HEADER.encode() + last_second).status_code == 200
    next_month = ROW.replace("1759276800", "1761955200").encode()
    assert error(post(http, content=HEADER.encode() + next_month)) == (
        422,
        "month_mismatch",
        "row 1 start_time 1761955200 is not inside month 2025-10",
    )


def test_unknown_route_and_malformed_multipart(http: httpx.Client) -> None:
    assert error(http.get("/nope")) == (404, "not_found", "no such route")
    response = http.post(
        PATH.format("int-acme"),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        content=b"{}",
    )
    assert error(response) == (
        400,
        "bad_request",
        "invalid multipart body: Content-Type must be multipart/form-data",
    )


def test_faults_consumed_in_order_with_filters(tmp_path: Path) -> None:
    faults = [
        {"integration_id": "int-acme", "month": "2025-10", "kind": "429", "retry_after": 7},
        {"integration_id": "int-globex", "kind": "503", "times": 1},
        {"kind": "500", "times": 2},
    ]
    with (
        running_sandbox(tmp_path, faults=faults) as sandbox,
        httpx.Client(base_url=sandbox.url, timeout=5) as http,
    ):
        first = post(http)
        assert first.status_code == 429
        assert first.headers["Retry-After"] == "7"
        assert error(first) == (429, "rate_limited", "too many requests (injected fault)")
        assert error(post(http)) == (500, "internal_error", "internal error (injected fault)")
        assert post(http).status_code == 500
        assert post(http).status_code == 200
        assert [f.remaining for f in sandbox.faults] == [0, 1, 0]
        assert [r.fault for r in sandbox.requests] == ["429", "500", "500", None]


def test_drop_closes_without_response_and_stores_nothing(tmp_path: Path) -> None:
    with (
        running_sandbox(tmp_path, faults=[{"kind": "drop", "times": 1}]) as sandbox,
        httpx.Client(base_url=sandbox.url, timeout=5) as http,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            post(http)
        assert sandbox.stored_files() == []
        assert post(http).status_code == 200
        assert len(sandbox.stored_files()) == 1


def test_slow_reply_still_stores_once(tmp_path: Path) -> None:
    with (
        running_sandbox(tmp_path, faults=[{"kind": "slow", "seconds": 0.6, "times": 1}]) as sandbox,
        httpx.Client(base_url=sandbox.url, timeout=5) as http,
    ):
        with pytest.raises(httpx.ReadTimeout):
            post(http, timeout=0.2)
        assert post(http).status_code == 200
        assert sandbox.wait_idle(5)
    assert len(sandbox.stored_files()) == 1
    assert sandbox.stored_files()[0].read_bytes() == CSV


def test_authorization_never_logged_or_recorded(
    sandbox: PelanorSandbox, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="local_sandboxes.pelanor")
    post(http)
    post(http, token="tok_wrong")
    assert "POST /v1/integrations/openai/int-acme/upload" in caplog.text
    assert TOKEN not in caplog.text
    assert "tok_wrong" not in caplog.text
    assert TOKEN not in repr(sandbox.requests)
    assert [r.auth_scheme for r in sandbox.requests] == ["Bearer", "Bearer"]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com"])  # noqa: S104 - refused
def test_refuses_non_loopback_host(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValueError, match="non-loopback") as info:
        PelanorSandbox(CONFIG, tmp_path, host=host)
    assert str(info.value) == (
        f"refusing to bind the Pelanor sandbox to non-loopback host {host!r}; "
        "use 127.0.0.1, ::1 or localhost"
    )


def test_bad_config_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fault kind"):
        PelanorSandbox({**CONFIG, "faults": [{"kind": "404"}]}, tmp_path)
    with pytest.raises(ValueError, match="tokens"):
        PelanorSandbox({**CONFIG, "tokens": []}, tmp_path)


def test_parse_multipart_keeps_bytes_exact() -> None:
    payload = b"a,b\r\n\r\n--not-a-boundary\r\nx\n\xc3\xa9\r\n"
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="month"\r\n\r\n'
        b"2025-10\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="c.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + payload + b"\r\n"
        b"--XyZ--\r\n"
    )
    month, file = parse_multipart("multipart/form-data; boundary=XyZ", body)
    assert (month.name, month.filename, month.data) == ("month", None, b"2025-10")
    assert (file.name, file.filename, file.content_type) == ("file", "c.csv", "text/csv")
    assert file.data == payload


def test_cli_prints_url_and_serves(tmp_path: Path) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(CONFIG))
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [
            str(PELANOR_SANDBOX),
            "--config",
            str(config_path),
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"Pelanor sandbox listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        url = match.group(1)
        assert (data_dir / "sandbox.url").read_text() == url
        with httpx.Client(base_url=url, timeout=5) as http:
            assert http.get("/healthz").status_code == 200
            assert post(http).status_code == 200
        assert (data_dir / "files" / "int-acme" / "2025-10.csv").read_bytes() == CSV
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "POST /v1/integrations/openai/int-acme/upload" in stderr
    assert TOKEN not in stderr


def test_cli_refuses_public_bind(tmp_path: Path) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(CONFIG))
    result = subprocess.run(
        [
            str(PELANOR_SANDBOX),
            "--config",
            str(config_path),
            "--data-dir",
            str(tmp_path / "d"),
            "--host",
            "0.0.0.0",  # noqa: S104 - must be refused
        ],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "refusing to bind the Pelanor sandbox to non-loopback host '0.0.0.0'" in result.stderr


def test_the_sandboxes_import_only_the_standard_library_and_each_other() -> None:
    """No product code (nor anything installed with it) in the sandboxes, so a wrong
    column list or spec reading cannot hide in both."""
    import ast

    import local_sandboxes

    modules = sorted(Path(local_sandboxes.__file__).parent.glob("*.py"))
    assert [m.name for m in modules] == [
        "__init__.py",
        "openai_costs_api.py",
        "openai_sandbox.py",
        "pelanor.py",
        "serving.py",
    ]
    for module in modules:
        imported = set()
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
        outside = imported - set(sys.stdlib_module_names) - {"__future__", "local_sandboxes"}
        assert not outside, f"{module.name} imports {sorted(outside)}"


def test_the_sandbox_states_pelanors_columns_itself() -> None:
    from local_sandboxes import pelanor as sandbox
    from openai_costs.export import REQUIRED_COLUMNS

    documented = (
        "start_time",
        "end_time",
        "amount_value",
        "amount_currency",
        "line_item",
        "project_id",
        "organization_id",
        "project_name",
        "organization_name",
    )
    assert sandbox.REQUIRED_COLUMNS == documented == REQUIRED_COLUMNS


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else is listening on."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        yield blocker.getsockname()[1]


@pytest.mark.parametrize(
    ("where", "how"),
    [
        (["--port", "{port}"], "with --port (--port 0 picks a free one)"),
        (
            ["--url", "http://127.0.0.1:{port}"],
            "by setting TARGET_PELANOR_API_URL=http://127.0.0.1:PORT (target-pelanor's "
            "api_url: make demo, make sandbox and the dev environment follow it)",
        ),
    ],
)
def test_cli_busy_port_is_one_line_saying_which_and_how_to_choose_another(
    tmp_path: Path,
    busy_port: int,
    capsys: pytest.CaptureFixture[str],
    where: list[str],
    how: str,
) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(CONFIG))
    argv = ["--config", str(config_path), "--data-dir", str(tmp_path / "d")]

    assert main([*argv, *(arg.format(port=busy_port) for arg in where)]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"pelanor sandbox: port {busy_port} on 127.0.0.1 is already in use; choose another {how}\n"
    )


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1", "https://127.0.0.1:8765", "http://127.0.0.1:8765/v1", "127.0.0.1"]
)
def test_cli_url_must_be_plain_http_with_a_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(CONFIG))

    assert main(["--config", str(config_path), "--data-dir", str(tmp_path), "--url", url]) == 2

    assert capsys.readouterr().err == (
        f"pelanor sandbox: --url must look like http://127.0.0.1:PORT, got {url!r}\n"
    )
