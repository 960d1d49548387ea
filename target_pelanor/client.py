"""HTTP client that uploads one month of OpenAI cost CSV to Pelanor.

The upload contract (path, form fields, retry rules) is the one this project adopts in
the shared Pelanor reference: Pelanor does not publish the OpenAI upload endpoint, so the
path is configurable and every response is interpreted defensively.  The API token is
kept out of every exception text, log line and ``repr``.
"""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import json
import logging
import random as _random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Final
from urllib.parse import quote, urlsplit

import httpx

__all__ = [
    "DEFAULT_UPLOAD_PATH",
    "REGION_URLS",
    "PelanorClient",
    "PelanorError",
    "PelanorRejected",
    "UploadReceipt",
    "resolve_base_url",
]

DEFAULT_UPLOAD_PATH = "/v1/integrations/openai/{integration_id}/upload"
REGION_URLS = {"us": "https://api.pelanor.io", "eu": "https://api-eu.pelanor.io"}

logger = logging.getLogger("target_pelanor.client")

_RETRYABLE_STATUS: Final = frozenset({408, 429})
_BACKOFF_BASE: Final = 1.0
_BACKOFF_FACTOR: Final = 2.0
_BACKOFF_CAP: Final = 60.0
# Safety net so a clock that never advances (e.g. an injected fake) cannot loop forever.
_MAX_ATTEMPTS: Final = 100
_MESSAGE_LIMIT: Final = 200
_MONTH_RE: Final = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def _package_version() -> str:
    """Return the installed distribution version for the User-Agent, if known."""
    try:
        return metadata.version("openai-costs-to-pelanor")
    except metadata.PackageNotFoundError:
        return "unknown"


USER_AGENT: Final = f"target-pelanor/{_package_version()}"


class PelanorError(Exception):
    """Upload failed; str(exc) is one line safe to show a user (never the token)."""

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.attempts = attempts


class PelanorRejected(PelanorError):
    """Pelanor refused (400/401/403/404/422): not retried."""


@dataclass(frozen=True)
class UploadReceipt:
    """What Pelanor acknowledged, kept so the target can log and report it."""

    response_id: str | None
    status_code: int
    attempts: int


def resolve_base_url(region: str, api_url: str | None) -> str:
    """Pick the Pelanor base URL; refuse plain http except to loopback (tokens travel in it)."""
    if api_url is not None and api_url.strip():
        return _check_api_url(api_url.strip())
    key = (region or "").strip().lower()
    if key not in REGION_URLS:
        raise ValueError(
            f"region must be one of: {', '.join(REGION_URLS)} (got {region!r}); or set api_url"
        )
    return REGION_URLS[key]


