"""A fake OpenAI admin API on 127.0.0.1: the Costs and Projects endpoints, as published
and as the live API answers.

It is a real HTTP server (so the client's httpx stack, query encoding and retries run for
real) and answers with the shapes of OpenAI's published spec (openai/openai-openapi,
openapi.yaml: UsageResponse ``{object, data, has_more, next_page}``, UsageTimeBucket
``{object, start_time, end_time, results}``, CostsResult ``{object, amount {value,
currency}, line_item, project_id, api_key_id, quantity, quantity_unit}``): no field the spec
lacks unless a test adds it on purpose (``result(..., user_id=...)``), every field it has.
The live API's own shape (a verbatim response of 2026, published by another project) is
served on demand: :func:`live_result` (amounts as strings of about 40 digits with trailing
zeros or ``"0E-6176"``, float quantities, ``organization_id``, ``project_name``,
``organization_name``, ``user_id``, ``api_key_id``, ``user_email``) and ``live_buckets``
(``start_time_iso``/``end_time_iso``, without an offset on a bucket with results and with
``+00:00`` on an empty one). Asked without ``group_by``, it answers one result a day, the
day's total, as the API does ungrouped.

It paginates the way OpenAI does (``limit``/``next_page``/``has_more`` for costs,
``after``/``has_more`` for projects), reads array parameters in the OpenAI SDK's format
(``group_by[]=line_item&group_by[]=project_id``, refusing the bare or indexed forms),
checks the bearer key and the grouping the export needs, and can fail on demand: HTTP
faults (:meth:`FakeOpenAI.fail_next`), refused page tokens (also the live API's last page
that still says ``has_more`` with a cursor it then refuses), short pages, and buckets or
pages that break the spec (the ``bucket_*``/``drop_bucket``/``page_object`` scenarios).

Amounts are served exactly as a test gives them: a ``str`` becomes a JSON string,
:func:`number` (or a ``Decimal``) is written as raw JSON number text. Costs come from a
dict of day start -> results, or from a callable giving a day's results when asked, so a
huge month is generated a page at a time and never held.

Used in process by the tests and ``bench/api_month.py``: ``with FakeOpenAI(costs, projects,
key) as fake: fake.url``; ``openai-sandbox`` (:mod:`local_sandboxes.openai_sandbox`) serves
it from export files, for trying the tap's API source by hand.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DAY = 86_400
MAX_COST_LIMIT = 180
MAX_PROJECT_LIMIT = 100
INVALID_PAGE_TOKEN = "The page token is invalid, have you modified the query parameters?"  # noqa: S105
#: The costs endpoint's parameters (spec); the array ones are sent as ``name[]``.
COST_SCALARS = frozenset({"start_time", "end_time", "bucket_width", "limit", "page"})
COST_ARRAYS = frozenset({"group_by", "project_ids", "api_key_ids"})
GROUP_BY_VALUES = frozenset({"project_id", "line_item", "api_key_id"})

CostSource = Mapping[int, list[dict[str, Any]]] | Callable[[int], Iterable[dict[str, Any]]]


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
    currency: str | None = "usd",
    *,
    quantity: Any = None,
    quantity_unit: str | None = None,
    api_key_id: str | None = None,
    object: str = "organization.costs.result",
    **beyond_spec: Any,
) -> dict[str, Any]:
    """One CostsResult as the spec has it (every field, null where not given).

    ``beyond_spec`` adds fields the spec lacks (``user_id=...``, ``api_source=...``) for
    tests that need the API to send more than it documents.
    """
    return {
        "object": object,
        "amount": {"value": amount, "currency": currency},
        "line_item": line_item,
        "project_id": project_id,
        "api_key_id": api_key_id,
        "quantity": quantity,
        "quantity_unit": quantity_unit,
        **beyond_spec,
    }


def live_result(
    amount: Any,
    line_item: str | None,
    project_id: str | None,
    project_name: str | None,
    *,
    quantity: Any = JSONNumber("30.0"),
    quantity_unit: str | None = "tokens",
    organization_id: str | None = "org-acme",
    organization_name: str | None = "Acme, Inc.",
    user_id: str | None = None,
    api_key_id: str | None = None,
    user_email: str | None = None,
) -> dict[str, Any]:
    """One result as the live API sent it in 2026: the fields beyond the spec included
    (``organization_id``, ``project_name``, ``organization_name``, ``user_id``,
    ``user_email``), ``quantity`` a float (``30.0``), ``amount.value`` a string as given
    (``"0.000004500000000000000000000000000000000"``, ``"0E-6176"``)."""
    return {
        "object": "organization.costs.result",
        "amount": {"value": amount, "currency": "usd"},
        "line_item": line_item,
        "project_id": project_id,
        "organization_id": organization_id,
        "project_name": project_name,
        "organization_name": organization_name,
        "quantity": quantity,
        "quantity_unit": quantity_unit,
        "user_id": user_id,
        "api_key_id": api_key_id,
        "user_email": user_email,
    }


def without(mapping: dict[str, Any], *path: str) -> dict[str, Any]:
    """A copy of ``mapping`` without the key at ``path``: ``without(r, "amount", "value")``."""
    trimmed = copy.deepcopy(mapping)
    inner = trimmed
    for key in path[:-1]:
        inner = inner[key]
    del inner[path[-1]]
    return trimmed


def project(
    project_id: str, name: str, archived_at: int | None = None, created_at: int = 1_700_000_000
) -> dict[str, Any]:
    """A Project as the spec's example has it (``residency``, optional, left out)."""
    return {
        "id": project_id,
        "object": "organization.project",
        "name": name,
        "created_at": created_at,
        "archived_at": archived_at,
        "status": "archived" if archived_at is not None else "active",
        "external_key_id": None,
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
        costs: CostSource,
        projects: list[dict[str, Any]],
        admin_key: str,
        page_size_override: int | None = None,
        port: int = 0,
    ) -> None:
        self.costs = costs
        self.projects = projects
        self.admin_key = admin_key
        self.page_size_override = page_size_override
        #: The port on 127.0.0.1 (0: a free one).
        self.port = port
        #: Every request: its path and its query, array parameters under their bare name.
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        #: Every request's query string exactly as received.
        self.query_strings: list[str] = []
        #: Day start -> a function rewriting that day's bucket (None: leave the day out).
        self.bucket_edits: dict[int, Callable[[dict[str, Any]], dict[str, Any] | None]] = {}
        #: Fields every costs page gets (``{"object": "list"}``: a page of the wrong kind).
        self.page_overrides: dict[str, Any] = {}
        #: Buckets per costs page, in turn (at most ``limit``): short pages when given.
        self.page_sizes: list[int] | None = None
        #: Buckets carry the live API's start_time_iso/end_time_iso.
        self.live_buckets = False
        #: The page with the range's last bucket still says has_more, with a cursor that
        #: is then refused (HTTP 400), as the live API was seen to do.
        self.trailing_cursor = False
        self._trailing: set[str] = set()
        self._reject_tokens = 0
        self._faults: list[_Fault] = []
        self._cursors: dict[str, tuple[tuple[tuple[str, str], ...], int, int]] = {}
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

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
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

    # -- scenarios -------------------------------------------------------------------------

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

    def reject_page_tokens(self, times: int | None = 1) -> None:
        """Answer the next ``times`` requests carrying a cursor it issued (None: every one)
        with HTTP 400 "The page token is invalid, ...", as the live API sometimes does."""
        with self._lock:
            self._reject_tokens = -1 if times is None else times

    def bucket_without_results(self, start: int) -> None:
        """The day's bucket lacks ``results`` (which the spec requires)."""
        self.bucket_edits[start] = lambda bucket: without(bucket, "results")

    def bucket_with_result_key(self, start: int) -> None:
        """The day's list is named ``result``, as one spec revision (2024-12) had it."""

        def rename(bucket: dict[str, Any]) -> dict[str, Any]:
            edited = without(bucket, "results")
            edited["result"] = bucket["results"]
            return edited

        self.bucket_edits[start] = rename

    def bucket_object(self, start: int, value: Any) -> None:
        """The day's bucket has ``object`` ``value`` instead of "bucket"."""
        self.bucket_edits[start] = lambda bucket: {**bucket, "object": value}

    def drop_bucket(self, start: int) -> None:
        """No bucket at all for the day (the page just holds one fewer)."""
        self.bucket_edits[start] = lambda bucket: None

    def page_object(self, value: Any) -> None:
        """Every costs page has ``object`` ``value`` instead of "page"."""
        self.page_overrides["object"] = value

    def has_more_after_the_last_day(self) -> None:
        """The page holding the range's last bucket says ``has_more: true`` with a
        ``next_page`` cursor that, followed, is refused with HTTP 400."""
        self.trailing_cursor = True

    def short_pages(self, *sizes: int) -> None:
        """Pages hold ``sizes[0]``, ``sizes[1]``, ... buckets in turn (cycling, at most
        ``limit``), ``has_more`` true while days remain: fewer than ``limit``, even none."""
        self.page_sizes = list(sizes)

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

    def _results(self, start: int) -> list[dict[str, Any]]:
        if callable(self.costs):
            return list(self.costs(start))
        return list(self.costs.get(start, []))

    def _costs_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        if query.get("bucket_width", ["1d"]) != ["1d"]:
            raise _Problem(400, "bucket_width must be 1d (the only width of the costs API)")
        groups = query.get("group_by", [])
        if not set(groups) <= GROUP_BY_VALUES:
            raise _Problem(400, f"Invalid value for 'group_by': {groups}.")
        if groups and not {"line_item", "project_id"} <= set(groups):
            raise _Problem(400, "group_by must include line_item and project_id for this fake")
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
        offset = number = 0
        if "page" in query:
            with self._lock:
                known = self._cursors.get(query["page"][0])
                reject = known is not None and self._reject_tokens != 0
                if reject and self._reject_tokens > 0:
                    self._reject_tokens -= 1
                trailing = query["page"][0] in self._trailing
            if known is None or known[0] != identity or reject or trailing:
                raise _Problem(400, INVALID_PAGE_TOKEN)
            _, offset, number = known
        size = limit
        if self.page_sizes:
            size = min(limit, self.page_sizes[number % len(self.page_sizes)])
        starts = list(range(start, end, DAY))
        projects = set(query["project_ids"]) if "project_ids" in query else None
        data = []
        for s in starts[offset : offset + size]:
            results = self._results(s)
            if projects is not None:
                results = [r for r in results if r.get("project_id") in projects]
            if not groups and results:
                results = [_day_total(results)]
            bucket: dict[str, Any] = {
                "object": "bucket",
                "start_time": s,
                "end_time": s + DAY,
                "results": results,
            }
            if self.live_buckets:
                # As in the verbatim response: no offset on a bucket with results, +00:00
                # on an empty one.
                offset_text = "" if results else "+00:00"
                bucket["start_time_iso"] = _iso(s) + offset_text
                bucket["end_time_iso"] = _iso(s + DAY) + offset_text
            edit = self.bucket_edits.get(s)
            edited = bucket if edit is None else edit(bucket)
            if edited is not None:
                data.append(edited)
        has_more = offset + size < len(starts)
        cursor = None
        if has_more or self.trailing_cursor:
            cursor = "page_" + secrets.token_urlsafe(12)
            with self._lock:
                self._cursors[cursor] = (identity, offset + size, number + 1)
                if not has_more:
                    self._trailing.add(cursor)
            has_more = True
        page = {"object": "page", "data": data, "has_more": has_more, "next_page": cursor}
        page.update(self.page_overrides)
        return page

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


