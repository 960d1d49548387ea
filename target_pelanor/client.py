"""HTTP client that uploads one month of OpenAI cost CSV to Pelanor.

The upload contract (path, form fields, retry rules) is the one docs/pelanor-endpoint.md describes
in "The Pelanor endpoint: what is configurable, and why": Pelanor does not publish the OpenAI
upload endpoint, so the request's whole shape is configurable (built by
:mod:`target_pelanor.upload_request`) and every response is interpreted defensively.
The API token is kept out of every exception text, log line and ``repr``.
"""

from __future__ import annotations

import contextlib
import logging
import random as _random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Final

import httpx

from openai_costs.safe_http import BearerClient, GaveUp, Refused, ServiceError, check_base_url
from target_pelanor.upload_request import (
    DEFAULT_SHAPE,
    DEFAULT_UPLOAD_PATH,
    MonthValues,
    UploadShape,
    check_upload_path,
    describe,
)

__all__ = [
    "DEFAULT_UPLOAD_PATH",
    "REGION_URLS",
    "PelanorClient",
    "PelanorError",
    "PelanorRejected",
    "UploadReceipt",
    "check_upload_path",
    "resolve_base_url",
]

REGION_URLS = {"us": "https://api.pelanor.io", "eu": "https://api-eu.pelanor.io"}

logger = logging.getLogger("target_pelanor.client")

_MONTH_RE: Final = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


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
        upload_path: str | None = None,
        shape: UploadShape = DEFAULT_SHAPE,
        organization_id: str = "",
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
        if upload_path is not None:  # the path alone, as before the shape was a setting
            shape = replace(shape, path=upload_path)
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
        )
        self._base_url = base_url.strip().rstrip("/")
        self._integration_id = integration_id
        self._shape = shape
        self._organization_id = organization_id

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
        logger.info("Uploading %s to Pelanor (%d bytes)", month, size)
        try:
            response, attempts = self._retries.send(
                f"Pelanor upload of {month}", lambda: self._send(month, filename, content)
            )
        except Refused as refused:
            raise PelanorRejected(
                _rejection_text(month, refused.status, refused.message),
                status_code=refused.status,
                attempts=refused.attempts,
            ) from None
        except GaveUp as gave_up:
            raise PelanorError(
                str(gave_up), status_code=gave_up.status, attempts=gave_up.attempts
            ) from None
        receipt = UploadReceipt(_response_id(response), response.status_code, attempts)
        logger.info(
            "Pelanor accepted %s: HTTP %d, id %s, attempt %d",
            month,
            receipt.status_code,
            receipt.response_id,
            attempts,
        )
        return receipt

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
            body = stack.enter_context(content.open("rb")) if isinstance(content, Path) else content
            request = self._shape.build(self._http, self._base_url, values, body, headers)
            logger.debug("%s", self._scrub(describe(request, self._shape, values)))
            return self._http.send(request)


def _rejection_text(month: str, status: int, message: str) -> str:
    """One-line user-facing text for a refused upload, with a hint at the setting to fix."""
    text = f"Pelanor rejected the upload of {month} (HTTP {status}): {message}"
    if status in (401, 403):
        text += "; check api_token"
    elif status == 404:
        text += "; check integration_id and upload_path"
    return text


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
