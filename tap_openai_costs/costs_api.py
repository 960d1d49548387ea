"""OpenAI's Costs API as a second source: the same bytes the dashboard's cost export holds.

The rest of the tap validates and emits export files, so this module only fetches daily
cost buckets (grouped by line item and project) plus project names, and writes them as
the current-layout CSV the dashboard would have written. Rules:

- Amounts (and quantities) never pass through a float: the API sends them as JSON numbers
  or strings and both are kept as exact decimal text (:func:`decimal_text`).
- No silent zeros and nothing dropped: a day is idle only when its bucket says so with an
  empty ``results`` list. A missing bucket, a bucket without ``results``, a result without
  ``amount.value``, a null where a value belongs, an ``object`` other than the documented
  one, or a result field this module does not know is an error naming the day and the
  field (:class:`OpenAIAPIError`), and the month is not written.
- At most one day of a month is in memory: pages hold one bucket (one day) each, and the
  export is written bucket by bucket to a file, never built whole.
- The admin key is kept out of every exception text, log line and ``repr``.
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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, BinaryIO, Final

import httpx

from tap_openai_costs.cost_export import (
    AMOUNT_TEXT,
    CURRENT_COLUMNS,
    DAY_SECONDS,
    day_of,
    describe_days,
    format_decimal,
    iso_of,
    unix_of,
)
from tap_openai_costs.safe_http import BearerClient, GaveUp, Refused, check_base_url, one_line

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenAIAPIError",
    "OpenAICostsClient",
    "PageTokenRejected",
    "check_api_base_url",
    "decimal_text",
    "export_month",
    "render_export",
]

DEFAULT_BASE_URL = "https://api.openai.com"
COSTS_PATH: Final = "/v1/organization/costs"
PROJECTS_PATH: Final = "/v1/organization/projects"
#: Buckets (days) per page. The API allows 1 to 180, but a page is one JSON document,
#: read whole: one day per page is what keeps a month out of memory (a busy day is tens of
#: MB of JSON; 180 of them are not). A month costs about 31 requests.
COSTS_PAGE_LIMIT: Final = 1
PROJECTS_PAGE_LIMIT: Final = 100
#: The export's grouping: one row per day, line item and project.
COSTS_GROUP_BY: Final = ("line_item", "project_id")
#: How often a month is read again from its first page when OpenAI refuses a next_page
#: cursor it issued itself (HTTP 400 "The page token is invalid, ...").
PAGE_RESTARTS: Final = 3

#: The ``object`` values of the published spec (openai/openai-openapi, openapi.yaml:
#: UsageResponse, UsageTimeBucket, CostsResult).
PAGE_OBJECT: Final = "page"
BUCKET_OBJECT: Final = "bucket"
RESULT_OBJECT: Final = "organization.costs.result"

# A CostsResult's fields, checked against openai/openai-openapi openapi.yaml
# (components.schemas.CostsResult at f85dbe2 of 2026-08-21, whose parent 13c6a94 is "Add
# quantity_unit field to organization costs results"): object, amount {value, currency},
# line_item, project_id, api_key_id, quantity, quantity_unit. Each becomes the export
# column of the same name (amount as amount_value/amount_currency).
# user_id and api_source are not in the spec, but columns of the dashboard's export: they
# are carried too, should the API send them.
_RESULT_TEXT_FIELDS: Final = (
    "line_item",
    "project_id",
    "api_key_id",
    "quantity_unit",
    "user_id",
    "api_source",
)
# Also not in the spec: the organization column comes from the configuration, and a result
# naming another organization is refused rather than relabelled.
_RESULT_ORGANIZATION: Final = "organization_id"
_RESULT_FIELDS: Final = frozenset(
    {
        "object",
        "amount",
        "quantity",
        *_RESULT_TEXT_FIELDS,
        _RESULT_ORGANIZATION,
    }
)
_AMOUNT_FIELDS: Final = frozenset({"value", "currency"})

logger = logging.getLogger("tap_openai_costs.costs_api")

_Param = tuple[str, str | int | float | bool | None]

# Anything that looks like an OpenAI key (full, or masked as OpenAI echoes it) in server text.
_KEY_LIKE: Final = re.compile(r"sk-[A-Za-z0-9_*\-]{4,}")
_ADMIN_KEY_HINT: Final = (
    "the Costs API needs an organization admin key (sk-admin-...), created under "
    "Organization settings > Admin keys"
)
#: What a user can do about a response that breaks the API's published shape.
_RETRY_ADVICE: Final = (
    "nothing was sealed; run the tap again later, or use the dashboard's Cost data export "
    "for this month (source files)"
)


class OpenAIAPIError(Exception):
    """The Costs API could not be read; str(exc) is one line safe to show (never the key)."""

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.attempts = attempts


class PageTokenRejected(OpenAIAPIError):
    """OpenAI answered a ``next_page`` cursor it issued itself with HTTP 400.

    Users report this from the live API; reading the range again from its first page
    works (:func:`export_month` does, a bounded number of times). ``after`` is the day of
    the last bucket received before the refused page, if any.
    """

    def __init__(self, message: str, *, reason: str, after: date | None) -> None:
        super().__init__(message, status_code=400)
        self.reason = reason
        self.after = after


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

    def cost_buckets(
        self,
        start_time: int,
        end_time: int,
        *,
        project_ids: Sequence[str] = (),
        limit: int = COSTS_PAGE_LIMIT,
    ) -> Iterator[dict[str, Any]]:
        """Yield daily buckets in [start_time, end_time), page after page, in API order.

        Follows ``has_more``/``next_page`` whatever a page holds (a page may hold fewer
        buckets than ``limit``, even none). Each page must be the documented ``page``
        object; the buckets are checked by :func:`render_export`. ``amount.value`` stays
        as the API sent it when that is a string, or becomes an exact
        :class:`~decimal.Decimal` when it is a JSON number (never a float). A refused
        cursor raises :class:`PageTokenRejected`.
        """
        if end_time <= start_time:
            raise ValueError(f"end_time {end_time} must be after start_time {start_time}")
        span = _span(start_time, end_time)
        base: list[_Param] = [
            ("start_time", start_time),
            ("end_time", end_time),
            ("bucket_width", "1d"),
            *array_param("group_by", COSTS_GROUP_BY),
            *array_param("project_ids", project_ids),
            ("limit", limit),
        ]
        page: str | None = None
        seen: set[str] = set()
        number = 0
        last_day: date | None = None
        while True:
            number += 1
            params = [*base, ("page", page)] if page is not None else base
            try:
                body = self._get_json(COSTS_PATH, params)
            except OpenAIAPIError as error:
                if page is None or error.status_code != 400:
                    raise
                reason = str(error).partition(": ")[2] or str(error)
                after = f"after the bucket for {last_day}" if last_day else "before any bucket"
                raise PageTokenRejected(
                    f"OpenAI costs {span}: OpenAI refused its own next_page cursor {after} "
                    f"(HTTP 400: {reason})",
                    reason=reason,
                    after=last_day,
                ) from None
            data, has_more, cursor = _costs_page(body, span, number)
            del body
            logger.info("OpenAI costs %s: page %d, %d bucket(s)", span, number, len(data))
            data.reverse()
            while data:
                # Popped, and let go once written: no day is still held while the next
                # page is read and parsed.
                bucket = data.pop()
                start = bucket.get("start_time") if isinstance(bucket, dict) else None
                if isinstance(start, int) and not isinstance(start, bool):
                    last_day = day_of(start)
                yield bucket
                del bucket
            if not has_more:
                return
            if cursor is None:
                raise OpenAIAPIError(
                    f"OpenAI costs {span}: page {number} says more pages follow (has_more) "
                    f"but gives no next_page cursor; {_RETRY_ADVICE}"
                )
            if cursor in seen:
                raise OpenAIAPIError(
                    f"OpenAI costs {span}: page {number} repeats an earlier next_page cursor; "
                    f"stopped to avoid a loop; {_RETRY_ADVICE}"
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

        def refuse_constant(name: str) -> None:
            raise OpenAIAPIError(
                f"OpenAI GET {path} answered with {name}, which is not a JSON number"
            )

        try:
            body = json.loads(response.content, parse_float=Decimal, parse_constant=refuse_constant)
        except (ValueError, UnicodeDecodeError):
            raise OpenAIAPIError(
                f"OpenAI GET {path} answered HTTP {response.status_code} with a body that is "
                f"not JSON: {self._scrub(one_line(response.text, 120))!r}",
                status_code=response.status_code,
            ) from None
        if not isinstance(body, dict):
            raise OpenAIAPIError(f"OpenAI GET {path} answered with JSON that is not an object")
        return body

    def _scrub(self, text: str) -> str:
        """Also remove anything key-like: OpenAI echoes a masked key in its 401 message."""
        return super()._scrub(_KEY_LIKE.sub("sk-***", text))


def _span(start_time: int, end_time: int) -> str:
    """``from 2025-10-01 to 2025-10-31``: a request's days, for messages."""
    first, last = day_of(start_time), day_of(end_time - 1)
    return f"for {first}" if first == last else f"from {first} to {last}"


