"""OpenAI's Costs API as a second source: the same bytes the dashboard's cost export holds.

The rest of the tap validates and emits export files, so this module only fetches daily
cost buckets (grouped by line item and project) plus project names, and renders them as
the current-layout CSV the dashboard would have written. Amounts never pass through a
float: the API sends them as JSON numbers or strings and both are kept as exact decimal
text. The admin key is kept out of every exception text, log line and ``repr``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import random as _random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import httpx

from openai_costs.export import (
    CURRENT_COLUMNS,
    DAY_SECONDS,
    day_of,
    format_decimal,
    iso_of,
    unix_of,
)
from openai_costs.safe_http import BearerClient, GaveUp, Refused, check_base_url, one_line

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenAIAPIError",
    "OpenAICostsClient",
    "amount_text",
    "check_api_base_url",
    "render_export",
]

DEFAULT_BASE_URL = "https://api.openai.com"
COSTS_PATH: Final = "/v1/organization/costs"
PROJECTS_PATH: Final = "/v1/organization/projects"
COSTS_PAGE_LIMIT: Final = 180  # the API's maximum buckets per page
PROJECTS_PAGE_LIMIT: Final = 100

logger = logging.getLogger("tap_openai_costs.costs_api")

_Param = tuple[str, str | int | float | bool | None]

# Anything that looks like an OpenAI key (full, or masked as OpenAI echoes it) in server text.
_KEY_LIKE: Final = re.compile(r"sk-[A-Za-z0-9_*\-]{4,}")
# The decimal text the export (and the tap's validation) accepts, kept verbatim.
_DECIMAL_TEXT: Final = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_ADMIN_KEY_HINT: Final = (
    "the Costs API needs an organization admin key (sk-admin-...), created under "
    "Organization settings > Admin keys"
)


class OpenAIAPIError(Exception):
    """The Costs API could not be read; str(exc) is one line safe to show (never the key)."""

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.attempts = attempts


def check_api_base_url(url: str) -> str:
    """Validate ``api_base_url`` and return it without a trailing slash."""
    base = check_base_url(
        url,
        setting="api_base_url",
        example=DEFAULT_BASE_URL,
        auth_setting="admin_api_key",
    )
    if base.endswith("/v1"):
        raise ValueError(
            f"api_base_url must not end with /v1 (paths such as {COSTS_PATH} are added to "
            f"it); use e.g. {DEFAULT_BASE_URL}"
        )
    return base


class OpenAICostsClient(BearerClient):
    """Reads the organization Costs API and project names, with bounded jittered retries."""

    def __init__(
        self,
        *,
        admin_api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        request_timeout: float = 60.0,
        max_retry_seconds: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            secret=admin_api_key,
            setting="admin_api_key",
            request_timeout=request_timeout,
            max_retry_seconds=max_retry_seconds,
            sleep=sleep,
            random=random,
            clock=clock,
            transport=transport,
        )
        self._base_url = check_api_base_url(base_url)

    def __repr__(self) -> str:
        return f"OpenAICostsClient(base_url={self._base_url!r})"

    def cost_buckets(self, start_time: int, end_time: int) -> Iterator[dict[str, Any]]:
        """Yield daily buckets in [start_time, end_time), page after page, in API order.

        ``amount.value`` stays as the API sent it when that is a string, or becomes an
        exact :class:`~decimal.Decimal` when it is a JSON number (never a float).
        """
        if end_time <= start_time:
            raise ValueError(f"end_time {end_time} must be after start_time {start_time}")
        base: list[_Param] = [
            ("start_time", start_time),
            ("end_time", end_time),
            ("bucket_width", "1d"),
            ("group_by", "line_item"),
            ("group_by", "project_id"),
            ("limit", COSTS_PAGE_LIMIT),
        ]
        page: str | None = None
        seen: set[str] = set()
        number = 0
        while True:
            number += 1
            params = [*base, ("page", page)] if page is not None else base
            body = self._get_json(COSTS_PATH, params)
            data = _page_data(body, COSTS_PATH)
            logger.info(
                "OpenAI costs %s to %s: page %d, %d bucket(s)",
                iso_of(start_time),
                iso_of(end_time),
                number,
                len(data),
            )
            for bucket in data:
                if not isinstance(bucket, dict):
                    raise OpenAIAPIError(
                        f"OpenAI returned a cost bucket that is not an object: "
                        f"{one_line(repr(bucket), 80)}"
                    )
                yield bucket
            if body.get("has_more") is not True:
                return
            cursor = body.get("next_page")
            if not isinstance(cursor, str) or not cursor:
                raise OpenAIAPIError(
                    "OpenAI said more cost pages follow (has_more) but gave no next_page cursor"
                )
            if cursor in seen:
                raise OpenAIAPIError("OpenAI repeated a next_page cursor; stopping to avoid a loop")
            seen.add(cursor)
            page = cursor

    def project_names(self) -> dict[str, str]:
        """Map every project id (archived ones too: old costs name them) to its name."""
        names: dict[str, str] = {}
        after: str | None = None
        while True:
            params: list[_Param] = [
                ("include_archived", "true"),
                ("limit", PROJECTS_PAGE_LIMIT),
            ]
            if after is not None:
                params.append(("after", after))
            body = self._get_json(PROJECTS_PATH, params)
            data = _page_data(body, PROJECTS_PATH)
            for item in data:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    name = item.get("name")
                    names[item["id"]] = name if isinstance(name, str) else ""
            if body.get("has_more") is not True:
                logger.info("OpenAI projects: %d", len(names))
                return names
            last = data[-1] if data else None
            cursor = last.get("id") if isinstance(last, dict) else body.get("last_id")
            if not isinstance(cursor, str) or not cursor or cursor == after:
                raise OpenAIAPIError(
                    "OpenAI said more project pages follow (has_more) but gave no new last id"
                )
            after = cursor

    def _get_json(self, path: str, params: list[_Param]) -> dict[str, Any]:
        """One GET, retried on 408/429/5xx/timeouts/transport errors within the budget."""
        try:
            response, _ = self._retries.send(f"OpenAI GET {path}", lambda: self._send(path, params))
        except Refused as refused:
            raise OpenAIAPIError(
                _rejection_text(path, refused.status, refused.message),
                status_code=refused.status,
                attempts=refused.attempts,
            ) from None
        except GaveUp as gave_up:
            raise OpenAIAPIError(
                str(gave_up), status_code=gave_up.status, attempts=gave_up.attempts
            ) from None
        return self._parse(path, response)

    def _send(self, path: str, params: list[_Param]) -> httpx.Response:
        """One GET; the Authorization header is built here and never stored or logged."""
        return self._http.get(self._base_url + path, params=params, headers=self._auth_headers())

    def _parse(self, path: str, response: httpx.Response) -> dict[str, Any]:
        """Decode JSON with exact decimals; a non-object body is not a page of this API."""
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise OpenAIAPIError(
                f"OpenAI GET {path} answered HTTP {response.status_code} with a body that is "
                f"not JSON: {one_line(self._scrub(response.text), 120)!r}",
                status_code=response.status_code,
            ) from None
        if not isinstance(body, dict):
            raise OpenAIAPIError(f"OpenAI GET {path} answered with JSON that is not an object")
        return body

    def _scrub(self, text: str) -> str:
        """Also remove anything key-like: OpenAI echoes a masked key in its 401 message."""
        return super()._scrub(_KEY_LIKE.sub("sk-***", text))


def _page_data(body: dict[str, Any], path: str) -> list[Any]:
    data = body.get("data")
    if not isinstance(data, list):
        raise OpenAIAPIError(f"OpenAI GET {path} answered without a data list")
    return data


def _rejection_text(path: str, status: int, message: str) -> str:
    """One line for a refused request; a bad key gets the hint about admin keys."""
    message = message.removesuffix(".")
    if status in (401, 403):
        return f"OpenAI rejected the admin key (HTTP {status}): {message}; {_ADMIN_KEY_HINT}"
    return f"OpenAI refused GET {path} (HTTP {status}): {message}"


def render_export(
    *,
    days: list[date],
    buckets: Iterable[dict[str, Any]],
    project_names: Mapping[str, str],
    organization_id: str,
    organization_name: str,
) -> bytes:
    """Write ``days`` as the dashboard's current-layout cost export would hold them.

    One row per API result in API order, grouped by day in ``days`` order; a day without
    any result gets the idle row the dashboard writes. Buckets for other days are ignored.
    """
    if not organization_id:
        raise ValueError("organization_id is required to render a cost export")
    if any(later <= earlier for earlier, later in itertools.pairwise(days)):
        raise ValueError("days must be in increasing order without repeats, as exports are")
    wanted = set(days)
    results: dict[date, list[Any]] = {day: [] for day in days}
    for bucket in buckets:
        day = _bucket_day(bucket, wanted)
        if day is None:
            continue
        items = bucket.get("results")
        if items is None:
            continue
        if not isinstance(items, list):
            raise OpenAIAPIError(f"OpenAI cost bucket for {day} has results that are not a list")
        results[day].extend(items)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CURRENT_COLUMNS)
    unknown: set[str] = set()
    for day in days:
        start = unix_of(day)
        times = {
            "start_time": str(start),
            "end_time": str(start + DAY_SECONDS),
            "start_time_iso": iso_of(start),
            "end_time_iso": iso_of(start + DAY_SECONDS),
        }
        if not results[day]:
            writer.writerow([times.get(column, "") for column in CURRENT_COLUMNS])
            continue
        for result in results[day]:
            values = _cost_values(day, result, project_names, unknown)
            values.update(times)
            values["organization_id"] = organization_id
            values["organization_name"] = organization_name
            writer.writerow([values.get(column, "") for column in CURRENT_COLUMNS])
    if unknown:
        logger.warning(
            "OpenAI costs name %d project id(s) the projects list lacks; project_name left "
            "empty for: %s",
            len(unknown),
            ", ".join(sorted(unknown)),
        )
    return buffer.getvalue().encode("utf-8")


def _bucket_day(bucket: Any, wanted: set[date]) -> date | None:
    """The UTC day a bucket covers, None when not wanted; a partial day is refused."""
    start = bucket.get("start_time") if isinstance(bucket, Mapping) else None
    if not isinstance(start, int) or isinstance(start, bool):
        raise OpenAIAPIError(f"OpenAI returned a cost bucket without a start_time: {start!r}")
    day = day_of(start)
    if day not in wanted:
        return None
    end = bucket.get("end_time", start + DAY_SECONDS)
    if start % DAY_SECONDS or end != start + DAY_SECONDS:
        raise OpenAIAPIError(
            f"OpenAI returned a cost bucket from {start} to {end!r} that is not one whole UTC "
            "day; request 1d buckets from 00:00 UTC"
        )
    return day


def _cost_values(
    day: date, result: Any, project_names: Mapping[str, str], unknown: set[str]
) -> dict[str, str]:
    """The non-time columns of one API result, in export text."""
    if not isinstance(result, Mapping):
        raise OpenAIAPIError(f"OpenAI returned a cost result for {day} that is not an object")
    amount = result.get("amount")
    if not isinstance(amount, Mapping):
        raise OpenAIAPIError(f"OpenAI returned a cost result for {day} without an amount")
    project_id = _text(result.get("project_id"))
    name = ""
    if project_id:
        known = project_names.get(project_id)
        if known is None:
            unknown.add(project_id)
        else:
            name = known
    return {
        "amount_value": amount_text(amount.get("value"), day),
        "amount_currency": _text(amount.get("currency")),
        "line_item": _text(result.get("line_item")),
        "project_id": project_id,
        "project_name": name,
    }


def amount_text(value: object, day: date | None = None) -> str:
    """Exact decimal text of an API amount: a string is kept verbatim, a number as written.

    Floats are refused: by then the digits OpenAI sent are already lost.
    """
    where = f" for {day}" if day is not None else ""
    if isinstance(value, str):
        if _DECIMAL_TEXT.fullmatch(value):
            return value
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    elif isinstance(value, float):
        raise TypeError("amount values must be parsed as Decimal, never float (digits lost)")
    else:
        number = Decimal("NaN")
    if not number.is_finite():
        raise OpenAIAPIError(
            f"OpenAI returned a cost amount{where} that is not a decimal number: "
            f"{one_line(repr(value), 60)}"
        )
    return format_decimal(number)


def _text(value: object) -> str:
    """Null becomes the empty cell the export has; anything else its text."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
