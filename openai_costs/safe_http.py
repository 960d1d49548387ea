"""What both plugins' HTTP clients need: secrets kept out of output, and bounded retries.

The tap's OpenAI client and the target's Pelanor client both send a bearer secret, so both
refuse plain http except to loopback, never show the secret (not in a repr, an error or a
log line, even when a server echoes it), and retry the same transient failures the same
way: 408, 429, 5xx, timeouts and dropped connections, with exponential backoff and full
jitter, honouring ``Retry-After``, within a bounded total time; the policy's outcomes
become each client's own error in one place (:meth:`BearerClient.send_or_raise`).

Rules:

- Text a server sends back is scrubbed **before** it is shortened, so a cut can never
  leave part of a secret behind; scrubbing covers the secret, each of its ``:``-separated
  parts (Pelanor tokens are ``<token_id>:<token_secret>``) and their URL-encoded forms.
- ``request_timeout`` bounds each whole request (connect, send, every read of the
  answer), not each socket operation: a server that trickles a byte a second cannot hold
  a request open. The retry budget bounds the whole series of attempts, including an
  answer still arriving when it runs out.
- An answer is read up to a bound (``answer_limit``; 1 MiB unless a client needs more):
  the rest is never read, so a server sending gigabytes cannot fill the memory. The
  client sees the answer cut there (:func:`answer_cut`).
- A host name that does not resolve (the resolver says it does not exist) and a TLS
  certificate that fails verification are final (:class:`NotRetried`): retrying cannot
  change them. A resolver that does not answer (``EAI_AGAIN``) is retried, as it can.
- A redirect is never followed (the secret would go along): it is a final answer saying
  where it pointed ("redirect to <host> not followed").
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import random as _random
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus, urlsplit

from openai_costs.lazy_import import lazy_module

if TYPE_CHECKING:
    import httpx
    from typing_extensions import Self  # typing.Self needs Python 3.11

    from openai_costs.request_deadline import Deadline
else:  # loaded at first use (openai_costs.lazy_import)
    httpx = lazy_module("httpx")

UTC = timezone.utc  # datetime.UTC needs Python 3.11
logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 429})
_BACKOFF_BASE = 1.0
_BACKOFF_FACTOR = 2.0
_BACKOFF_CAP = 60.0
#: A clock that never moves (as in some tests) must not make the loop endless.
_MAX_ATTEMPTS = 100
_MESSAGE_LIMIT = 200
#: ``:``-separated parts of a secret shorter than this are not scrubbed on their own: they
#: would blank out ordinary words (the whole secret always is).
_MIN_PART = 4
#: How much of an answer a client reads unless it says otherwise.
ANSWER_LIMIT = 1 << 20
#: Marks, in ``Response.extensions``, an answer cut at the client's ``answer_limit``.
_CUT = "openai_costs.answer_cut"
#: Resolver errors that say the name does not exist (not that the resolver failed).
_NO_SUCH_HOST = frozenset(
    getattr(socket, name)
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_FAIL", "EAI_ADDRFAMILY")
    if hasattr(socket, name)
)


class ServiceError(Exception):
    """A remote service could not be used; str(exc) is one line safe to show (never the
    secret). Each client names its own subclass."""

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.attempts = attempts


class Secret:
    """Holds a token or key so that no repr, vars() dump or traceback local shows it."""

    __slots__ = ("_forms", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        self._forms = secret_forms(value)

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with every form of the secret (see :func:`secret_forms`) as ``***``."""
        return scrub_secret(text, self._forms)

    def __repr__(self) -> str:
        return "'***'"


def check_secret(value: str, setting: str) -> None:
    """Refuse a secret that cannot be sent as is; the message never shows the value.

    A trailing newline (from ``$(cat file)`` or a paste) is the usual cause; httpx would
    also echo an invalid header value in its own error.
    """
    if any(c.isspace() for c in value):
        raise ValueError(
            f"{setting} contains whitespace or a line break; set it without spaces or "
            "newlines (copy it again, or strip the file or variable it comes from)"
        )
    if not (value.isascii() and value.isprintable()):
        raise ValueError(f"{setting} contains non-ASCII or non-printable characters; copy it again")


def secret_forms(secret: str) -> list[str]:
    """Every text a secret may show up as in a server's answer, longest first: itself, its
    ``:``-separated parts, and each of those URL-encoded (both ``%XX`` cases, ``+`` for a
    space)."""
    pieces = {secret} | {part for part in secret.split(":") if len(part) >= _MIN_PART}
    forms: set[str] = set()
    for piece in pieces:
        for encoded in (piece, quote(piece, safe=""), quote(piece), quote_plus(piece)):
            forms.add(encoded)
            forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded))
    return sorted((form for form in forms if form), key=len, reverse=True)


def scrub_secret(text: str, forms: Iterable[str]) -> str:
    """``text`` with every form of a secret replaced by ``***``."""
    for form in forms:
        text = text.replace(form, "***")
    return text


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