def _costs_page(body: dict[str, Any], span: str, number: int) -> tuple[list[Any], bool, str | None]:
    """A costs page's buckets, has_more and next_page, as the spec's UsageResponse has them."""
    where = f"OpenAI costs {span}: page {number}"
    if problem := _object_problem(body, PAGE_OBJECT):
        raise OpenAIAPIError(f"{where} {problem}; {_RETRY_ADVICE}")
    data = body.get("data")
    if not isinstance(data, list):
        raise OpenAIAPIError(f"{where} has no data list; {_RETRY_ADVICE}")
    has_more = body.get("has_more")
    if not isinstance(has_more, bool):
        raise OpenAIAPIError(
            f"{where} has has_more {_shown(has_more)}, expected true or false; {_RETRY_ADVICE}"
        )
    cursor = body.get("next_page")
    if cursor is not None and not isinstance(cursor, str):
        raise OpenAIAPIError(f"{where} has a next_page that is not text; {_RETRY_ADVICE}")
    return data, has_more, cursor or None


def _rejection_text(path: str, status: int, message: str) -> str:
    """One line for a refused request; a bad key gets the hint about admin keys."""
    message = message.removesuffix(".")
    if status in (401, 403):
        return f"OpenAI rejected the admin key (HTTP {status}): {message}; {_ADMIN_KEY_HINT}"
    return f"OpenAI refused GET {path} (HTTP {status}): {message}"


