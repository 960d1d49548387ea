"""Local Pelanor sandbox: a real HTTP server implementing the upload contract we adopt.

Pelanor has no public test endpoint for OpenAI uploads, so tests and demos run against
this server instead.  It checks what the public docs say Pelanor checks (token,
integration, required columns, USD only, organization, month), stores accepted files the
way Pelanor treats them (one file per integration and month, a new upload replaces it) and
can inject faults (429, 5xx, slow replies, trickled replies, dropped connections) to
exercise retries, deadlines and interruptions.

It accepts uploads of one shape only: by default the contract target-pelanor adopts (POST,
multipart, part ``file``, field ``month``), else the shape its config gives with the same
``upload_*`` settings as target-pelanor's (method, body, path, part and field names, query,
content type), so a non-default shape is tried end to end. Anything else is refused.

Run: ``pelanor-sandbox --config CONFIG.json --data-dir DIR [--port N | --url URL]`` (or
``python -m local_sandboxes.pelanor ...``).
"""

from __future__ import annotations

import argparse
import csv
import errno
import hashlib
import hmac
import io
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import string
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from local_sandboxes.serving import serve_until_signalled

__all__ = ["Fault", "PelanorSandbox", "SeenRequest", "main"]

UTC = timezone.utc  # datetime.UTC needs Python 3.11
logger = logging.getLogger("local_sandboxes.pelanor")

FAULT_KINDS: Final = frozenset({"429", "500", "503", "slow", "trickle", "drop"})
MAX_BODY_BYTES: Final = 256 * 1024 * 1024
#: The fields Pelanor's OpenAI integration page lists as required. Stated here, not taken
#: from the product, so that a wrong list in the product cannot hide in both.
REQUIRED_COLUMNS: Final = (
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
_MONTH_RE: Final = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
#: What templates may name: target-pelanor's placeholders, stated here too (the sandbox
#: imports no product code, so a wrong list in the product cannot hide in both).
PLACEHOLDERS: Final = (
    "month",
    "first_day",
    "last_day",
    "organization_id",
    "integration_id",
    "file_name",
)
#: The shape settings, as target-pelanor names them, with its defaults (upload_fields:
#: ``{"month": "{month}"}`` for multipart, none for raw).
SHAPE_DEFAULTS: Final[dict[str, Any]] = {
    "upload_method": "POST",
    "upload_body": "multipart",
    "upload_path": "/v1/integrations/openai/{integration_id}/upload",
    "upload_file_field": "file",
    "upload_fields": None,
    "upload_query": {},
    "upload_content_type": "text/csv",
}


class _HTTPProblem(Exception):
    """A request check failed; carries the status and JSON error body to send."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Fault:
    """One configured fault; ``remaining`` counts down as matching requests consume it."""

    kind: str
    remaining: int
    integration_id: str | None = None
    month: str | None = None
    retry_after: float | None = None
    seconds: float = 1.0

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> Fault:
        """Validate one entry of the config's ``faults`` list."""
        kind = str(raw.get("kind", ""))
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        times = int(raw.get("times", 1))
        retry_after = raw.get("retry_after")
        if retry_after is None and kind == "429":
            retry_after = 1
        return cls(
            kind=kind,
            remaining=times,
            integration_id=raw.get("integration_id"),
            month=raw.get("month"),
            retry_after=None if retry_after is None else float(retry_after),
            seconds=float(raw.get("seconds", 1.0)),
        )

    def matches(self, integration_id: str, month: str) -> bool:
        """True if this fault still has uses left and its filters match."""
        return (
            self.remaining > 0
            and self.integration_id in (None, integration_id)
            and self.month in (None, month)
        )


@dataclass(frozen=True)
class SeenRequest:
    """What the sandbox saw of one upload request (never the token), for test assertions."""

    method: str
    path: str
    status: int | None
    integration_id: str | None
    month: str | None
    filename: str | None
    file_content_type: str | None
    file_bytes: int | None
    form_fields: tuple[str, ...]
    user_agent: str | None
    content_type: str | None
    auth_scheme: str | None
    fault: str | None
    query: tuple[tuple[str, str], ...] = ()
    #: The whole body's length as received (the CSV and, for a form, its framing).
    body_bytes: int | None = None


@dataclass
class _Part:
    """One multipart/form-data part."""

    name: str | None
    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True)
