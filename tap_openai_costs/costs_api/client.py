"""The OpenAI organization Costs API client: daily cost buckets and project names.

Rules:

- Amounts never pass through a float: JSON is decoded with exact decimals.
- Pagination follows ``has_more``/``next_page`` as the API really behaves: short pages are
  followed, and a ``next_page`` cursor the API refuses (HTTP 400 "The page token is
  invalid", which the live API answers to cursors it issued itself) is not a failure: the
  client knows which days it has, and asks again from the first day it lacks, without a
  cursor. It gives up only after :data:`PAGE_TOKEN_REFUSALS` refusals in a row that bring
  no new day, naming that day; a refusal once every day has arrived (a last page that
  still says ``has_more``) ends the range normally.
- Array parameters are encoded as OpenAI's official Python SDK encodes them.
- The admin key is kept out of every exception text, log line and ``repr``.
- A page is read up to :data:`ANSWER_LIMIT` (256 MiB, far above the largest day seen):
  beyond it the answer is an error, never read whole.
"""

from __future__ import annotations

import json
import logging
import random as _random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from openai_costs.export import (
    DAY_SECONDS,
    day_of,
    format_decimal,
)
from openai_costs.lazy_import import lazy_module
from openai_costs.safe_http import (
    BearerClient,
    ServiceError,
    answer_cut,
    check_base_url,
    describe_size,
    one_line,
)
from tap_openai_costs.costs_api.spec import (
    COSTS_GROUP_BY,
    COSTS_PAGE_LIMIT,
    COSTS_PATH,
    DEFAULT_BASE_URL,
    PAGE_OBJECT,
    PROJECTS_PAGE_LIMIT,
    PROJECTS_PATH,
)

__all__ = [
    "PAGE_TOKEN_REFUSALS",
    "RETRY_ADVICE",
    "OpenAIAPIError",
    "OpenAICostsClient",
    "check_api_base_url",
    "describe_span",
    "object_problem",
    "show_value",
]

#: How much of one answer is read: a day of a large organization is tens of MB of JSON.
ANSWER_LIMIT: Final = 256 << 20
#: Refusals of a next_page cursor in a row, with no new day in between, before giving up.
PAGE_TOKEN_REFUSALS: Final = 3

logger = logging.getLogger(__name__)

_Param = tuple[str, str | int | float | bool | None]

# Anything that looks like an OpenAI key (full, or masked as OpenAI echoes it) in server text.
_KEY_LIKE: Final = re.compile(r"sk-[A-Za-z0-9_*\-]{4,}")
_ADMIN_KEY_HINT: Final = (
    "the Costs API needs an organization admin key (sk-admin-...), created under "
    "Organization settings > Admin keys"
)
#: What a user can do about a response that breaks the API's published shape.
RETRY_ADVICE: Final = (
    "nothing was sealed; run the tap again later, or use the dashboard's Cost data export "
    "for this month (source files)"
)

if TYPE_CHECKING:
    import httpx
else:  # loaded at first use (openai_costs.lazy_import)
    httpx = lazy_module("httpx")


class OpenAIAPIError(ServiceError):
    """The Costs API could not be read; str(exc) is one line safe to show (never the key)."""


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


def array_param(name: str, values: Iterable[str]) -> list[_Param]:
    """An array query parameter as OpenAI's own Python SDK sends it: ``name[]=a&name[]=b``.

    Checked in openai/openai-python (e43b422, 2026-08-21): src/openai/_client.py gives
    ``OpenAI`` and ``AsyncOpenAI`` a ``qs`` property returning
    ``Querystring(array_format="brackets")``, and src/openai/_qs.py's ``_stringify_item``
    turns a list under "brackets" into one ``(key + "[]", item)`` pair per item, encoded
    with ``urllib.parse.urlencode`` (so on the wire ``group_by%5B%5D=line_item``; httpx
    encodes these pairs to the same bytes). ``usage.costs()`` passes ``group_by``,
    ``project_ids`` and ``api_key_ids`` through it.
    """
    return [(f"{name}[]", value) for value in values]