def export_month(
    client: OpenAICostsClient,
    out: BinaryIO,
    *,
    days: list[date],
    project_names: Mapping[str, str],
    organization_id: str,
    organization_name: str,
    restarts: int = PAGE_RESTARTS,
) -> int:
    """Read ``days`` from the Costs API and write them to ``out`` as the export; rows written.

    When OpenAI refuses a ``next_page`` cursor it issued, what was written is discarded
    (``out`` is emptied) and the days are read again from the first page, at most
    ``restarts`` times, so no bucket is written twice.
    """
    start, end = unix_of(days[0]), unix_of(days[-1]) + DAY_SECONDS
    attempt = 0
    while True:
        attempt += 1
        out.seek(0)
        out.truncate()
        try:
            return render_export(
                out,
                days=days,
                buckets=client.cost_buckets(start, end),
                project_names=project_names,
                organization_id=organization_id,
                organization_name=organization_name,
            )
        except PageTokenRejected as rejected:
            if attempt > restarts:
                out.seek(0)
                out.truncate()
                raise OpenAIAPIError(
                    f"{rejected}; gave up after {attempt} reads from the first page; "
                    "nothing was sealed; run the tap again later",
                    status_code=400,
                ) from None
            logger.warning(
                "%s; reading costs %s again from the first page (restart %d of %d)",
                rejected,
                _span(start, end),
                attempt,
                restarts,
            )