class _Template:
    """A template of the upload request (path, field or query value), read backwards:
    which placeholder values a text that was rendered from it holds."""

    setting: str
    text: str
    names: tuple[str, ...]
    pattern: re.Pattern[str]

    @classmethod
    def compile(cls, setting: str, text: object, *, segment: bool = False) -> _Template:
        """``segment``: a placeholder stands for one path segment."""
        if not isinstance(text, str):
            raise ValueError(f"config {setting!r} must be text (a template), got {text!r}")
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError:
            raise ValueError(f"config {setting!r} has an unmatched {{ or }}: {text!r}") from None
        regex, names = "", []
        for literal, name, spec, conversion in parsed:
            regex += re.escape(literal)
            if name is None:
                continue
            if name not in PLACEHOLDERS or spec or conversion:
                raise ValueError(
                    f"config {setting!r} has an unknown placeholder in {text!r}; the "
                    f"placeholders are {', '.join('{' + n + '}' for n in PLACEHOLDERS)}"
                )
            names.append(name)
            regex += "([^/]+?)" if segment else "(.*?)"
        return cls(setting, text, tuple(names), re.compile(regex, re.S))

    def values(self, text: str) -> list[tuple[str, str]] | None:
        """The placeholders' values in ``text``, or None if it does not fit the template."""
        match = self.pattern.fullmatch(text)
        return None if match is None else list(zip(self.names, match.groups(), strict=True))


@dataclass(frozen=True)
class _Shape:
    """The one upload request shape this sandbox accepts."""

    method: str
    raw: bool
    path: _Template
    file_field: str
    fields: tuple[tuple[str, _Template], ...]
    query: tuple[tuple[str, _Template], ...]
    content_type: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> _Shape:
        """The shape a config's ``upload_*`` keys give (null or absent: the default)."""
        given = {
            key: default if config.get(key) is None else config[key]
            for key, default in SHAPE_DEFAULTS.items()
        }
        method, body = given["upload_method"], given["upload_body"]
        if method not in ("POST", "PUT"):
            raise ValueError(f"config 'upload_method' must be POST or PUT, got {method!r}")
        if body not in ("multipart", "raw"):
            raise ValueError(f"config 'upload_body' must be multipart or raw, got {body!r}")
        path = given["upload_path"]
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"config 'upload_path' must start with '/', got {path!r}")
        raw_fields = given["upload_fields"]
        if raw_fields is None:
            raw_fields = {} if body == "raw" else {"month": "{month}"}
        if body == "raw" and raw_fields:
            raise ValueError("config 'upload_fields' cannot be used with upload_body raw")
        content_type = given["upload_content_type"]
        if not isinstance(content_type, str) or "/" not in content_type:
            raise ValueError(
                f"config 'upload_content_type' must be a media type, got {content_type!r}"
            )
        shape = cls(
            method=method,
            raw=body == "raw",
            path=_Template.compile("upload_path", path, segment=True),
            file_field=str(given["upload_file_field"]),
            fields=_templates("upload_fields", raw_fields),
            query=_templates("upload_query", given["upload_query"]),
            content_type=_media_type(content_type),
        )
        carried = set(shape.path.names)
        for _, template in shape.fields + shape.query:
            carried.update(template.names)
        if "integration_id" not in carried:
            raise ValueError(
                "the upload shape must carry {integration_id} (in upload_path, upload_query "
                "or upload_fields): the sandbox finds the integration by it"
            )
        if not carried & {"month", "first_day", "last_day"}:
            raise ValueError(
                "the upload shape must carry {month}, {first_day} or {last_day} (in "
                "upload_path, upload_query or upload_fields): the sandbox files uploads by month"
            )
        return shape


def _templates(setting: str, raw: object) -> tuple[tuple[str, _Template], ...]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"config {setting!r} must be an object of name -> template")
    return tuple(
        (str(name), _Template.compile(f"{setting}.{name}", text)) for name, text in raw.items()
    )