def check_durations(request_timeout: float, max_retry_seconds: float) -> None:
    """The two time settings both clients share; one message each, saying what to set."""
    if not request_timeout > 0:
        raise ValueError(
            f"request_timeout must be a positive number of seconds (got {request_timeout:g})"
        )
    if not max_retry_seconds >= 0:
        raise ValueError(
            f"max_retry_seconds must be 0 or a positive number of seconds "
            f"(got {max_retry_seconds:g})"
        )


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace so the message fits on one line, and bound its length."""
    return " ".join(text.split())[:limit]


def _unchanged(text: str) -> str:
    return text


def error_message(response: httpx.Response, scrub: Callable[[str], str] = _unchanged) -> str:
    """The service's explanation from a JSON error body, else the start of the body text;
    scrubbed with ``scrub`` before it is shortened.

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
        if message := one_line(scrub(text), 500):
            return message
    message = one_line(scrub(response.text), _MESSAGE_LIMIT)
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


def describe_size(size: int) -> str:
    """``1 MiB``, ``256 MiB``, ``512 KiB``: a bound in a message."""
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if size >= 1 << 10 and size % (1 << 10) == 0:
        return f"{size >> 10} KiB"
    return f"{size} bytes"


def answer_cut(response: httpx.Response) -> bool:
    """Whether the answer was longer than the client reads (its text is the first part)."""
    return bool(response.extensions.get(_CUT))


def bounded_reader(limit: int) -> Callable[[httpx.Response], None]:
    """An httpx response hook that reads at most ``limit`` bytes of the answer (decoded),
    closes the connection on the rest, and marks the answer when it was cut.

    It runs before httpx reads the body itself, which then finds it read already.
    """

    def read(response: httpx.Response) -> None:
        chunks: list[bytes] = []
        size = 0
        cut = False
        try:
            for chunk in response.iter_bytes():
                if size + len(chunk) > limit:
                    chunks.append(chunk[: limit - size])
                    cut = True
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            response.close()  # the rest is never read: the connection is dropped
        response._content = b"".join(chunks)
        if cut:
            response.extensions = {**response.extensions, _CUT: True}

    return read


def redirect_text(response: httpx.Response) -> str:
    """What a 3xx says, for a message: where it pointed (it is never followed)."""
    target: httpx.URL | None = None
    if response.next_request is not None:
        target = response.next_request.url
    elif location := response.headers.get("Location", "").strip():
        try:
            target = response.request.url.join(location)
        except (httpx.InvalidURL, RuntimeError):
            target = None
    if target is None or not target.host:
        return "redirect without a usable Location, not followed"
    return f"redirect to {target.host} not followed"


def final_connection_problem(error: httpx.TransportError) -> str | None:
    """Why a request can never succeed as it is (a name that does not exist, a certificate
    that fails verification), or None when retrying may help."""
    host = error.request.url.host if _has_request(error) else "the host"
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or cause.reason or "certificate verify failed"
            return f"the TLS certificate of {host} failed verification ({detail})"
        if isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_HOST:
            return f"the host name {host} does not resolve ({cause.strerror})"
        cause = cause.__cause__ or cause.__context__
    return None


def _has_request(error: httpx.TransportError) -> bool:
    try:
        _ = error.request
    except RuntimeError:  # httpx raises when the error was made without one
        return False
    return True


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


class NotRetried(GaveUp):
    """A connection problem retrying cannot change (see :func:`final_connection_problem`);
    ``str()`` says what it was and which setting to check."""


def _seconds(value: float) -> str:
    return f"{value:g}s"