def render_export(
    out: BinaryIO,
    *,
    days: list[date],
    buckets: Iterable[Any],
    project_names: Mapping[str, str],
    organization_id: str,
    organization_name: str,
) -> int:
    """Write ``days`` to ``out`` as the dashboard's current-layout export holds them.

    Streams: each bucket's rows are written before the next bucket is read, so only one
    day is in memory. Buckets must come one per day of ``days``, in day order; each API
    result becomes one row in API order, and a bucket with an empty ``results`` list the
    idle row the dashboard writes. Returns the number of data rows written.
    """
    if not organization_id:
        raise ValueError("organization_id is required to render a cost export")
    if not days or any(later <= earlier for earlier, later in itertools.pairwise(days)):
        raise ValueError("days must be in increasing order without repeats, as exports are")
    wanted = set(days)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> None:
        out.write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()

    writer.writerow(CURRENT_COLUMNS)
    flush()
    rows = 0
    position = 0  # days[position] is the day the next bucket must cover
    unknown: set[str] = set()
    context = _Context(project_names, organization_id, organization_name, unknown)
    for bucket in buckets:
        day = _bucket_day(bucket, position)
        expected = days[position] if position < len(days) else None
        if day != expected:
            raise OpenAIAPIError(_misplaced_bucket(day, expected, days, wanted))
        position += 1
        rows += _write_day(writer, day, _bucket_results(bucket, day), context)
        flush()  # the day is on its way to the file before the next bucket is read
        del bucket  # and not held while the next one is fetched
    if position < len(days):
        missing = days[position:]
        raise OpenAIAPIError(
            f"OpenAI costs for {describe_days(missing)}: the API returned no bucket for "
            f"{'this day' if len(missing) == 1 else 'these days'} (an idle day comes as a "
            f"bucket with an empty results list); {_RETRY_ADVICE}"
        )
    if unknown:
        logger.warning(
            "OpenAI costs name %d project id(s) the projects list lacks; project_name left "
            "empty for: %s",
            len(unknown),
            ", ".join(sorted(unknown)),
        )
    return rows


def _misplaced_bucket(day: date, expected: date | None, days: list[date], wanted: set[date]) -> str:
    """Why a bucket for ``day`` cannot come now (``expected`` is the day due next)."""
    if day not in wanted:
        return (
            f"OpenAI costs for {day}: a bucket outside the days requested "
            f"({days[0]} to {days[-1]}); {_RETRY_ADVICE}"
        )
    if expected is None or day < expected:
        return (
            f"OpenAI costs for {day}: a second bucket for this day, or one out of day order; "
            f"{_RETRY_ADVICE}"
        )
    return (
        f"OpenAI costs for {expected}: the API returned no bucket for this day before the "
        f"one for {day} (buckets come one per day, in day order; an idle day comes as a "
        f"bucket with an empty results list); {_RETRY_ADVICE}"
    )


def _bucket_day(bucket: Any, position: int) -> date:
    """The UTC day a bucket covers; a bucket of another shape or span is refused."""
    if not isinstance(bucket, dict):
        raise OpenAIAPIError(
            f"OpenAI costs: bucket {position + 1} is not an object: "
            f"{one_line(repr(bucket), 80)}; {_RETRY_ADVICE}"
        )
    start = bucket.get("start_time")
    if not isinstance(start, int) or isinstance(start, bool):
        raise OpenAIAPIError(
            f"OpenAI costs: bucket {position + 1} has start_time {_shown(start)}, expected Unix "
            f"seconds; {_RETRY_ADVICE}"
        )
    day = day_of(start)
    if problem := _object_problem(bucket, BUCKET_OBJECT):
        raise OpenAIAPIError(f"OpenAI costs for {day}: the bucket {problem}; {_RETRY_ADVICE}")
    end = bucket.get("end_time")
    if not isinstance(end, int) or isinstance(end, bool):
        raise OpenAIAPIError(
            f"OpenAI costs for {day}: the bucket has end_time {_shown(end)}, expected Unix "
            f"seconds; {_RETRY_ADVICE}"
        )
    if start % DAY_SECONDS or end != start + DAY_SECONDS:
        raise OpenAIAPIError(
            f"OpenAI returned a cost bucket from {start} to {end!r} that is not one whole UTC "
            "day; request 1d buckets from 00:00 UTC"
        )
    return day