def _check_api_url(api_url: str) -> str:
    """Validate an ``api_url`` override and return it without a trailing slash."""
    try:
        parts = urlsplit(api_url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise ValueError("api_url is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise ValueError("api_url must be an absolute https:// URL, e.g. https://api.pelanor.io")
    if parts.username is not None or parts.password is not None:
        raise ValueError("api_url must not contain credentials; use api_token")
    if parts.query or parts.fragment:
        raise ValueError("api_url must not contain a query string or fragment")
    if scheme == "http" and not _is_loopback(host):
        raise ValueError(
            f"api_url must use https; plain http is only allowed for loopback hosts "
            f"(127.0.0.1, ::1, localhost), got http://{host}"
        )
    return api_url.rstrip("/")


def _is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Secret:
    """Holds the token so that no repr, vars() dump or traceback local shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"


class PelanorClient:
    """Synchronous uploader with bounded, jittered retries for transient failures."""

    def __init__(
        self,
        *,
        base_url: str,
        integration_id: str,
        api_token: str,
        upload_path: str = DEFAULT_UPLOAD_PATH,
        request_timeout: float = 60.0,
        max_retry_seconds: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url or not base_url.strip():
            raise ValueError("base_url is required")
        if not integration_id or not integration_id.strip():
            raise ValueError("integration_id is required")
        if not api_token:
            raise ValueError("api_token is required")
        if not (api_token.isascii() and api_token.isprintable()) or any(
            c.isspace() for c in api_token
        ):
            # Checked here because httpx would echo an invalid header value in its error.
            raise ValueError("api_token contains whitespace or non-printable characters")
        if not upload_path.startswith("/"):
            raise ValueError("upload_path must start with '/'")
        try:
            path = upload_path.format(integration_id=quote(integration_id, safe=""))
        except (KeyError, IndexError, ValueError):
            raise ValueError(
                "upload_path may only contain the {integration_id} placeholder"
            ) from None
        if request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        if max_retry_seconds < 0:
            raise ValueError("max_retry_seconds must not be negative")

        self._base_url = base_url.strip().rstrip("/")
        self._integration_id = integration_id
        self._upload_path = upload_path
        self._url = self._base_url + path
        self._token = _Secret(api_token)
        self._max_retry_seconds = max_retry_seconds
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self._http = httpx.Client(
            timeout=httpx.Timeout(request_timeout),
            transport=transport,
            follow_redirects=False,  # never resend the bearer token somewhere else
        )

    def __repr__(self) -> str:
        return (
            f"PelanorClient(base_url={self._base_url!r}, "
            f"integration_id={self._integration_id!r}, upload_path={self._upload_path!r})"
        )

    def __enter__(self) -> PelanorClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self._http.close()

    def upload(self, *, month: str, filename: str, content: bytes | Path) -> UploadReceipt:
        """Upload one month's CSV byte for byte; retry transient failures within the budget.

        A Path is streamed from disk on every attempt, so a large month is never held in
        memory."""
        if not _MONTH_RE.fullmatch(month):
            raise ValueError(f"month must be YYYY-MM, got {month!r}")
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            size = content.stat().st_size if isinstance(content, Path) else len(content)
            logger.info("Uploading %s to Pelanor: attempt %d (%d bytes)", month, attempt, size)
            retry_after: float | None = None
            try:
                response = self._send(month, filename, content)
            except httpx.TimeoutException as exc:
                status: int | None = None
                last_error = self._scrub(f"timeout ({type(exc).__name__})")
            except httpx.TransportError as exc:
                status = None
                last_error = self._scrub(f"connection error ({type(exc).__name__}: {exc})")
            else:
                status = response.status_code
                if 200 <= status < 300:
                    receipt = UploadReceipt(_response_id(response), status, attempt)
                    logger.info(
                        "Pelanor accepted %s: HTTP %d, id %s, attempt %d",
                        month,
                        status,
                        receipt.response_id,
                        attempt,
                    )
                    return receipt
                message = self._scrub(_error_message(response))
                if not _is_retryable(status):
                    logger.warning(
                        "Pelanor rejected %s: attempt %d, HTTP %d, not retrying",
                        month,
                        attempt,
                        status,
                    )
                    raise PelanorRejected(
                        _rejection_text(month, status, message),
                        status_code=status,
                        attempts=attempt,
                    )
                last_error = f"HTTP {status}: {message}"
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))

            backoff = min(_BACKOFF_CAP, _BACKOFF_BASE * _BACKOFF_FACTOR ** (attempt - 1))
            delay = self._random() * backoff
            if retry_after is not None:
                delay = max(retry_after, delay)
            elapsed = self._clock() - started
            if elapsed + delay > self._max_retry_seconds or attempt >= _MAX_ATTEMPTS:
                logger.warning(
                    "Pelanor upload of %s: attempt %d, status %s, giving up after %.1fs",
                    month,
                    attempt,
                    status if status is not None else "none",
                    elapsed,
                )
                noun = "attempt" if attempt == 1 else "attempts"
                raise PelanorError(
                    f"Pelanor upload of {month} failed after {attempt} {noun} over "
                    f"{elapsed:.0f}s: last error {last_error}",
                    status_code=status,
                    attempts=attempt,
                )
            logger.warning(
                "Pelanor upload of %s: attempt %d, status %s (%s), retrying in %.2fs",
                month,
                attempt,
                status if status is not None else "none",
                last_error,
                delay,
            )
            self._sleep(delay)

    def _send(self, month: str, filename: str, content: bytes | Path) -> httpx.Response:
        """One POST; the Authorization header is built here and never stored or logged."""
        headers = {
            "Authorization": f"Bearer {self._token.reveal()}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        with contextlib.ExitStack() as stack:
            body = stack.enter_context(content.open("rb")) if isinstance(content, Path) else content
            return self._http.post(
                self._url,
                headers=headers,
                data={"month": month},
                files={"file": (filename, body, "text/csv")},
            )

    def _scrub(self, text: str) -> str:
        """Remove the token from text that came from elsewhere (a server could echo it)."""
        token = self._token.reveal()
        return text.replace(token, "***") if token else text


def _is_retryable(status: int) -> bool:
    """408, 429 and 5xx are worth retrying; everything else is Pelanor's final word."""
    return status in _RETRYABLE_STATUS or 500 <= status < 600


def _rejection_text(month: str, status: int, message: str) -> str:
    """One-line user-facing text for a refused upload, with a hint at the setting to fix."""
    text = f"Pelanor rejected the upload of {month} (HTTP {status}): {message}"
    if status in (401, 403):
        text += "; check api_token"
    elif status == 404:
        text += "; check integration_id and upload_path"
    return text


def _one_line(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    """Collapse whitespace so the message fits on one line, and bound its length."""
    return " ".join(text.split())[:limit]


def _error_message(response: httpx.Response) -> str:
    """Pelanor's explanation from a JSON error body, else the start of the body text."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    candidate: object = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            candidate = error.get("message")
        elif isinstance(error, str):
            candidate = error
        if candidate is None:
            candidate = body.get("message")
        if candidate is None:
            candidate = body.get("detail")
    if candidate is not None:
        text = candidate if isinstance(candidate, str) else json.dumps(candidate)
        message = _one_line(text, 500)
        if message:
            return message
    message = _one_line(response.text, _MESSAGE_LIMIT)
    return message or response.reason_phrase or "(empty response body)"


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


def _retry_after_seconds(value: str | None) -> float | None:
    """Parse Retry-After as delta-seconds or an HTTP-date; None when absent or invalid."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds or seconds == float("inf"):  # NaN / inf
        return None
    return max(0.0, seconds)
