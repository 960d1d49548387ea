"""Costs API months rendered as the exports the dashboard would give for them.

Each month fetched becomes the CSV the dashboard would export for it, in the current
layout, written through the export format's writer, so the file pipeline validates and
merges it exactly like a hand-made export. Rules:

- Amounts (and quantities) never pass through a float: the API sends them as JSON numbers
  or strings and both are kept as exact decimal text (:func:`decimal_text`).
- No silent zeros and nothing dropped: a day is idle only when its bucket says so with an
  empty ``results`` list. A missing bucket, a bucket without ``results``, a result without
  ``amount.value``, a null where a value belongs, an ``object`` other than the documented
  one, or a result field this module does not know is an error naming the day and the
  field (:class:`OpenAIAPIError`), and the month is not written.
- At most one day of a month is in memory: pages hold one bucket (one day) each, and the
  export is written bucket by bucket to a file, never built whole.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Final

from openai_costs.export import (
    AMOUNT_LIMIT,
    AMOUNT_LIMIT_TEXT,
    AMOUNT_TEXT,
    CURRENT_COLUMNS,
    DAY_SECONDS,
    ExportWriter,
    Layout,
    day_of,
    describe_days,
    format_decimal,
    full_days,
    iso_of,
    unix_of,
    upload_filename,
)
from openai_costs.safe_http import one_line
from tap_openai_costs.openai_client import (
    RETRY_ADVICE,
    OpenAIAPIError,
    OpenAICostsClient,
    PageTokenRejected,
    describe_span,
    object_problem,
    show_value,
)

__all__ = ["decimal_text", "export_month", "fetch_exports", "render_export"]

#: How often a month is read again from its first page when OpenAI refuses a next_page
#: cursor it issued itself (HTTP 400 "The page token is invalid, ...").
PAGE_RESTARTS: Final = 3

#: The ``object`` values of a bucket and a result in the published spec.
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

logger = logging.getLogger(__name__)

#: The layout the API months are written in: the current dashboard export's.
API_LAYOUT: Final = Layout(CURRENT_COLUMNS, ",".join(CURRENT_COLUMNS))


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
                describe_span(start, end),
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
    writer = ExportWriter(out, API_LAYOUT)
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
        del bucket  # the day is written: not held while the next one is fetched
    if position < len(days):
        missing = days[position:]
        raise OpenAIAPIError(
            f"OpenAI costs for {describe_days(missing)}: the API returned no bucket for "
            f"{'this day' if len(missing) == 1 else 'these days'} (an idle day comes as a "
            f"bucket with an empty results list); {RETRY_ADVICE}"
        )
    writer.finish()
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
            f"({days[0]} to {days[-1]}); {RETRY_ADVICE}"
        )
    if expected is None or day < expected:
        return (
            f"OpenAI costs for {day}: a second bucket for this day, or one out of day order; "
            f"{RETRY_ADVICE}"
        )
    return (
        f"OpenAI costs for {expected}: the API returned no bucket for this day before the "
        f"one for {day} (buckets come one per day, in day order; an idle day comes as a "
        f"bucket with an empty results list); {RETRY_ADVICE}"
    )


def _bucket_day(bucket: Any, position: int) -> date:
    """The UTC day a bucket covers; a bucket of another shape or span is refused."""
    if not isinstance(bucket, dict):
        raise OpenAIAPIError(
            f"OpenAI costs: bucket {position + 1} is not an object: "
            f"{one_line(repr(bucket), 80)}; {RETRY_ADVICE}"
        )
    start = bucket.get("start_time")
    if not isinstance(start, int) or isinstance(start, bool):
        raise OpenAIAPIError(
            f"OpenAI costs: bucket {position + 1} has start_time {show_value(start)}, "
            f"expected Unix seconds; {RETRY_ADVICE}"
        )
    day = day_of(start)
    if problem := object_problem(bucket, BUCKET_OBJECT):
        raise OpenAIAPIError(f"OpenAI costs for {day}: the bucket {problem}; {RETRY_ADVICE}")
    end = bucket.get("end_time")
    if not isinstance(end, int) or isinstance(end, bool):
        raise OpenAIAPIError(
            f"OpenAI costs for {day}: the bucket has end_time {show_value(end)}, expected Unix "
            f"seconds; {RETRY_ADVICE}"
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
        raise OpenAIAPIError(f"OpenAI costs for {day}: {problem}; {RETRY_ADVICE}")
    if "result" in bucket:
        raise OpenAIAPIError(
            f"OpenAI costs for {day}: the bucket has both results and result; {RETRY_ADVICE}"
        )
    results = bucket["results"]
    if not isinstance(results, list):
        shown = "null" if results is None else one_line(repr(results), 60)
        raise OpenAIAPIError(
            f"OpenAI costs for {day}: the bucket has results {shown}, expected a list "
            f"(empty for an idle day); {RETRY_ADVICE}"
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


def _write_day(writer: ExportWriter, day: date, results: list[Any], context: _Context) -> int:
    """Write one day's rows (the idle row for no results); the number of rows."""
    start = unix_of(day)
    times = {
        "start_time": str(start),
        "end_time": str(start + DAY_SECONDS),
        "start_time_iso": iso_of(start),
        "end_time_iso": iso_of(start + DAY_SECONDS),
    }
    if not results:
        writer.write_row(API_LAYOUT.render(times))
        return 1
    for number, result in enumerate(results, start=1):
        values = _cost_values(day, number, result, context)
        values.update(times)
        writer.write_row(API_LAYOUT.render(values))
    return len(results)