def _bucket_results(bucket: dict[str, Any], day: date) -> list[Any]:
    """The bucket's results list; only an empty list makes an idle day."""
    if "results" not in bucket:
        if "result" in bucket:
            problem = (
                "the bucket has result instead of results (the name one spec revision "
                "used; the API sends results)"
            )
        else:
            problem = (
                "the bucket has no results field (a day is idle only when results is an empty list)"
            )
        raise OpenAIAPIError(f"OpenAI costs for {day}: {problem}; {_RETRY_ADVICE}")
    if "result" in bucket:
        raise OpenAIAPIError(
            f"OpenAI costs for {day}: the bucket has both results and result; {_RETRY_ADVICE}"
        )
    results = bucket["results"]
    if not isinstance(results, list):
        shown = "null" if results is None else one_line(repr(results), 60)
        raise OpenAIAPIError(
            f"OpenAI costs for {day}: the bucket has results {shown}, expected a list "
            f"(empty for an idle day); {_RETRY_ADVICE}"
        )
    return results


class _Context:
    """What every row of a month shares, and the project ids the names list lacked."""

    def __init__(
        self,
        project_names: Mapping[str, str],
        organization_id: str,
        organization_name: str,
        unknown: set[str],
    ) -> None:
        self.project_names = project_names
        self.organization_id = organization_id
        self.organization_name = organization_name
        self.unknown = unknown


def _write_day(writer: Any, day: date, results: list[Any], context: _Context) -> int:
    """Write one day's rows (the idle row for no results); the number of rows."""
    start = unix_of(day)
    times = {
        "start_time": str(start),
        "end_time": str(start + DAY_SECONDS),
        "start_time_iso": iso_of(start),
        "end_time_iso": iso_of(start + DAY_SECONDS),
    }
    if not results:
        writer.writerow([times.get(column, "") for column in CURRENT_COLUMNS])
        return 1
    for number, result in enumerate(results, start=1):
        values = _cost_values(day, number, result, context)
        values.update(times)
        writer.writerow([values.get(column, "") for column in CURRENT_COLUMNS])
    return len(results)


def _cost_values(day: date, number: int, result: Any, context: _Context) -> dict[str, str]:
    """The non-time columns of one API result, in export text."""

    def fault(problem: str, advice: str = _RETRY_ADVICE) -> OpenAIAPIError:
        return OpenAIAPIError(f"OpenAI costs for {day}: result {number} {problem}; {advice}")

    if not isinstance(result, dict):
        raise fault(f"is not an object: {one_line(repr(result), 60)}")
    if problem := _object_problem(result, RESULT_OBJECT):
        raise fault(problem)  # e.g. a usage result: its fields are not the question
    if not result.keys() <= _RESULT_FIELDS:
        _check_unknown(result, _RESULT_FIELDS, "", fault)
    if "amount" not in result:
        raise fault("has no amount")
    amount = result["amount"]
    if not isinstance(amount, dict):
        raise fault(f"has amount {_shown(amount)}, expected an object with value and currency")
    if not amount.keys() <= _AMOUNT_FIELDS:
        _check_unknown(amount, _AMOUNT_FIELDS, "amount.", fault)
    values = {
        "amount_value": _decimal_field(amount, "value", "amount.value", fault, required=True),
        "amount_currency": _text_field(amount, "currency", "amount.currency", fault),
        "quantity": _decimal_field(result, "quantity", "quantity", fault, required=False),
        "organization_id": context.organization_id,
        "organization_name": context.organization_name,
    }
    if not values["amount_currency"]:
        raise fault("has no amount.currency")
    for name in _RESULT_TEXT_FIELDS:
        values[name] = _text_field(result, name, name, fault)
    organization = result.get(_RESULT_ORGANIZATION)
    if organization is not None and organization != context.organization_id:
        raise fault(
            f"belongs to organization {organization!r}, not {context.organization_id!r}",
            "nothing was sealed; check organization_id against the admin key's organization",
        )
    project_id = values["project_id"]
    if project_id:
        project_name = context.project_names.get(project_id)
        if project_name is None:
            context.unknown.add(project_id)
        else:
            values["project_name"] = project_name
    return values