class OpenAICostsClient(BearerClient):
    """Reads the organization Costs API and project names, with bounded jittered retries."""

    def __init__(
        self,
        *,
        admin_api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        request_timeout: float,
        max_retry_seconds: float,
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
            answer_limit=ANSWER_LIMIT,
            address_setting="api_base_url",
        )
        self._base_url = check_api_base_url(base_url)

    def __repr__(self) -> str:
        return f"OpenAICostsClient(base_url={self._base_url!r})"

    @property
    def costs_url(self) -> str:
        """The Costs API endpoint read (no secret in it): what a month read from it names
        as its source."""
        return self._base_url + COSTS_PATH

    def cost_buckets(
        self,
        start_time: int,
        end_time: int,
        *,
        group_by: Sequence[str] = COSTS_GROUP_BY,
        project_ids: Sequence[str] = (),
        limit: int = COSTS_PAGE_LIMIT,
    ) -> Iterator[dict[str, Any]]:
        """Yield daily buckets in [start_time, end_time), page after page, in API order.

        Follows ``has_more``/``next_page`` whatever a page holds (a page may hold fewer
        buckets than ``limit``, even none). Each page must be the documented ``page``
        object; the buckets are checked by the caller
        (:mod:`tap_openai_costs.costs_api.rendering`). JSON numbers arrive as exact
        :class:`~decimal.Decimal` or ``int`` (never a float); strings stay strings.

        A refused cursor is answered by a new request from the first day not yet
        received (see the module's rules): no day is asked for twice, so none comes twice.
        """
        if end_time <= start_time:
            raise ValueError(f"end_time {end_time} must be after start_time {start_time}")
        span = describe_span(start_time, end_time)
        request_start = start_time
        #: The first day not yet received (Unix seconds).
        wanted = start_time
        page: str | None = None
        seen: set[str] = set()
        number = refusals = 0
        while True:
            number += 1
            params: list[_Param] = [
                ("start_time", request_start),
                ("end_time", end_time),
                ("bucket_width", "1d"),
                *array_param("group_by", group_by),
                *array_param("project_ids", project_ids),
                ("limit", limit),
            ]
            if page is not None:
                params.append(("page", page))
            try:
                body = self._get_json(COSTS_PATH, params)
            except OpenAIAPIError as error:
                if page is None or error.status_code != 400:
                    raise
                reason = str(error).partition(": ")[2] or str(error)
                if wanted >= end_time:
                    logger.info(
                        "OpenAI costs %s: every day has arrived; OpenAI refused the next_page "
                        "cursor of the last page (HTTP 400: %s), so the range is complete",
                        span,
                        reason,
                    )
                    return
                refusals += 1
                after = (
                    f"after the bucket for {day_of(wanted - DAY_SECONDS)}"
                    if wanted > start_time
                    else "before any bucket"
                )
                if refusals >= PAGE_TOKEN_REFUSALS:
                    raise OpenAIAPIError(
                        f"OpenAI costs {span}: OpenAI refused its own next_page cursor "
                        f"{refusals} times in a row without sending {day_of(wanted)} "
                        f"(HTTP 400: {reason}); {RETRY_ADVICE}",
                        status_code=400,
                    ) from None
                logger.warning(
                    "OpenAI costs %s: OpenAI refused its own next_page cursor %s (HTTP 400: "
                    "%s); asking again from %s, without a cursor (refusal %d of %d)",
                    span,
                    after,
                    reason,
                    day_of(wanted),
                    refusals,
                    PAGE_TOKEN_REFUSALS,
                )
                request_start, page = wanted, None
                seen.clear()  # a new request: its cursors may repeat the earlier one's
                continue
            data, has_more, cursor = _costs_page(body, span, number)
            del body
            logger.info("OpenAI costs %s: page %d, %d bucket(s)", span, number, len(data))
            data.reverse()
            while data:
                # Popped, and let go once written: no day is still held while the next
                # page is read and parsed.
                bucket = data.pop()
                start = bucket.get("start_time") if isinstance(bucket, dict) else None
                if isinstance(start, int) and not isinstance(start, bool) and start >= wanted:
                    wanted = start + DAY_SECONDS
                    refusals = 0
                yield bucket
                del bucket
            if not has_more:
                return
            if cursor is None:
                raise OpenAIAPIError(
                    f"OpenAI costs {span}: page {number} says more pages follow (has_more) "
                    f"but gives no next_page cursor; {RETRY_ADVICE}"
                )
            if cursor in seen:
                raise OpenAIAPIError(
                    f"OpenAI costs {span}: page {number} repeats an earlier next_page cursor; "
                    f"stopped to avoid a loop; {RETRY_ADVICE}"
                )
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
            data = body.get("data")
            if not isinstance(data, list):
                raise OpenAIAPIError(f"OpenAI GET {PROJECTS_PATH} answered without a data list")
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
        response, _ = self.send_or_raise(
            f"OpenAI GET {path}",
            lambda: self._send(path, params),
            OpenAIAPIError,
            lambda status, message: _rejection_text(path, status, message),
        )
        return self._parse(path, response)

    def _send(self, path: str, params: list[_Param]) -> httpx.Response:
        """One GET; the Authorization header is built here and never stored or logged."""
        return self._http.get(self._base_url + path, params=params, headers=self._auth_headers())

    def _parse(self, path: str, response: httpx.Response) -> dict[str, Any]:
        """Decode JSON with exact decimals; a non-object body is not a page of this API."""

        def refuse_constant(name: str) -> None:
            raise OpenAIAPIError(
                f"OpenAI GET {path} answered with {name}, which is not a JSON number"
            )

        if answer_cut(response):
            raise OpenAIAPIError(
                f"OpenAI GET {path} answered HTTP {response.status_code} with more than "
                f"{describe_size(self.answer_limit)}, more than any page of this API; "
                f"{RETRY_ADVICE}",
                status_code=response.status_code,
            )
        try:
            body = json.loads(response.content, parse_float=Decimal, parse_constant=refuse_constant)
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