@dataclass
class RetryPolicy:
    """How long and how often to retry; the callables are injectable for tests.

    The whole series ends within ``max(max_retry_seconds, request_timeout)``: the first
    attempt always gets its full ``request_timeout`` (a budget of 0 means one attempt), and
    a later attempt still running when the budget runs out is cut off there (through
    ``deadline``, which the client's connections keep to).
    """

    max_retry_seconds: float
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = _random.random
    clock: Callable[[], float] = time.monotonic
    scrub: Callable[[str], str] = field(default=_unchanged)
    request_timeout: float | None = None
    deadline: Deadline | None = None
    #: The setting(s) that decide the address, named when it cannot be reached at all.
    address_setting: str = "the URL setting"

    def send(self, what: str, request: Callable[[], httpx.Response]) -> tuple[httpx.Response, int]:
        """Send until a 2xx (returned with the number of attempts), a final refusal
        (:class:`Refused`) or the end of the budget (:class:`GaveUp`). ``what`` names the
        request in messages, e.g. "Pelanor upload of 2025-10"; it holds no secret."""
        started = self.clock()
        budget = self.max_retry_seconds
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            status: int | None = None
            limit, budget_cut = self._attempt_limit(attempt, budget - (self.clock() - started))
            if self.deadline is not None and limit is not None:
                self.deadline.start(limit)
            try:
                response = request()
            except httpx.TimeoutException:
                last_error = (
                    f"timeout: the retry budget of {_seconds(budget)} ran out during the request"
                    if budget_cut
                    else f"timeout: no complete response within {_seconds(limit or 0)}"
                )
            except httpx.TransportError as exc:
                if problem := final_connection_problem(exc):
                    logger.warning("%s: attempt %d, %s, not retrying", what, attempt, problem)
                    text = f"{what} failed: {problem}; not retried: {self._advice(problem)}"
                    raise NotRetried(self.scrub(text), None, attempt) from None
                last_error = self.scrub(f"connection error ({type(exc).__name__}: {exc})")
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response, attempt
                if 300 <= status < 400:
                    message = self.scrub(redirect_text(response))
                else:
                    message = error_message(response, self.scrub)
                if not is_retryable(status):
                    logger.warning("%s: attempt %d, HTTP %d, not retrying", what, attempt, status)
                    raise Refused(status, message, attempt)
                last_error = f"HTTP {status}: {message}"
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            finally:
                if self.deadline is not None:
                    self.deadline.clear()

            backoff = min(_BACKOFF_CAP, _BACKOFF_BASE * _BACKOFF_FACTOR ** (attempt - 1))
            delay = self.random() * backoff  # full jitter
            if retry_after is not None:
                delay = max(retry_after, delay)
            elapsed = self.clock() - started
            if elapsed + delay > budget or attempt >= _MAX_ATTEMPTS:
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

    def _advice(self, problem: str) -> str:
        if problem.startswith("the TLS certificate"):
            return (
                f"check {self.address_setting}; behind a proxy that inspects TLS, set "
                "SSL_CERT_FILE to a CA bundle that includes its certificate"
            )
        return f"check {self.address_setting} (and this machine's DNS)"

    def _attempt_limit(self, attempt: int, left: float) -> tuple[float | None, bool]:
        """How long this attempt may take, and whether the budget (not request_timeout)
        is what limits it."""
        timeout = self.request_timeout
        if attempt == 1 or (timeout is not None and timeout <= left):
            return timeout, False
        return max(left, 0.0), True


class BearerClient:
    """An httpx client for a service that takes a bearer secret: the secret is checked,
    sent only in the Authorization header built per request, never followed through a
    redirect, and scrubbed from any text a server sends back. Answers are read up to
    ``answer_limit`` bytes (see :func:`bounded_reader`)."""

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
        answer_limit: int = ANSWER_LIMIT,
        address_setting: str = "the URL setting",
    ) -> None:
        if not secret:
            raise ValueError(f"{setting} is required")
        check_secret(secret, setting)
        check_durations(request_timeout, max_retry_seconds)
        self._secret = Secret(secret)
        self.answer_limit = answer_limit
        # With the first client, not at start-up: it loads httpcore (request_deadline).
        from openai_costs.request_deadline import Deadline, keep_to_deadline

        deadline = Deadline()
        self._retries = RetryPolicy(
            max_retry_seconds,
            sleep,
            random,
            clock,
            self._scrub,
            request_timeout,
            deadline,
            address_setting,
        )
        self._http = httpx.Client(
            timeout=httpx.Timeout(request_timeout),
            transport=transport,
            follow_redirects=False,  # never resend the secret somewhere else
            event_hooks={"response": [bounded_reader(answer_limit)]},
        )
        if not keep_to_deadline(self._http, deadline) and transport is None:
            raise RuntimeError("this httpx version hides its connection pool; pin httpx 0.28")

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

    def send_or_raise(
        self,
        what: str,
        request: Callable[[], httpx.Response],
        error_type: type[ServiceError],
        rejection_text: Callable[[int, str], str],
        *,
        rejected_type: type[ServiceError] | None = None,
    ) -> tuple[httpx.Response, int]:
        """Send through the retry policy (:meth:`RetryPolicy.send`); its outcomes become
        the client's own error, one line safe to show: a refusal (:class:`Refused`) as
        ``rejected_type`` (default ``error_type``) with ``rejection_text(status, message)``,
        the end of the budget or a problem not retried (:class:`GaveUp`) as ``error_type``
        with the policy's text."""
        try:
            return self._retries.send(what, request)
        except Refused as refused:
            raise (rejected_type or error_type)(
                rejection_text(refused.status, refused.message),
                status_code=refused.status,
                attempts=refused.attempts,
            ) from None
        except GaveUp as gave_up:
            raise error_type(
                str(gave_up), status_code=gave_up.status, attempts=gave_up.attempts
            ) from None

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._secret.reveal()}", "Accept": "application/json"}

    def _scrub(self, text: str) -> str:
        """Remove the secret, its parts and their URL-encoded forms from text that came
        from elsewhere (a server could echo it)."""
        return self._secret.scrub(text)