# An unknown field with a value is an error, not a warning: this module claims the file is
# what the dashboard would export, and a field it cannot place may qualify the amount (a
# credit, a discount, another grouping) - exactly the silent wrong number the product rules
# out. The run stops with the field's name; the dashboard export works meanwhile. A null
# carries nothing, so an unknown field that is null is not an error (the spec's example
# shows every field, null when not grouped by it).
def _check_unknown(
    mapping: dict[str, Any],
    known: frozenset[str],
    prefix: str,
    fault: Callable[[str, str], OpenAIAPIError],
) -> None:
    extra = sorted(key for key in mapping.keys() - known if mapping[key] is not None)
    if extra:
        shown = ", ".join(f"{prefix}{key} ({_shown(mapping[key])})" for key in extra)
        raise fault(
            f"has field(s) this tap does not know: {shown}",
            "nothing was sealed; update tap-openai-costs, or use the dashboard's Cost data "
            "export for this month (source files)",
        )


def _decimal_field(
    mapping: dict[str, Any],
    key: str,
    name: str,
    fault: Callable[..., OpenAIAPIError],
    *,
    required: bool,
) -> str:
    if key not in mapping:
        if required:
            raise fault(f"has no {name}")
        return ""
    value = mapping[key]
    if value is None:
        if required:
            raise fault(f"has {name} null")
        return ""
    try:
        return decimal_text(value)
    except ValueError:
        raise fault(f"has {name} {_shown(value)}, not a decimal number") from None


def _text_field(
    mapping: dict[str, Any], key: str, name: str, fault: Callable[..., OpenAIAPIError]
) -> str:
    """Text as sent; null (or absent) is the empty cell the export has."""
    value = mapping.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise fault(f"has {name} {_shown(value)}, expected text or null")
    return value


def _object_problem(mapping: dict[str, Any], expected: str) -> str | None:
    """What is wrong with a spec object's ``object`` field, if anything."""
    if "object" not in mapping:
        return f"has no object field (expected {expected!r})"
    if mapping["object"] != expected:
        return f"has object {_shown(mapping['object'])}, expected {expected!r}"
    return None


def _shown(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, Decimal):
        return format_decimal(value)
    return one_line(repr(value), 60)


def decimal_text(value: object) -> str:
    """Exact decimal text of an API number: a string is kept verbatim, a number as written.

    A string must be decimal text as exports hold it (:data:`cost_export.AMOUNT_TEXT`:
    fixed digits or a float's repr such as ``5.5e-05``). A JSON number arrives as an
    ``int`` or an exact ``Decimal`` and is written by :func:`cost_export.format_decimal`.
    Raises ValueError for anything else (null, ``NaN``, ``1,000``, a bool); a float is a
    TypeError: by then the digits OpenAI sent are already lost.
    """
    if isinstance(value, str):
        if AMOUNT_TEXT.fullmatch(value):
            return value
        raise ValueError(f"not decimal text: {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if value.is_finite():
            return format_decimal(value)
        raise ValueError(f"not a finite number: {value!r}")
    if isinstance(value, float):
        raise TypeError("amount values must be parsed as Decimal, never float (digits lost)")
    raise ValueError(f"not a number: {value!r}")