def describe_span(start_time: int, end_time: int) -> str:
    """``from 2025-10-01 to 2025-10-31``: a request's days, for messages."""
    first, last = day_of(start_time), day_of(end_time - 1)
    return f"for {first}" if first == last else f"from {first} to {last}"


def _costs_page(body: dict[str, Any], span: str, number: int) -> tuple[list[Any], bool, str | None]:
    """A costs page's buckets, has_more and next_page, as the spec's UsageResponse has them."""
    where = f"OpenAI costs {span}: page {number}"
    if problem := object_problem(body, PAGE_OBJECT):
        raise OpenAIAPIError(f"{where} {problem}; {RETRY_ADVICE}")
    data = body.get("data")
    if not isinstance(data, list):
        raise OpenAIAPIError(f"{where} has no data list; {RETRY_ADVICE}")
    has_more = body.get("has_more")
    if not isinstance(has_more, bool):
        raise OpenAIAPIError(
            f"{where} has has_more {show_value(has_more)}, expected true or false; {RETRY_ADVICE}"
        )
    cursor = body.get("next_page")
    if cursor is not None and not isinstance(cursor, str):
        raise OpenAIAPIError(f"{where} has a next_page that is not text; {RETRY_ADVICE}")
    return data, has_more, cursor or None


def _rejection_text(path: str, status: int, message: str) -> str:
    """One line for a refused request; a bad key gets the hint about admin keys."""
    message = message.removesuffix(".")
    if 300 <= status < 400:
        return f"OpenAI GET {path} failed: HTTP {status}, {message}; check api_base_url"
    if status in (401, 403):
        return f"OpenAI rejected the admin key (HTTP {status}): {message}; {_ADMIN_KEY_HINT}"
    return f"OpenAI refused GET {path} (HTTP {status}): {message}"


def object_problem(mapping: dict[str, Any], expected: str) -> str | None:
    """What is wrong with a spec object's ``object`` field, if anything."""
    if "object" not in mapping:
        return f"has no object field (expected {expected!r})"
    if mapping["object"] != expected:
        return f"has object {show_value(mapping['object'])}, expected {expected!r}"
    return None


def show_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, Decimal):
        return format_decimal(value)
    return one_line(repr(value), 60)