def _media_type(content_type: str) -> str:
    """``text/csv`` of ``Text/CSV; charset=utf-8``: what a content type is compared by."""
    return content_type.split(";", 1)[0].strip().lower()


@dataclass
class _State:
    """Everything the request handlers share, guarded by ``lock``."""

    tokens: tuple[str, ...]
    integrations: dict[str, str]
    faults: list[Fault]
    data_dir: Path
    shape: _Shape
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    idle: threading.Condition = field(init=False)
    seen: list[SeenRequest] = field(default_factory=list)
    #: Fault kinds taken so far, in order (what ``wait_for_fault`` waits on).
    taken: list[str] = field(default_factory=list)
    #: Set by ``stop()``: slow and trickled replies give up at once.
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.idle = threading.Condition(self.lock)

    def take_fault(self, integration_id: str, month: str) -> Fault | None:
        """Consume one use of the first matching fault, in config order."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(integration_id, month):
                    fault.remaining -= 1
                    self.taken.append(fault.kind)
                    self.idle.notify_all()
                    return fault
        return None


def _parse_config(
    config: Mapping[str, Any],
) -> tuple[tuple[str, ...], dict[str, str], list[Fault], _Shape]:
    """Validate the sandbox config early so a typo fails at start, not on first upload."""
    tokens = config.get("tokens")
    if (
        not isinstance(tokens, list)
        or not tokens
        or not all(isinstance(t, str) and t for t in tokens)
    ):
        raise ValueError("config 'tokens' must be a non-empty list of strings")
    integrations = config.get("integrations")
    if not isinstance(integrations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in integrations.items()
    ):
        raise ValueError("config 'integrations' must map integration_id to organization_id")
    raw_faults = config.get("faults", [])
    if not isinstance(raw_faults, list) or not all(isinstance(f, dict) for f in raw_faults):
        raise ValueError("config 'faults' must be a list of objects")
    faults = [Fault.from_config(f) for f in raw_faults]
    return tuple(tokens), dict(integrations), faults, _Shape.from_config(config)


def parse_multipart(content_type: str, body: bytes) -> list[_Part]:
    """Split a multipart/form-data body, keeping each part's bytes exactly as sent.

    Part headers are parsed with the email package; the payload is sliced directly so the
    stored CSV is byte-identical to the upload (no line-ending or charset rewriting).
    """
    header = BytesParser(policy=default_policy).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    )
    if header.get_content_type() != "multipart/form-data":
        raise ValueError("Content-Type must be multipart/form-data")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("multipart boundary missing")
    delimiter = b"--" + boundary.encode("latin-1")
    if body.startswith(delimiter):
        pos = len(delimiter)
    else:
        start = body.find(b"\r\n" + delimiter)
        if start < 0:
            raise ValueError("multipart body has no parts")
        pos = start + 2 + len(delimiter)
    parts: list[_Part] = []
    while True:
        if body.startswith(b"--", pos):
            return parts
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise ValueError("malformed multipart delimiter line")
        pos = line_end + 2
        next_delim = body.find(b"\r\n" + delimiter, pos)
        if next_delim < 0:
            raise ValueError("multipart body is truncated")
        raw_part = body[pos:next_delim]
        head_end = raw_part.find(b"\r\n\r\n")
        if head_end < 0:
            if raw_part.startswith(b"\r\n"):
                headers_raw, data = b"", raw_part[2:]
            else:
                raise ValueError("multipart part has no header block")
        else:
            headers_raw, data = raw_part[:head_end], raw_part[head_end + 4 :]
        headers: EmailMessage = BytesParser(policy=default_policy).parsebytes(
            headers_raw + b"\r\n\r\n"
        )
        name = headers.get_param("name", header="content-disposition")
        parts.append(
            _Part(
                name=name if isinstance(name, str) else None,
                filename=headers.get_filename(),
                content_type=headers.get_content_type()
                if "content-type" in headers
                else "text/plain",
                data=data,
            )
        )
        pos = next_delim + 2 + len(delimiter)


def _month_bounds(month: str) -> tuple[int, int]:
    """Unix seconds of the first instant of ``month`` and of the following month (UTC)."""
    year, mon = (int(x) for x in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()), int(end.timestamp())


def validate_csv(content: bytes, month: str, organization_id: str) -> int:
    """Apply Pelanor's documented file checks; return the number of data rows."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise _HTTPProblem(422, "invalid_file", "file is not UTF-8 encoded CSV") from None
    text = text.removeprefix("\ufeff")
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = next(reader, [])
        rows = [row for row in reader if row]
    except csv.Error as exc:
        raise _HTTPProblem(422, "invalid_file", f"file is not valid CSV: {exc}") from None
    columns = [c.strip() for c in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise _HTTPProblem(
            422, "missing_columns", f"missing required columns: {', '.join(missing)}"
        )
    index = {name: columns.index(name) for name in REQUIRED_COLUMNS}
    for number, row in enumerate(rows, start=1):
        if len(row) != len(columns):
            raise _HTTPProblem(
                422,
                "invalid_file",
                f"row {number} has {len(row)} fields, the header has {len(columns)}",
            )
    for number, row in enumerate(rows, start=1):
        currency = row[index["amount_currency"]].strip()
        if currency and currency.lower() != "usd":
            raise _HTTPProblem(
                422,
                "invalid_currency",
                f"row {number} amount_currency is {currency}; only usd is supported",
            )
    for row in rows:
        org = row[index["organization_id"]].strip()
        if org and org != organization_id:
            raise _HTTPProblem(
                422,
                "organization_mismatch",
                f"organization_id {org} does not match this integration ({organization_id})",
            )
    low, high = _month_bounds(month)
    for number, row in enumerate(rows, start=1):
        raw = row[index["start_time"]].strip()
        try:
            start = float(raw)
        except ValueError:
            raise _HTTPProblem(
                422, "invalid_file", f"row {number} start_time {raw!r} is not a Unix timestamp"
            ) from None
        if not low <= start < high:
            raise _HTTPProblem(
                422,
                "month_mismatch",
                f"row {number} start_time {raw} is not inside month {month}",
            )
    for number, row in enumerate(rows, start=1):
        amount = row[index["amount_value"]].strip()
        if amount:
            try:
                float(amount)
            except ValueError:
                raise _HTTPProblem(
                    422, "invalid_file", f"row {number} amount_value {amount!r} is not a number"
                ) from None
    return len(rows)


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` in one rename so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows the shared state and stays quiet on client hang-ups."""

    daemon_threads = True
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            logger.info("client %s went away: %s", client_address[0], type(exc).__name__)
            return
        logger.exception("error while handling a request from %s", client_address[0])


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    #: Headers and body leave in separate writes: without this, each answer waits for the
    #: client's delayed ACK (about 40 ms on Linux).
    disable_nagle_algorithm = True
    """Routes: uploads (by default POST /v1/integrations/openai/{id}/upload) and GET
    /healthz."""

    protocol_version = "HTTP/1.1"
    server_version = "PelanorSandbox/1"
    server: _Server
    timeout = 30  # idle keep-alive connections are closed after this

    def log_message(self, format: str, *args: Any) -> None:
        # The request line and status only: headers (Authorization) are never logged.
        logger.info("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/healthz":
            self._send_json(200, {"status": "ok"})
        else:
            self._send_error(_HTTPProblem(404, "not_found", "no such route"))

    def do_POST(self) -> None:
        self._upload()

    def do_PUT(self) -> None:
        self._upload()

    def _upload(self) -> None:
        state = self.server.state
        with state.lock:
            state.in_flight += 1
        try:
            self._handle_upload(state)
        finally:
            with state.lock:
                state.in_flight -= 1
                state.idle.notify_all()

    def _handle_upload(self, state: _State) -> None:
        shape = state.shape
        url = urlsplit(self.path)
        info: dict[str, Any] = {"integration_id": None, "month": None, "fault": None}
        try:
            body = self._read_body()
            info["body_bytes"] = len(body)
            in_path = shape.path.values(url.path)
            if in_path is None:
                raise _HTTPProblem(404, "not_found", "no such route")
            if self.command != shape.method:
                raise _HTTPProblem(
                    405, "method_not_allowed", f"use {shape.method} to upload, not {self.command}"
                )
            values = [(name, unquote(value)) for name, value in in_path]
            info["integration_id"] = dict(values).get("integration_id")
            self._check_token(state)
            values += self._query_values(shape, url.query, info)
            if shape.raw:
                file_part = self._raw_file(shape, body)
            else:
                parts = self._parse_form(body, info)
                values += self._field_values(shape, parts)
                file_part = self._file_part(shape, parts)
            info["file"] = file_part
            integration_id, month = self._identify(state, values, file_part)
            info["integration_id"], info["month"] = integration_id, month
            fault = state.take_fault(integration_id, month)
            if fault is not None:
                info["fault"] = fault.kind
                logger.info("injecting fault %s for %s %s", fault.kind, integration_id, month)
                if fault.kind == "drop":
                    self.close_connection = True
                    self._record(state, None, info)
                    return  # no response at all: the client sees the connection close
                if fault.kind == "slow":
                    if state.stopping.wait(fault.seconds):
                        self.close_connection = True
                        self._record(state, None, info)
                        return
                elif fault.kind == "trickle":
                    self._record(state, 200, info)
                    self._trickle(state, fault.seconds)
                    return
                else:
                    # Recorded before the answer, as every request is: a test reading
                    # the requests once its client has the answer finds this one there.
                    self._record(state, int(fault.kind), info)
                    self._send_fault(fault)
                    return
            rows = validate_csv(file_part.data, month, state.integrations[integration_id])
            result = self._store(state, integration_id, month, file_part, rows)
        except _HTTPProblem as problem:
            self._record(state, problem.status, info)
            self._send_error(problem)
            return
        self._record(state, 200, info)
        self._send_json(200, result)

    def _read_body(self) -> bytes:
        """Read exactly Content-Length bytes (chunked uploads are not supported)."""
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            raise _HTTPProblem(411, "length_required", "Content-Length is required")
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise _HTTPProblem(400, "bad_request", "invalid Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            raise _HTTPProblem(413, "too_large", f"body larger than {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length)

    def _check_token(self, state: _State) -> None:
        """401 unless ``Authorization: Bearer <one of the configured tokens>``."""
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _HTTPProblem(401, "unauthorized", "missing bearer token")
        token = token.strip()
        if not any(hmac.compare_digest(token.encode(), t.encode()) for t in state.tokens):
            raise _HTTPProblem(401, "unauthorized", "invalid bearer token")

    def _parse_form(self, body: bytes, info: dict[str, Any]) -> list[_Part]:
        try:
            parts = parse_multipart(self.headers.get("Content-Type", ""), body)
        except ValueError as exc:
            raise _HTTPProblem(400, "bad_request", f"invalid multipart body: {exc}") from None
        info["parts"] = parts
        return parts

    @staticmethod
    def _query_values(shape: _Shape, query: str, info: dict[str, Any]) -> list[tuple[str, str]]:
        """The query parameters the shape names, exactly those (values read back)."""
        pairs = parse_qsl(query, keep_blank_values=True)
        info["query"] = tuple(pairs)
        given = dict(pairs)
        values: list[tuple[str, str]] = []
        for name, template in shape.query:
            if name not in given:
                raise _HTTPProblem(400, "missing_query", f"query parameter '{name}' is required")
            found = template.values(given[name])
            if found is None:
                raise _HTTPProblem(
                    400,
                    "invalid_query",
                    f"query parameter '{name}' must look like {template.text!r}, "
                    f"got {given[name]!r}",
                )
            values += found
        expected = {name for name, _ in shape.query}
        if unexpected := sorted({name for name, _ in pairs} - expected):
            raise _HTTPProblem(
                400, "unexpected_query", f"unexpected query parameter(s): {', '.join(unexpected)}"
            )
        return values

    @staticmethod
    def _field_values(shape: _Shape, parts: Sequence[_Part]) -> list[tuple[str, str]]:
        """The form fields the shape names (values read back)."""
        values: list[tuple[str, str]] = []
        for name, template in shape.fields:
            part = next((p for p in parts if p.name == name and p.filename is None), None)
            if part is None:
                raise _HTTPProblem(400, "missing_field", f"form field '{name}' is required")
            text = part.data.decode("utf-8", "replace").strip()
            found = template.values(text)
            if found is None:
                raise _HTTPProblem(
                    400,
                    "invalid_field",
                    f"form field '{name}' must look like {template.text!r}, got {text!r}",
                )
            values += found
        return values

    @staticmethod
    def _file_part(shape: _Shape, parts: Sequence[_Part]) -> _Part:
        """The CSV's part; then no part the shape does not name."""
        name = shape.file_field
        file_part = next((p for p in parts if p.name == name), None)
        if file_part is None:
            raise _HTTPProblem(400, "missing_field", f"multipart part '{name}' is required")
        if file_part.content_type != shape.content_type:
            raise _HTTPProblem(
                415,
                "unsupported_media_type",
                f"part '{name}' must be {shape.content_type}, got {file_part.content_type}",
            )
        expected = {name, *(field for field, _ in shape.fields)}
        if unexpected := sorted({p.name or "" for p in parts} - expected):
            raise _HTTPProblem(
                400, "unexpected_field", f"unexpected form part(s): {', '.join(unexpected)}"
            )
        return file_part

    def _raw_file(self, shape: _Shape, body: bytes) -> _Part:
        """The whole body is the CSV, sent as the shape's content type."""
        content_type = _media_type(self.headers.get("Content-Type", ""))
        if content_type != shape.content_type:
            raise _HTTPProblem(
                415,
                "unsupported_media_type",
                f"the body must be {shape.content_type}, got {content_type or 'no Content-Type'}",
            )
        return _Part(name=None, filename=None, content_type=content_type, data=body)

    @staticmethod
    def _identify(
        state: _State, values: Sequence[tuple[str, str]], file_part: _Part
    ) -> tuple[str, str]:
        """The integration and month the request names, everywhere alike."""
        seen: dict[str, str] = {}
        for name, value in values:
            if seen.setdefault(name, value) != value:
                raise _HTTPProblem(
                    400,
                    "inconsistent_request",
                    f"the request gives {name} as {seen[name]!r} and as {value!r}",
                )
        integration_id = seen["integration_id"]  # the shape carries it (checked at start)
        if integration_id not in state.integrations:
            raise _HTTPProblem(404, "unknown_integration", f"unknown integration {integration_id}")
        # The shape carries one of these at least (checked at start).
        source = next(name for name in ("month", "first_day", "last_day") if name in seen)
        month = seen[source][:7]
        if not _MONTH_RE.fullmatch(month) or (source == "month" and seen[source] != month):
            form = "YYYY-MM" if source == "month" else "YYYY-MM-DD"
            raise _HTTPProblem(
                400, "invalid_month", f"{source} must be {form}, got {seen[source]!r}"
            )
        low, high = _month_bounds(month)
        days = {
            "first_day": datetime.fromtimestamp(low, UTC).date().isoformat(),
            "last_day": datetime.fromtimestamp(high - 1, UTC).date().isoformat(),
        }
        for name, expected in days.items():
            if name in seen and seen[name] != expected:
                raise _HTTPProblem(
                    400, "invalid_day", f"{name} of {month} is {expected}, got {seen[name]!r}"
                )
        organization_id = state.integrations[integration_id]
        if "organization_id" in seen and seen["organization_id"] != organization_id:
            raise _HTTPProblem(
                422,
                "organization_mismatch",
                f"organization_id {seen['organization_id']} does not match this integration "
                f"({organization_id})",
            )
        if "file_name" in seen and file_part.filename not in (None, seen["file_name"]):
            raise _HTTPProblem(
                400,
                "inconsistent_request",
                f"the request gives file_name as {seen['file_name']!r}, the file part's name "
                f"is {file_part.filename!r}",
            )
        return integration_id, month

    def _store(
        self, state: _State, integration_id: str, month: str, part: _Part, rows: int
    ) -> dict[str, Any]:
        """Replace the month's file and append to the upload log."""
        upload_id = f"upl_{secrets.token_hex(6)}"
        target = state.data_dir / "files" / integration_id / f"{month}.csv"
        record = {
            "id": upload_id,
            "integration_id": integration_id,
            "month": month,
            "filename": part.filename,
            "bytes": len(part.data),
            "sha256": hashlib.sha256(part.data).hexdigest(),
            "rows": rows,
            "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        with state.lock:
            _write_atomic(target, part.data)
            with (state.data_dir / "uploads.jsonl").open("a", encoding="utf-8") as log:
                log.write(json.dumps(record, sort_keys=True) + "\n")
        logger.info("stored %s for %s (%d rows) as %s", month, integration_id, rows, upload_id)
        return {
            "id": upload_id,
            "integration_id": integration_id,
            "month": month,
            "rows": rows,
            "status": "accepted",
        }

    def _record(self, state: _State, status: int | None, info: Mapping[str, Any]) -> None:
        parts: list[_Part] = info.get("parts") or []
        file_part: _Part | None = info.get("file") or next(
            (p for p in parts if p.name == state.shape.file_field), None
        )
        auth = self.headers.get("Authorization")
        seen = SeenRequest(
            method=self.command,
            path=urlsplit(self.path).path,
            status=status,
            integration_id=info.get("integration_id"),
            month=info.get("month"),
            filename=file_part.filename if file_part else None,
            file_content_type=file_part.content_type if file_part else None,
            file_bytes=len(file_part.data) if file_part else None,
            form_fields=tuple(p.name or "" for p in parts),
            user_agent=self.headers.get("User-Agent"),
            content_type=self.headers.get("Content-Type"),
            auth_scheme=auth.partition(" ")[0] if auth else None,
            fault=info.get("fault"),
            query=info.get("query", ()),
            body_bytes=info.get("body_bytes"),
        )
        logger.info(  # what was sent, in the shape's terms (never a header)
            "upload %s %s: query %s, parts %s, file %s (%s, %s bytes): HTTP %s",
            seen.method,
            seen.path,
            dict(seen.query),
            list(seen.form_fields),
            seen.filename,
            seen.file_content_type,
            seen.file_bytes,
            status,
        )
        with state.lock:
            state.seen.append(seen)

    def _send_fault(self, fault: Fault) -> None:
        status = int(fault.kind)
        messages = {
            429: ("rate_limited", "too many requests (injected fault)"),
            500: ("internal_error", "internal error (injected fault)"),
            503: ("unavailable", "service unavailable (injected fault)"),
        }
        code, message = messages[status]
        headers = {}
        if fault.retry_after is not None:
            retry_after = fault.retry_after
            headers["Retry-After"] = (
                str(int(retry_after)) if retry_after == int(retry_after) else str(retry_after)
            )
        self._send_json(status, {"error": {"code": code, "message": message}}, headers)

    def _trickle(self, state: _State, seconds: float) -> None:
        """200 and its headers at once, then the body one byte every ``seconds``: a reply
        that never times out a single read. Nothing is stored."""
        payload = json.dumps({"status": "accepted", "note": "trickled (injected fault)"})
        self.close_connection = True
        self.send_response(200, "OK")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        for byte in payload.encode():
            if state.stopping.wait(seconds):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()

    def _send_error(self, problem: _HTTPProblem) -> None:
        body = {"error": {"code": problem.code, "message": problem.message}}
        self._send_json(problem.status, body)

    def _send_json(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)


def _is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PelanorSandbox:
    """In-process sandbox server for tests: ``with PelanorSandbox(cfg, tmp) as sb: sb.url``."""

    def __init__(
        self,
        config: Mapping[str, Any],
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not _is_loopback(host):  # the sandbox accepts any upload from anyone
            raise ValueError(
                f"refusing to bind the Pelanor sandbox to non-loopback host {host!r}; "
                "use 127.0.0.1, ::1 or localhost"
            )
        tokens, integrations, faults, shape = _parse_config(config)
        self.data_dir = Path(data_dir)
        self._host = host
        self._port = port
        self._state = _State(tokens, integrations, faults, self.data_dir, shape)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.url if self._server else "not started"
        return f"PelanorSandbox({where}, data_dir={str(self.data_dir)!r})"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (only once started)."""
        if self._server is None:
            raise RuntimeError("sandbox is not started")
        host, port = self._server.server_address[:2]
        host_text = host if isinstance(host, str) else host.decode()
        if ":" in host_text:
            host_text = f"[{host_text}]"
        return f"http://{host_text}:{port}"

    @property
    def requests(self) -> list[SeenRequest]:
        """Upload requests seen so far, in arrival order (no secrets recorded)."""
        with self._state.lock:
            return list(self._state.seen)

    @property
    def faults(self) -> list[Fault]:
        """The fault list with current remaining counts."""
        with self._state.lock:
            return list(self._state.faults)

    def uploads(self) -> list[dict[str, Any]]:
        """Parsed lines of ``uploads.jsonl``."""
        path = self.data_dir / "uploads.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]

    def stored_files(self) -> list[Path]:
        """All stored month files, sorted."""
        return sorted((self.data_dir / "files").glob("*/*.csv"))

    def start(self) -> PelanorSandbox:
        """Bind, write ``<data-dir>/sandbox.url`` and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "files").mkdir(exist_ok=True)
        server_cls = _Server6 if ":" in self._host else _Server
        server = server_cls((self._host, self._port), _Handler)
        server.state = self._state
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="pelanor-sandbox",
            daemon=True,
        )
        self._thread.start()
        _write_atomic(self.data_dir / "sandbox.url", self.url.encode("ascii"))
        return self

    def wait_for_fault(self, kind: str, timeout: float = 60.0) -> bool:
        """Wait until a request has taken a fault of ``kind`` (its upload fully received),
        so a test can act while that request is in progress without guessing a delay."""
        with self._state.idle:
            return self._state.idle.wait_for(lambda: kind in self._state.taken, timeout)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no upload is being processed (e.g. a slow fault still sleeping)."""
        with self._state.idle:
            return self._state.idle.wait_for(lambda: self._state.in_flight == 0, timeout)

    def stop(self) -> None:
        """Stop serving and wait for in-flight uploads to finish storing."""
        server, self._server = self._server, None
        if server is None:
            return
        self._state.stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.wait_idle()

    def __enter__(self) -> PelanorSandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="pelanor-sandbox", description="Local Pelanor upload sandbox."
    )
    parser.add_argument("--config", required=True, type=Path, help="sandbox config JSON")
    parser.add_argument("--data-dir", required=True, type=Path, help="where uploads are stored")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", default=0, type=int, help="port (0 picks a free one)")
    parser.add_argument(
        "--url",
        help="serve where target-pelanor's api_url points (http://127.0.0.1:PORT), instead "
        "of --host and --port; `make demo` passes the dev environment's api_url",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        host, port, choose = _address(args.host, args.port, args.url)
        config = json.loads(args.config.read_text("utf-8"))
        if not isinstance(config, dict):
            raise ValueError("config must be a JSON object")
        sandbox = PelanorSandbox(config, args.data_dir, host=host, port=port)
        sandbox.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"port {port} on {host} is already in use; choose another {choose}"
        else:
            message = str(exc)
        print(f"pelanor sandbox: {message}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"pelanor sandbox: {exc}", file=sys.stderr)
        return 2

    print(f"Pelanor sandbox listening on {sandbox.url}", flush=True)
    serve_until_signalled(sandbox.stop)
    return 0


def _address(host: str, port: int, url: str | None) -> tuple[str, int, str]:
    """Host and port to bind, and how to choose another port if that one is taken."""
    if url is None:
        return host, port, "with --port (--port 0 picks a free one)"
    parts = urlsplit(url)
    try:
        url_port = parts.port
    except ValueError:
        url_port = None
    if parts.scheme != "http" or not parts.hostname or url_port is None or parts.path.strip("/"):
        raise ValueError(f"--url must look like http://127.0.0.1:PORT, got {url!r}")
    host_text = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    choose = (
        f"by setting TARGET_PELANOR_API_URL=http://{host_text}:PORT (target-pelanor's "
        "api_url: make demo, make sandbox and the dev environment follow it)"
    )
    return parts.hostname, url_port, choose


if __name__ == "__main__":
    raise SystemExit(main())