def _cost_values(day: date, number: int, result: Any, context: _Context) -> dict[str, str]:
    """The non-time columns of one API result, in export text."""

    def fault(problem: str, advice: str = RETRY_ADVICE) -> OpenAIAPIError:
        return OpenAIAPIError(f"OpenAI costs for {day}: result {number} {problem}; {advice}")

    if not isinstance(result, dict):
        raise fault(f"is not an object: {one_line(repr(result), 60)}")
    if problem := object_problem(result, RESULT_OBJECT):
        raise fault(problem)  # e.g. a usage result: its fields are not the question
    if not result.keys() <= _RESULT_FIELDS:
        _check_unknown(result, _RESULT_FIELDS, "", fault)
    if "amount" not in result:
        raise fault("has no amount")
    amount = result["amount"]
    if not isinstance(amount, dict):
        raise fault(f"has amount {show_value(amount)}, expected an object with value and currency")
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
        shown = ", ".join(f"{prefix}{key} ({show_value(mapping[key])})" for key in extra)
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
    except AmountTooLarge:
        shown = one_line(str(value), 60)
        raise fault(f"has {name} {shown}, {AMOUNT_LIMIT_TEXT}") from None
    except ValueError:
        raise fault(f"has {name} {show_value(value)}, not a decimal number") from None


class AmountTooLarge(ValueError):
    """A number beyond :data:`openai_costs.export.AMOUNT_LIMIT`: no cost row is."""


def _text_field(
    mapping: dict[str, Any], key: str, name: str, fault: Callable[..., OpenAIAPIError]
) -> str:
    """Text as sent; null (or absent) is the empty cell the export has."""
    value = mapping.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise fault(f"has {name} {show_value(value)}, expected text or null")
    return value


def decimal_text(value: object) -> str:
    """Exact decimal text of an API number: a string is kept verbatim, a number as written.

    A string must be decimal text as exports hold it (:data:`openai_costs.export.AMOUNT_TEXT`:
    fixed digits or a float's repr such as ``5.5e-05``). A JSON number arrives as an
    ``int`` or an exact ``Decimal`` and is written by :func:`openai_costs.export.format_decimal`.
    Raises ValueError for anything else (null, ``NaN``, ``1,000``, a bool), AmountTooLarge
    for a number beyond :data:`~openai_costs.export.AMOUNT_LIMIT` (before it is written
    out: ``1e999999`` would be a million digits); a float is a TypeError: by then the
    digits OpenAI sent are already lost.
    """
    if isinstance(value, str):
        if not AMOUNT_TEXT.fullmatch(value):
            raise ValueError(f"not decimal text: {value!r}")
        if abs(Decimal(value)) > AMOUNT_LIMIT:
            raise AmountTooLarge(value)
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int):
        if abs(value) > AMOUNT_LIMIT:
            raise AmountTooLarge(value)
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite number: {value!r}")
        if abs(value) > AMOUNT_LIMIT:
            raise AmountTooLarge(value)
        return format_decimal(value)
    if isinstance(value, float):
        raise TypeError("amount values must be parsed as Decimal, never float (digits lost)")
    raise ValueError(f"not a number: {value!r}")


def fetch_exports(
    client: OpenAICostsClient,
    months: list[str],
    today: date,
    organization_id: str,
    organization_name: str,
    directory: Path,
    log: Callable[[str], None],
) -> list[Path]:
    """Write one export per month into directory, named as the dashboard names them."""
    names = client.project_names() if months else {}
    paths = []
    for month in months:
        days = full_days(month, today)
        if not days:
            continue
        path = directory / upload_filename(month)
        try:
            with path.open("wb") as out:
                rows = export_month(
                    client,
                    out,
                    days=days,
                    project_names=names,
                    organization_id=organization_id,
                    organization_name=organization_name,
                )
        except BaseException:
            path.unlink(missing_ok=True)  # a partial month must not look like an export
            raise
        log(f"read {month} from the OpenAI Costs API: {len(days)} day(s), {rows} row(s)")
        paths.append(path)
    return paths
