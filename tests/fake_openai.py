"""A fake OpenAI admin API on 127.0.0.1: the Costs and Projects endpoints, recorded shapes.

It is a real HTTP server (so the client's httpx stack, query encoding and retries run for
real), paginates the way OpenAI does (``limit``/``next_page``/``has_more`` for costs,
``after``/``has_more`` for projects), checks the bearer key and the grouping the export
needs, and can fail on demand. Amounts are served exactly as a test gives them: a ``str``
becomes a JSON string, :func:`number` (or a ``Decimal``) is written as raw JSON number text.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DAY = 86_400
MAX_COST_LIMIT = 180
MAX_PROJECT_LIMIT = 100


@dataclass(frozen=True)
class JSONNumber:
    """Number text written into the JSON as is, e.g. ``1e-05`` or ``0.8958740000000000``."""

    text: str


def number(text: str) -> JSONNumber:
    return JSONNumber(text)


_RAW = re.compile(r'"\\u0000num:([^"\\]*)\\u0000"')


def dumps(body: Any) -> bytes:
    """JSON text with :class:`JSONNumber` and ``Decimal`` values written as raw numbers."""

    def raw(value: Any) -> str:
        if isinstance(value, JSONNumber):
            return f"\0num:{value.text}\0"
        if isinstance(value, Decimal):
            return f"\0num:{value}\0"
        raise TypeError(f"not JSON serializable: {value!r}")

    return _RAW.sub(r"\1", json.dumps(body, default=raw)).encode()


def result(
    amount: Any,
    line_item: str | None = "gpt-4o-2024-08-06, input",
    project_id: str | None = "proj_abc",
    currency: str = "usd",
) -> dict[str, Any]:
    """One cost result as the API returns it when grouped by line item and project."""
    return {
        "object": "organization.costs.result",
        "amount": {"value": amount, "currency": currency},
        "line_item": line_item,
        "project_id": project_id,
        "organization_id": None,
    }


def project(
    project_id: str, name: str, archived_at: int | None = None, created_at: int = 1_700_000_000
) -> dict[str, Any]:
    return {
        "id": project_id,
        "object": "organization.project",
        "name": name,
        "created_at": created_at,
        "archived_at": archived_at,
        "status": "archived" if archived_at is not None else "active",
    }


@dataclass
class _Fault:
    status: int
    retry_after: str | None
    times: int
    message: str
    delay: float


class _Problem(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class FakeOpenAI:
    """The fake server; mutate ``costs``/``projects`` between runs to restate days."""

    def __init__(
        self,
        costs: dict[int, list[dict[str, Any]]],
        projects: list[dict[str, Any]],
        admin_key: str,
        page_size_override: int | None = None,
    ) -> None:
        self.costs = costs
        self.projects = projects
        self.admin_key = admin_key
        self.page_size_override = page_size_override
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self._faults: list[_Fault] = []
        self._cursors: dict[str, tuple[tuple[tuple[str, str], ...], int]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(
        self,
        status: int,
        retry_after: float | str | None = None,
        times: int = 1,
        message: str = "The server had an error while processing your request.",
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (0: drop the connection).

        ``delay`` waits that long first (longer than the client's timeout: a timeout).
        """
        with self._lock:
            self._faults.append(
                _Fault(
                    status,
                    None if retry_after is None else str(retry_after),
                    times,
                    message,
                    delay,
                )
            )

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    # -- request handling (called from server threads) ---------------------------------

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self._faults.pop(0)
            return fault

    def _check_key(self, authorization: str | None) -> None:
        presented = (authorization or "").removeprefix("Bearer ").strip()
        if authorization is None or not authorization.startswith("Bearer ") or not presented:
            raise _Problem(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if presented != self.admin_key:
            # OpenAI masks the key it echoes; the fake echoes it whole to test scrubbing.
            raise _Problem(
                401,
                f"Incorrect API key provided: {presented}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_api_key",
            )

    def _costs_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        if query.get("bucket_width") != ["1d"]:
            raise _Problem(400, "bucket_width must be 1d for this fake (the export's interval)")
        groups = set(query.get("group_by", []))
        if not {"line_item", "project_id"} <= groups:
            raise _Problem(400, "group_by must include line_item and project_id")
        start = _int_param(query, "start_time")
        if start is None:
            raise _Problem(400, "Missing required parameter: 'start_time'.")
        limit = _int_param(query, "limit") or 7
        if not 1 <= limit <= MAX_COST_LIMIT:
            raise _Problem(400, f"limit must be between 1 and {MAX_COST_LIMIT}")
        end = _int_param(query, "end_time") or start + limit * DAY
        if self.page_size_override is not None:
            limit = min(limit, self.page_size_override)
        identity = tuple(sorted((k, v) for k, vs in query.items() if k != "page" for v in vs))
        offset = 0
        if "page" in query:
            with self._lock:
                known = self._cursors.get(query["page"][0])
            if known is None or known[0] != identity:
                raise _Problem(400, "Invalid page cursor.")
            offset = known[1]
        starts = list(range(start, end, DAY))
        chosen = starts[offset : offset + limit]
        with self._lock:
            data = [
                {
                    "object": "bucket",
                    "start_time": s,
                    "end_time": s + DAY,
                    "results": list(self.costs.get(s, [])),
                }
                for s in chosen
            ]
            has_more = offset + limit < len(starts)
            cursor = None
            if has_more:
                cursor = "page_" + secrets.token_urlsafe(12)
                self._cursors[cursor] = (identity, offset + limit)
        return {"object": "page", "data": data, "has_more": has_more, "next_page": cursor}

    def _projects_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        limit = _int_param(query, "limit") or 20
        if not 1 <= limit <= MAX_PROJECT_LIMIT:
            raise _Problem(400, f"limit must be between 1 and {MAX_PROJECT_LIMIT}")
        if self.page_size_override is not None:
            limit = min(limit, self.page_size_override)
        with self._lock:
            items = list(self.projects)
        if query.get("include_archived", ["false"])[0].lower() != "true":
            items = [p for p in items if p.get("archived_at") is None]
        offset = 0
        if "after" in query:
            ids = [p["id"] for p in items]
            if query["after"][0] not in ids:
                raise _Problem(400, "Invalid 'after' cursor.")
            offset = ids.index(query["after"][0]) + 1
        page = items[offset : offset + limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": offset + limit < len(items),
        }


def _int_param(query: dict[str, list[str]], name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name][0])
    except ValueError:
        raise _Problem(400, f"Invalid value for '{name}': must be an integer.") from None


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        owner = self.owner
        with owner._lock:
            owner.requests.append((parts.path, query))
        fault = owner._take_fault()
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status == 0:
                self.close_connection = True
                self.connection.close()
                return
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._send(fault.status, _error_body(fault.message, None, fault.status), headers)
            return
        try:
            owner._check_key(self.headers.get("Authorization"))
            if parts.path == "/v1/organization/costs":
                body = owner._costs_page(query)
            elif parts.path == "/v1/organization/projects":
                body = owner._projects_page(query)
            else:
                raise _Problem(404, f"Invalid URL (GET {parts.path})")
        except _Problem as problem:
            self._send(problem.status, _error_body(problem.message, problem.code, problem.status))
            return
        self._send(200, body)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _error_body(message: str, code: str | None, status: int) -> dict[str, Any]:
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
