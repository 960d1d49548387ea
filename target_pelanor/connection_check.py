"""What ``meltano config test target-pelanor`` checks, without uploading anything.

Meltano tests a loader by sending it a stream of its own, ``meltano_test_stream`` (one
SCHEMA, one RECORD, one STATE), and passes it when the loader exits 0 and no line it
writes contains "error" or "exception". target-pelanor takes that stream, alone, as a
request to check what it can without touching a month: its settings (checked at start, as
for every run), that Pelanor's address resolves and answers (over TLS for https), and,
where the user configures ``check_path`` (Pelanor publishes no such endpoint, so there is
no default), one authenticated GET request there. Each check says what it found in one
line; a failed one stops the run with one line saying what to fix. No state is confirmed.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import quote

from openai_costs.lazy_import import lazy_module
from openai_costs.safe_http import final_connection_problem, is_loopback
from target_pelanor.client import PelanorClient, PelanorError

if TYPE_CHECKING:
    import httpx
else:  # loaded at first use (openai_costs.lazy_import)
    httpx = lazy_module("httpx")

__all__ = [
    "CHECK_PLACEHOLDERS",
    "MELTANO_TEST_STREAM",
    "CheckFailed",
    "CheckedSettings",
    "check_path_problems",
    "reachability",
    "render_check_path",
    "run_checks",
]

#: The stream Meltano's ``config test`` sends a loader.
MELTANO_TEST_STREAM: Final = "meltano_test_stream"
#: What check_path may name: a check is about the integration, not a month.
CHECK_PLACEHOLDERS: Final = ("organization_id", "integration_id")


class CheckFailed(Exception):
    """A check did not pass; ``str()`` is the one line for the user."""


class CheckedSettings(Protocol):
    """What the checks read of the target's settings (``TargetSettings``)."""

    @property
    def organization_id(self) -> str: ...
    @property
    def integration_id(self) -> str | None: ...
    @property
    def api_token(self) -> str | None: ...
    @property
    def check_path(self) -> str | None: ...
    @property
    def request_timeout(self) -> float: ...
    def base_url(self) -> str: ...


def check_path_problems(path: object) -> list[str]:
    """What is wrong with the ``check_path`` setting's value (unset is fine: no
    authenticated check)."""
    if path is None or path == "":
        return []
    example = "such as /v1/integrations/openai/{integration_id}"
    if not isinstance(path, str) or not path.startswith("/"):
        return [f"check_path must be a path starting with '/', {example} (got {path!r})"]
    if not path.isprintable() or any(c in path for c in "?#\\ "):
        return [
            "check_path must be a plain path without spaces, control characters, '?', '#' "
            f"or backslashes, {example} (got {path!r})"
        ]
    if ".." in path.split("/"):
        return [f"check_path must not contain '..' segments (got {path!r})"]
    try:
        used = {field for _, field, spec, _ in string.Formatter().parse(path) if field is not None}
    except ValueError:
        return [f"check_path has an unmatched brace (got {path!r}); {example}"]
    unknown = sorted(used - set(CHECK_PLACEHOLDERS))
    if unknown:
        allowed = ", ".join("{" + name + "}" for name in CHECK_PLACEHOLDERS)
        return [f"check_path may use only {allowed} (got {', '.join(repr(u) for u in unknown)})"]
    return []


def render_check_path(template: str, values: Mapping[str, str | None]) -> str:
    """The path, each placeholder's value (:data:`CHECK_PLACEHOLDERS`) URL-encoded as one
    path segment."""
    return template.format(
        **{name: quote(str(values.get(name) or ""), safe="") for name in CHECK_PLACEHOLDERS}
    )


def reachability(
    base_url: str, timeout: float, transport: httpx.BaseTransport | None = None
) -> str:
    """One unauthenticated GET of the base URL (no token is sent): any HTTP answer shows
    the name resolves and the server answers, over verified TLS for https. Returns the
    line to show; raises :class:`CheckFailed`."""
    url = httpx.URL(base_url)
    with httpx.Client(timeout=timeout, follow_redirects=False, transport=transport) as client:
        try:
            with client.stream("GET", url.copy_with(path=url.path or "/")) as response:
                status = response.status_code
        except httpx.TimeoutException:
            raise CheckFailed(
                f"Pelanor at {base_url} did not answer within request_timeout ({timeout:g}s); "
                "check api_url or region, and this machine's network"
            ) from None
        except httpx.TransportError as failure:
            problem = final_connection_problem(failure) or (
                f"could not connect to {url.host} ({type(failure).__name__})"
            )
            raise CheckFailed(
                f"Pelanor at {base_url} cannot be reached: {problem}; check api_url or region"
            ) from None
    how = "over TLS" if url.scheme == "https" else "over plain http"
    if url.scheme == "http" and is_loopback(url.host):
        how += " (a local sandbox)"
    return f"Pelanor at {base_url} answered {how} (HTTP {status} to a request without the token)"


def run_checks(
    settings: CheckedSettings,
    logger: logging.Logger,
    client: Callable[[], PelanorClient],
) -> None:
    """The checks, once the settings have passed at start: whether Pelanor answers and,
    with check_path, whether it takes the token and the integration; one line each.
    ``client`` builds the upload client (only for check_path). Raises
    :class:`CheckFailed`."""
    logger.info("Checking target-pelanor without uploading: the settings are usable")
    try:
        base_url = settings.base_url()
    except ValueError as problem:  # a dry run's settings let an unusable URL through
        raise CheckFailed(str(problem)) from None
    logger.info(reachability(base_url, settings.request_timeout))
    template = settings.check_path
    if not template:
        logger.info(
            "check_path is not set, so no authenticated request was sent: the token and "
            "integration_id are first tried by an upload (see docs/settings.md)"
        )
        return
    if not (settings.api_token is not None and settings.integration_id):
        logger.info("check_path is set, but a dry run without a token sends none")
        return
    values = {
        "organization_id": settings.organization_id,
        "integration_id": settings.integration_id,
    }
    path = render_check_path(template, values)
    try:
        status = client().check(path)
    except PelanorError as refused:
        raise CheckFailed(str(refused)) from None
    logger.info(
        "Pelanor answered GET %s%s with HTTP %d: it takes the token for integration %s",
        base_url,
        path,
        status,
        settings.integration_id,
    )
