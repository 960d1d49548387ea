"""HTTP client that uploads one month of OpenAI cost CSV to Pelanor.

The upload contract (path, form fields, retry rules) is the one docs/pelanor-endpoint.md describes
in "The Pelanor endpoint: what is configurable, and why": Pelanor does not publish the OpenAI
upload endpoint, so the request's whole shape is configurable (built by
:mod:`target_pelanor.upload_request`) and every response is interpreted defensively.
The API token is kept out of every exception text, log line and ``repr``.

A month is delivered only when Pelanor accepted it: HTTP 200, 201 or 202 with a JSON object
that is not an error (``{"error": …}``). Any other answer, a 2xx included (204, an HTML
sign-in page, an empty or non-JSON body, an answer longer than the 1 MiB read of it), is
:class:`PelanorNotAccepted`, and the message says what came back.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import random as _random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, cast

from openai_costs.lazy_import import lazy_module
from openai_costs.month_status import SENDING
from openai_costs.pace import byte_count
from openai_costs.safe_http import (
    ANSWER_LIMIT,
    BearerClient,
    ServiceError,
    answer_cut,
    check_base_url,
    describe_size,
    error_message,
    one_line,
)
from target_pelanor.upload_progress import SendingFile
from target_pelanor.upload_request import (
    DEFAULT_SHAPE,
    DEFAULT_UPLOAD_PATH,
    MonthValues,
    UploadShape,
    check_upload_path,
    describe,
)

if TYPE_CHECKING:
    import httpx
else:  # loaded at first use (openai_costs.lazy_import)
    httpx = lazy_module("httpx")

__all__ = [
    "DEFAULT_UPLOAD_PATH",
    "REGION_URLS",
    "PelanorClient",
    "PelanorError",
    "PelanorNotAccepted",
    "PelanorRejected",
    "UploadReceipt",
    "check_upload_path",
    "resolve_base_url",
]

REGION_URLS = {"us": "https://api.pelanor.io", "eu": "https://api-eu.pelanor.io"}

logger = logging.getLogger("target_pelanor.client")

_MONTH_RE: Final = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
#: The statuses an upload is accepted with (with a JSON object that is not an error).
ACCEPTED_STATUSES: Final = (200, 201, 202)
_TITLE_RE: Final = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_CHECK_ADDRESS: Final = "check api_url, region and upload_path"
#: The hint for a refused token, naming both ways of giving one.
_CHECK_TOKEN: Final = "check api_token (or api_token_id and api_token_secret)"  # noqa: S105


def _package_version() -> str:
    """Return the installed distribution version for the User-Agent, if known."""
    try:
        return metadata.version("openai-costs-to-pelanor")
    except metadata.PackageNotFoundError:
        return "unknown"


USER_AGENT: Final = f"target-pelanor/{_package_version()}"


class PelanorError(ServiceError):
    """Upload failed; str(exc) is one line safe to show a user (never the token)."""


class PelanorRejected(PelanorError):
    """Pelanor refused (400/401/403/404/422): not retried."""


class PelanorNotAccepted(PelanorError):
    """A 2xx that does not accept the upload (see the module docstring): not retried, and
    the month is not delivered."""


@dataclass(frozen=True)
class UploadReceipt:
    """What Pelanor acknowledged, kept so the target can log and report it."""

    response_id: str | None
    status_code: int
    attempts: int


def resolve_base_url(region: str, api_url: str | None) -> str:
    """Pick the Pelanor base URL; refuse plain http except to loopback (tokens travel in it)."""
    if api_url is not None and api_url.strip():
        return check_base_url(
            api_url,
            setting="api_url",
            example=REGION_URLS["us"],
            auth_setting="api_token",
        )
    key = (region or "").strip().lower()
    if key not in REGION_URLS:
        raise ValueError(
            f"region must be one of: {', '.join(REGION_URLS)} (got {region!r}); or set api_url"
        )
    return REGION_URLS[key]


class PelanorClient(BearerClient):
    """Synchronous uploader with bounded, jittered retries for transient failures."""

    def __init__(
        self,
        *,
        base_url: str,
        integration_id: str,
        api_token: str,
        shape: UploadShape = DEFAULT_SHAPE,
        organization_id: str = "",
        request_timeout: float,
        max_retry_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
        progress_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not base_url or not base_url.strip():
            raise ValueError("base_url is required")
        if not integration_id or not integration_id.strip():
            raise ValueError("integration_id is required")
        check_upload_path(shape.path)
        if "organization_id" in shape.placeholders() and not organization_id:
            raise ValueError("organization_id is required: the upload request uses it")
        super().__init__(
            secret=api_token,
            setting="api_token",
            request_timeout=request_timeout,
            max_retry_seconds=max_retry_seconds,
            sleep=sleep,
            random=random,
            clock=clock,
            transport=transport,
            address_setting="api_url or region",
        )
        self._base_url = base_url.strip().rstrip("/")
        self._integration_id = integration_id
        self._shape = shape
        self._organization_id = organization_id
        #: When a line on a large upload's progress is due (not the retry policy's clock).
        self._progress_clock = progress_clock

    def __repr__(self) -> str:
        return (
            f"PelanorClient(base_url={self._base_url!r}, "
            f"integration_id={self._integration_id!r}, upload_path={self._shape.path!r})"
        )

    def upload(self, *, month: str, filename: str, content: bytes | Path) -> UploadReceipt:
        """Upload one month's CSV byte for byte; retry transient failures within the budget.

        A Path is streamed from disk on every attempt, so a large month is never held in
        memory."""
        if not _MONTH_RE.fullmatch(month):
            raise ValueError(f"month must be YYYY-MM, got {month!r}")
        size = content.stat().st_size if isinstance(content, Path) else len(content)
        logger.info(
            "%s %s: sending %s (%s bytes) to Pelanor",
            self._organization_id,
            month,
            byte_count(size),
            f"{size:,}",
            extra={
                "organization": self._organization_id,
                "month": month,
                "bytes": size,
                "status": SENDING,
                "action": SENDING,
            },
        )
        response, attempts = self.send_or_raise(
            f"Pelanor upload of {month}",
            lambda: self._send(month, filename, content),
            PelanorError,
            lambda status, message: _rejection_text(month, status, message),
            rejected_type=PelanorRejected,
        )
        if problem := acceptance_problem(response, self._scrub, self.answer_limit):
            logger.warning("Pelanor did not accept %s: HTTP %d", month, response.status_code)
            raise PelanorNotAccepted(
                f"Pelanor did not accept the upload of {month}: {problem}",
                status_code=response.status_code,
                attempts=attempts,
            )
        receipt = UploadReceipt(_response_id(response), response.status_code, attempts)
        logger.info(
            "Pelanor accepted %s: HTTP %d, id %s, attempt %d",
            month,
            receipt.status_code,
            receipt.response_id,
            attempts,
        )
        return receipt

    def check(self, path: str) -> int:
        """One authenticated GET of ``path`` (``check_path`` rendered): its 2xx status, or
        :class:`PelanorError` saying what to fix. Uploads nothing."""
        url = f"{self._base_url}{path}"
        response, _ = self.send_or_raise(
            f"Pelanor check request GET {url}",
            lambda: self._http.get(url, headers=self._auth_headers() | {"User-Agent": USER_AGENT}),
            PelanorError,
            lambda status, message: _check_rejection(url, status, message),
            rejected_type=PelanorRejected,
        )
        if not 200 <= response.status_code < 300:
            raise PelanorNotAccepted(
                f"Pelanor answered the check request GET {url} with HTTP "
                f"{response.status_code}, not 2xx; check check_path",
                status_code=response.status_code,
            )
        return response.status_code

    def _send(self, month: str, filename: str, content: bytes | Path) -> httpx.Response:
        """One attempt, in the configured shape (:mod:`target_pelanor.upload_request`); the
        Authorization header is built here and never stored or logged."""
        headers = self._auth_headers() | {"User-Agent": USER_AGENT}
        values = MonthValues.of(
            month,
            organization_id=self._organization_id,
            integration_id=self._integration_id,
            file_name=filename,
        )
        with contextlib.ExitStack() as stack:
            body: IO[bytes] | bytes
            if isinstance(content, Path):
                file = stack.enter_context(content.open("rb"))
                size = os.fstat(file.fileno()).st_size
                what = (self._organization_id, month)
                # httpx reads it as the file it wraps (read, fileno, seek, tell).
                body = cast(IO[bytes], SendingFile(file, size, what, logger, self._progress_clock))
            else:
                body = content
            request = self._shape.build(self._http, self._base_url, values, body, headers)
            logger.debug("%s", self._scrub(describe(request, self._shape, values)))
            return self._http.send(request)


def acceptance_problem(
    response: httpx.Response, scrub: Callable[[str], str], limit: int = ANSWER_LIMIT
) -> str | None:
    """Why a 2xx answer does not accept the upload (what came back, and the setting to
    check), or None when it does."""
    status = response.status_code
    instead = "instead of Pelanor's JSON answer"
    if status not in ACCEPTED_STATUSES:
        what = "no content" if status == 204 else response.reason_phrase or "an answer"
        return (
            f"HTTP {status} ({what}), which is not an acceptance (that is HTTP 200, 201 or "
            f"202 with Pelanor's JSON answer); {_CHECK_ADDRESS}"
        )
    if answer_cut(response):
        size = describe_size(limit)
        return f"HTTP {status} with an answer larger than {size} {instead}; {_CHECK_ADDRESS}"
    text = response.text
    if not text.strip():
        return f"HTTP {status} with an empty body {instead}; {_CHECK_ADDRESS}"
    if _is_html(response, text):
        return (
            f"HTTP {status} with an HTML page{_title(text, scrub)} {instead}; an HTML page "
            "(often a sign-in page) usually means a wrong api_url or region"
        )
    try:
        body = json.loads(text)
    except ValueError:
        shown = one_line(scrub(text), 60)
        return f"HTTP {status} with a body that is not JSON ({shown!r}) {instead}; {_CHECK_ADDRESS}"
    if not isinstance(body, dict):
        shown = one_line(scrub(text), 60)
        return (
            f"HTTP {status} with JSON that is not an object ({shown!r}) {instead}; {_CHECK_ADDRESS}"
        )
    if body.get("error") not in (None, False, "", {}):
        return f"HTTP {status} with an error: {error_message(response, scrub)}"
    return None


def _is_html(response: httpx.Response, text: str) -> bool:
    if "html" in response.headers.get("Content-Type", "").lower():
        return True
    start = text.lstrip()[:15].lower()
    return start.startswith(("<!doctype html", "<html"))


def _title(text: str, scrub: Callable[[str], str]) -> str:
    """`` titled 'Sign in'``: the first line of the page's title, if it has one."""
    match = _TITLE_RE.search(text)
    lines = html.unescape(match.group(1)).strip().splitlines() if match else []
    title = one_line(scrub(lines[0]), 100) if lines else ""
    return f" titled {title!r}" if title else " (no title)"


def _rejection_text(month: str, status: int, message: str) -> str:
    """One-line user-facing text for a refused upload, with a hint at the setting to fix."""
    if 300 <= status < 400:
        return f"Pelanor upload of {month} failed: HTTP {status}, {message}; {_CHECK_ADDRESS}"
    text = f"Pelanor rejected the upload of {month} (HTTP {status}): {message}"
    if status in (401, 403):
        text += f"; {_CHECK_TOKEN}"
    elif status == 404:
        text += "; check integration_id and upload_path"
    return text


def _check_rejection(url: str, status: int, message: str) -> str:
    """One line for a refused check request, with the setting to fix."""
    text = f"Pelanor refused the check request GET {url} (HTTP {status}): {message}"
    if status in (401, 403):
        return f"{text}; {_CHECK_TOKEN}"
    if status == 404:
        return f"{text}; check integration_id and check_path"
    return f"{text}; check check_path, api_url and region"


def _response_id(response: httpx.Response) -> str | None:
    """The upload id from a JSON success body, if Pelanor sent one."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(body, dict):
        value = body.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None
