"""What both plugins' HTTP clients need: secrets kept out of output, and bounded retries.

The tap's OpenAI client and the target's Pelanor client both send a bearer secret, so both
refuse plain http except to loopback, never show the secret (not in a repr, an error or a
log line, even when a server echoes it), and retry the same transient failures the same
way: 408, 429, 5xx, timeouts and dropped connections, with exponential backoff and full
jitter, honouring ``Retry-After``, within a bounded total time.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

UTC = timezone.utc  # datetime.UTC needs Python 3.11
logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 429})
_BACKOFF_BASE = 1.0
_BACKOFF_FACTOR = 2.0
_BACKOFF_CAP = 60.0
#: A clock that never moves (as in some tests) must not make the loop endless.
_MAX_ATTEMPTS = 100
_MESSAGE_LIMIT = 200


class Secret:
    """Holds a token or key so that no repr, vars() dump or traceback local shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, setting: str, example: str, auth_setting: str) -> str:
    """Validate a base URL setting and return it without a trailing slash.

    The secret travels in every request, so plain http is refused except to loopback.
    """
    text = (url or "").strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"{setting} is not a valid URL: {text!r}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise ValueError(
            f"{setting} must be an absolute https:// URL such as {example} (got {text!r})"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{setting} must not contain credentials; use {auth_setting}")
    if parts.query or parts.fragment:
        raise ValueError(f"{setting} must not contain a query string or fragment")
    if scheme == "http" and not is_loopback(host):
        raise ValueError(
            f"{setting} must use https; plain http is only allowed for loopback hosts "
            f"(127.0.0.0/8, ::1, localhost), got http://{host}"
        )
    return text.rstrip("/")


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace so the message fits on one line, and bound its length."""
    return " ".join(text.split())[:limit]


def error_message(response: httpx.Response) -> str:
    """The service's explanation from a JSON error body, else the start of the body text.

    Understands ``{"error": {"message": …}}`` (OpenAI, Pelanor), ``{"error": "…"}``,
    ``{"message": …}`` and ``{"detail": …}``.
    """
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    candidate: object = None
    if isinstance(body, dict):
        error = body.get("error")
        candidate = error.get("message") if isinstance(error, dict) else error
        for key in ("message", "detail"):
            if candidate is None:
                candidate = body.get(key)
    if candidate is not None:
        text = candidate if isinstance(candidate, str) else json.dumps(candidate)
        if message := one_line(text, 500):
            return message
    message = one_line(response.text, _MESSAGE_LIMIT)
    return message or response.reason_phrase or "(empty response body)"


def retry_after_seconds(value: str | None) -> float | None:
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


def is_retryable(status: int) -> bool:
    """408, 429 and 5xx are worth retrying; any other status is the service's final word."""
    return status in _RETRYABLE_STATUS or 500 <= status < 600


class Refused(Exception):
    """A final answer (a non-retryable status): ``message`` is the service's, scrubbed."""

    def __init__(self, status: int, message: str, attempts: int) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.attempts = attempts


class GaveUp(Exception):
    """The retry budget ran out; ``str()`` says what was tried and the last error."""

    def __init__(self, text: str, status: int | None, attempts: int) -> None:
        super().__init__(text)
        self.status = status
        self.attempts = attempts


@dataclass
class RetryPolicy:
    """How long and how often to retry; the callables are injectable for tests."""

    max_retry_seconds: float
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = _random.random
    clock: Callable[[], float] = time.monotonic
    scrub: Callable[[str], str] = field(default=lambda text: text)

    def send(self, what: str, request: Callable[[], httpx.Response]) -> tuple[httpx.Response, int]:
        """Send until a 2xx (returned with the number of attempts), a final refusal
        (:class:`Refused`) or the end of the budget (:class:`GaveUp`). ``what`` names the
        request in messages, e.g. "Pelanor upload of 2025-10"; it holds no secret."""
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            status: int | None = None
            try:
                response = request()
            except httpx.TimeoutException as exc:
                last_error = f"timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last_error = self.scrub(f"connection error ({type(exc).__name__}: {exc})")
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response, attempt
                message = self.scrub(error_message(response))
                if not is_retryable(status):
                    logger.warning("%s: attempt %d, HTTP %d, not retrying", what, attempt, status)
                    raise Refused(status, message, attempt)
                last_error = f"HTTP {status}: {message}"
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))

            backoff = min(_BACKOFF_CAP, _BACKOFF_BASE * _BACKOFF_FACTOR ** (attempt - 1))
            delay = self.random() * backoff  # full jitter
            if retry_after is not None:
                delay = max(retry_after, delay)
            elapsed = self.clock() - started
            if elapsed + delay > self.max_retry_seconds or attempt >= _MAX_ATTEMPTS:
                logger.warning(
                    "%s: attempt %d, status %s, giving up after %.1fs",
                    what,
                    attempt,
                    status if status is not None else "none",
                    elapsed,
                )
                noun = "attempt" if attempt == 1 else "attempts"
                wait = f" (it asked to wait {retry_after:.0f}s more)" if retry_after else ""
                raise GaveUp(
                    f"{what} failed after {attempt} {noun} over {elapsed:.0f}s{wait}: "
                    f"last error {last_error}",
                    status,
                    attempt,
                )
            logger.warning(
                "%s: attempt %d, status %s (%s), retrying in %.2fs",
                what,
                attempt,
                status if status is not None else "none",
                last_error,
                delay,
            )
            self.sleep(delay)


class BearerClient:
    """An httpx client for a service that takes a bearer secret: the secret is checked,
    sent only in the Authorization header built per request, never followed through a
    redirect, and scrubbed from any text a server sends back."""

    def __init__(
        self,
        *,
        secret: str,
        setting: str,
        request_timeout: float,
        max_retry_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not secret:
            raise ValueError(f"{setting} is required")
        if not (secret.isascii() and secret.isprintable()) or any(c.isspace() for c in secret):
            # Checked here because httpx would echo an invalid header value in its error.
            raise ValueError(f"{setting} contains whitespace or non-printable characters")
        if request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        if max_retry_seconds < 0:
            raise ValueError("max_retry_seconds must not be negative")
        self._secret = Secret(secret)
        self._retries = RetryPolicy(max_retry_seconds, sleep, random, clock, self._scrub)
        self._http = httpx.Client(
            timeout=httpx.Timeout(request_timeout),
            transport=transport,
            follow_redirects=False,  # never resend the secret somewhere else
        )

    def __enter__(self) -> Self:
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

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._secret.reveal()}", "Accept": "application/json"}

    def _scrub(self, text: str) -> str:
        """Remove the secret from text that came from elsewhere (a server could echo it)."""
        return text.replace(self._secret.reveal(), "***")