def _day_total(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The day's one ungrouped result: every amount summed exactly, as a string."""
    total = sum((Decimal(_amount_text(r["amount"]["value"])) for r in results), Decimal(0))
    return {
        "object": "organization.costs.result",
        "amount": {"value": str(total), "currency": "usd"},
        "line_item": None,
        "project_id": None,
        "api_key_id": None,
        "quantity": None,
        "quantity_unit": None,
    }


def _amount_text(value: Any) -> str:
    return value.text if isinstance(value, JSONNumber) else str(value)


def _iso(unix_seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix_seconds))


def parse_query(text: str, arrays: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """A query string as the OpenAI SDK writes it: ``name[]=v`` for each item of an array
    parameter (``name`` in ``arrays``), ``name=v`` otherwise. The result keeps arrays under
    their bare name. A bare or indexed (``name[0]``) array, or ``name[]`` for a scalar, is
    refused as the unknown parameter it is."""
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        name = key.removesuffix("[]")
        if (name in arrays) != key.endswith("[]"):
            raise _Problem(400, f"Unrecognized request argument supplied: {key}")
        query.setdefault(name, []).append(value)
    return query


def _int_param(query: dict[str, list[str]], name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name][0])
    except ValueError:
        raise _Problem(400, f"Invalid value for '{name}': must be an integer.") from None


class _Handler(BaseHTTPRequestHandler):
    #: Headers and body leave in separate writes: without this, each answer waits for the
    #: client's delayed ACK (about 40 ms on Linux).
    disable_nagle_algorithm = True
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        owner = self.owner
        costs = parts.path == "/v1/organization/costs"
        try:
            query = parse_query(parts.query, COST_ARRAYS if costs else frozenset())
        except _Problem as problem:
            query = {"unparsed": [parts.query]}
            refused: _Problem | None = problem
        else:
            refused = None
        with owner._lock:
            owner.requests.append((parts.path, query))
            owner.query_strings.append(parts.query)
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
            if refused is not None:
                raise refused
            if costs:
                unknown = sorted(set(query) - COST_SCALARS - COST_ARRAYS)
                if unknown:
                    raise _Problem(400, f"Unrecognized request argument supplied: {unknown[0]}")
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
