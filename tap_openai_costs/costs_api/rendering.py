"""Costs API months rendered as the exports the dashboard would give for them.

Each month fetched becomes an export file, written through the export format's writer, so
the file pipeline validates and merges it exactly like a hand-made export. The file holds
every column the API can fill (:data:`WORK_LAYOUT`); the month is then sent in the layout
the ``api_layout`` setting chooses (:data:`API_LAYOUTS`: the nine columns Pelanor lists by
default, the layout of the real 2025 downloads), its other values still typed in the
records. Rules:

- Amounts (and quantities) never pass through a float: the API sends them as JSON numbers
  or strings (``"0.000004500000000000000000000000000000000"``, ``"0E-6176"``, ``30.0``),
  each read exactly from its text and written as the shortest exact decimal text of its
  value (``0.0000045``, ``0``, ``30``): :func:`decimal_text`.
- The live API's shape is data: fields the spec does not list are never an error for being
  unknown. Those the tap places fill their columns (``project_name`` and
  ``organization_name`` over the projects list and the setting; ``user_email``,
  ``user_id``, ``api_key_id``, ...); the names of the others are said once a run
  (:class:`FieldNotes`), never their values (``user_email`` is personal data).
- No silent zeros and nothing dropped: a day is idle only when its bucket says so with an
  empty ``results`` list. A missing or repeated bucket, a bucket without ``results``, a
  result without ``amount.value``, another currency, another organization, an ``object``
  other than the documented one, or a field inside ``amount`` that the tap does not know
  (it could qualify the amount) is an error naming the day (:class:`OpenAIAPIError`), and
  the month is not written.
- At most one day of a month is in memory: pages hold one bucket (one day) each, and the
  export is written bucket by bucket to a file, never built whole.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Final

from openai_costs.export import (
    AMOUNT_LIMIT,
    AMOUNT_LIMIT_TEXT,
    AMOUNT_MAX_LENGTH,
    CURRENT_COLUMNS,
    DAY_SECONDS,
    REQUIRED_COLUMNS,
    ExportWriter,
    Layout,
    day_of,
    describe_days,
    full_days,
    iso_of,
    unix_of,
    upload_filename,
)
from openai_costs.safe_http import one_line
from tap_openai_costs.costs_api.client import (
    RETRY_ADVICE,
    OpenAIAPIError,
    OpenAICostsClient,
    object_problem,
    show_value,
)
from tap_openai_costs.costs_api.spec import (
    AMOUNT_FIELDS,
    BUCKET_FIELDS,
    BUCKET_ISO,
    BUCKET_OBJECT,
    NAME_FIELDS,
    RESULT_FIELDS,
    RESULT_OBJECT,
    RESULT_ORGANIZATION,
    RESULT_TEXT_FIELDS,
)

__all__ = [
    "API_LAYOUTS",
    "WORK_LAYOUT",
    "FieldNotes",
    "checked_days",
    "cost_amount",
    "decimal_text",
    "export_month",
    "fetch_exports",
    "render_export",
]

UTC = timezone.utc  # datetime.UTC needs Python 3.11

#: Decimal text as JSON carries it, in a string or as a number: digits, an optional
#: fraction and exponent (``0E-6176`` is a 128-bit decimal's zero). Never ``NaN``,
#: ``Infinity``, separators, spaces or underscores (which ``Decimal()`` would accept).
_DECIMAL_TEXT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: Text that is already the shortest of its value: no sign but a minus on a non-zero
#: value, no leading or trailing zeros, no exponent (``0.0000045``, ``-12.5``, ``0``).
_SHORTEST_TEXT: Final = re.compile(r"0|-?(?:[1-9][0-9]*(?:\.[0-9]*[1-9])?|0\.[0-9]*[1-9])")
#: Longer text is not an amount (the live API's run to about 42 characters).
_MAX_TEXT: Final = 200
#: Digits before or after the point beyond which a value cannot be written as an export
#: amount (:data:`openai_costs.export.AMOUNT_MAX_LENGTH` characters).
_MAX_MAGNITUDE: Final = 60

logger = logging.getLogger(__name__)

#: The export file every API month is written to first: every column the API can fill.
WORK_LAYOUT: Final = Layout(CURRENT_COLUMNS, ",".join(CURRENT_COLUMNS))
#: The layouts an API month can be sent in (the ``api_layout`` setting): the nine columns
#: Pelanor lists, in the order of the real 2025 downloads, or the current wider export's.
API_LAYOUTS: Final = {
    "nine_columns": Layout(REQUIRED_COLUMNS, ",".join(REQUIRED_COLUMNS)),
    "wide": WORK_LAYOUT,
}


class FieldNotes:
    """The names of fields the Costs API sent that the tap does not use, said once a run.

    Names only: a value may be personal data (an e-mail address).
    """

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._said: set[str] = set()

    def note(self, where: str, names: Iterable[str]) -> None:
        self._names.update(f"{where}.{one_line(name, 60)}" for name in names)

    def say(self, log: logging.Logger) -> None:
        """One warning naming the fields not named before in this run, if any."""
        new = sorted(self._names - self._said)
        if new:
            log.warning(
                "OpenAI's Costs API sent field(s) this tap does not use, ignored: %s (not "
                "an error; values not shown)",
                ", ".join(new),
            )
            self._said.update(new)


def export_month(
    client: OpenAICostsClient,
    out: BinaryIO,
    *,
    days: list[date],
    project_names: Mapping[str, str],
    organization_id: str,
    organization_name: str,
    notes: FieldNotes | None = None,
) -> int:
    """Read ``days`` from the Costs API and write them to ``out`` as the export; rows written.

    One range request (its pages, and a new request from the first missing day when
    OpenAI refuses a cursor it issued: :meth:`OpenAICostsClient.cost_buckets`); the month is
    checked whole however many requests it took.
    """
    start, end = unix_of(days[0]), unix_of(days[-1]) + DAY_SECONDS
    return render_export(
        out,
        days=days,
        buckets=client.cost_buckets(start, end),
        project_names=project_names,
        organization_id=organization_id,
        organization_name=organization_name,
        notes=notes,
    )


def render_export(
    out: BinaryIO,
    *,
    days: list[date],
    buckets: Iterable[Any],
    project_names: Mapping[str, str],
    organization_id: str,
    organization_name: str,
    notes: FieldNotes | None = None,
) -> int:
    """Write ``days`` to ``out`` as an export in :data:`WORK_LAYOUT`.

    Streams: each bucket's rows are written before the next bucket is read, so only one
    day is in memory. Buckets must come one per day of ``days``, in day order; each API
    result becomes one row in API order, and a bucket with an empty ``results`` list the
    idle row the dashboard writes. Returns the number of data rows written.
    """
    if not organization_id:
        raise ValueError("organization_id is required to render a cost export")
    writer = ExportWriter(out, WORK_LAYOUT)
    rows = 0
    unknown: set[str] = set()
    context = _Context(
        project_names, organization_id, organization_name, unknown, notes or FieldNotes()
    )
    for day, results in checked_days(buckets, days, context.notes):
        rows += _write_day(writer, day, results, context)
    writer.finish()
    if unknown:
        logger.warning(
            "OpenAI costs name %d project id(s) the projects list lacks; project_name left "
            "empty for: %s",
            len(unknown),
            ", ".join(sorted(unknown)),
        )
    return rows


def checked_days(
    buckets: Iterable[Any], days: list[date], notes: FieldNotes
) -> Iterator[tuple[date, list[Any]]]:
    """Each day of ``days`` with its bucket's results, as the buckets arrive.

    Buckets must come one per day, in day order, each a whole UTC day with a ``results``
    list; a day without a bucket is an error, never an idle day. A bucket is let go once
    its day was handed on.
    """
    if not days or any(later <= earlier for earlier, later in itertools.pairwise(days)):
        raise ValueError("days must be in increasing order without repeats, as exports are")
    wanted = set(days)
    position = 0  # days[position] is the day the next bucket must cover
    for bucket in buckets:
        day = _bucket_day(bucket, position, notes)
        expected = days[position] if position < len(days) else None
        if day != expected:
            raise OpenAIAPIError(_misplaced_bucket(day, expected, days, wanted))
        position += 1
        yield day, _bucket_results(bucket, day)
        del bucket  # the day is written: not held while the next one is fetched
    if position < len(days):
        missing = days[position:]
        raise OpenAIAPIError(
            f"OpenAI costs for {describe_days(missing)}: the API returned no bucket for "
            f"{'this day' if len(missing) == 1 else 'these days'} (an idle day comes as a "
            f"bucket with an empty results list); {RETRY_ADVICE}"
        )


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


def _bucket_day(bucket: Any, position: int, notes: FieldNotes) -> date:
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
    for name, unix_name in BUCKET_ISO.items():
        text = bucket.get(name)
        if text is not None and not _same_instant(text, bucket[unix_name]):
            raise OpenAIAPIError(
                f"OpenAI costs for {day}: the bucket has {name} {show_value(text)}, which "
                f"is not {unix_name} {bucket[unix_name]} ({iso_of(bucket[unix_name])}); "
                f"{RETRY_ADVICE}"
            )
    if not bucket.keys() <= BUCKET_FIELDS:
        notes.note("bucket", bucket.keys() - BUCKET_FIELDS)
    return day


def _same_instant(text: object, unix_seconds: int) -> bool:
    """Whether ISO text names that instant; without an offset it is UTC, as the live API
    means it (``2026-06-14T00:00:00`` next to ``2026-06-15T00:00:00+00:00``)."""
    if not isinstance(text, str):
        return False
    try:
        # Python 3.10 reads no "Z", 3.11 does: the same verdict on both.
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return False
    return moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() == unix_seconds


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
        notes: FieldNotes,
    ) -> None:
        self.project_names = project_names
        self.organization_id = organization_id
        self.organization_name = organization_name
        self.unknown = unknown
        self.notes = notes


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
        writer.write_row(WORK_LAYOUT.render(times))
        return 1
    # Results are grouped by line item and project: one each a day, or the day's upload
    # would hold the same row twice (refused as two exports pasted together).
    groups: dict[tuple[str, str], int] = {}
    for number, result in enumerate(results, start=1):
        values = _cost_values(day, number, result, context)
        group = (values["line_item"], values["project_id"])
        if (earlier := groups.setdefault(group, number)) != number:
            raise OpenAIAPIError(
                f"OpenAI costs for {day}: results {earlier} and {number} are both for line "
                f"item {group[0]!r} and project {group[1]!r} (the API groups costs by line "
                f"item and project, one result each); {RETRY_ADVICE}"
            )
        values.update(times)
        writer.write_row(WORK_LAYOUT.render(values))
    return len(results)


def _fault(day: date, number: int) -> Callable[..., OpenAIAPIError]:
    def fault(problem: str, advice: str = RETRY_ADVICE) -> OpenAIAPIError:
        return OpenAIAPIError(f"OpenAI costs for {day}: result {number} {problem}; {advice}")

    return fault


def cost_amount(
    day: date, number: int, result: Any, organization_id: str, notes: FieldNotes
) -> str:
    """A result's amount as shortest exact decimal text, once the result is checked: its
    ``object``, amount and currency (USD), its organization; unknown field names noted."""
    fault = _fault(day, number)
    if not isinstance(result, dict):
        raise fault(f"is not an object: {one_line(repr(result), 60)}")
    if problem := object_problem(result, RESULT_OBJECT):
        raise fault(problem)  # e.g. a usage result: its fields are not the question
    if not result.keys() <= RESULT_FIELDS:
        notes.note("result", result.keys() - RESULT_FIELDS)
    if "amount" not in result:
        raise fault("has no amount")
    amount = result["amount"]
    if not isinstance(amount, dict):
        raise fault(f"has amount {show_value(amount)}, expected an object with value and currency")
    # Unlike a result's, an unknown field of the amount could qualify it (a credit, a
    # discount): that would be a silently wrong number, so it stops the month.
    extra = sorted(key for key in amount.keys() - AMOUNT_FIELDS if amount[key] is not None)
    if extra:
        raise fault(
            f"has amount field(s) this tap does not know: "
            f"{', '.join(f'amount.{one_line(key, 60)}' for key in extra)}",
            "nothing was sealed; update tap-openai-costs, or use the dashboard's Cost data "
            "export for this month (source files)",
        )
    value = _decimal_field(amount, "value", "amount.value", fault, required=True)
    currency = _text_field(amount, "currency", "amount.currency", fault)
    if not currency:
        raise fault("has no amount.currency")
    if currency.lower() != "usd":
        raise fault(
            f"has amount.currency {currency!r}, but Pelanor accepts USD only",
            "nothing was sealed; Pelanor takes OpenAI costs in USD only",
        )
    organization = result.get(RESULT_ORGANIZATION)
    if organization is not None and organization != organization_id:
        raise fault(
            f"belongs to organization {show_value(organization)}, not {organization_id!r}",
            "nothing was sealed; check organization_id against the admin key's organization",
        )
    return value


def _cost_values(day: date, number: int, result: Any, context: _Context) -> dict[str, str]:
    """The non-time columns of one API result, in export text."""
    fault = _fault(day, number)
    values = {
        "amount_value": cost_amount(day, number, result, context.organization_id, context.notes),
        "amount_currency": result["amount"]["currency"],
        "quantity": _decimal_field(
            result, "quantity", "quantity", fault, required=False, limit=None
        ),
        "organization_id": context.organization_id,
    }
    for name in (*RESULT_TEXT_FIELDS, *NAME_FIELDS):
        values[name] = _text_field(result, name, name, fault)
    values["organization_name"] = values["organization_name"] or context.organization_name
    project_id = values["project_id"]
    if project_id and not values["project_name"]:
        project_name = context.project_names.get(project_id)
        if project_name is None:
            context.unknown.add(project_id)
        else:
            values["project_name"] = project_name
    return values


def _decimal_field(
    mapping: dict[str, Any],
    key: str,
    name: str,
    fault: Callable[..., OpenAIAPIError],
    *,
    required: bool,
    limit: Decimal | None = AMOUNT_LIMIT,
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
        return decimal_text(value, limit=limit)
    except AmountTooLarge:
        shown = one_line(str(value), 60)
        raise fault(f"has {name} {shown}, {AMOUNT_LIMIT_TEXT}") from None
    except ValueError as problem:
        raise fault(f"has {name} {show_value(value)}, {problem}") from None


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


def decimal_text(value: object, *, limit: Decimal | None = AMOUNT_LIMIT) -> str:
    """The shortest exact decimal text of an API number: no exponent, no trailing zeros.

    ``"0.000004500000000000000000000000000000000"`` is ``0.0000045``, ``"0E-6176"`` and
    ``0.0`` are ``0``, ``30.0`` is ``30``, ``1e-05`` is ``0.00001``. A string must be decimal
    text; a JSON number arrives as an ``int`` or an exact ``Decimal``. Raises ValueError
    (saying why, for a message) for anything else: null, ``NaN``, ``1,000``, a bool, or a
    value too finely divided for an export's amount; AmountTooLarge for a number beyond
    ``limit`` (by default :data:`~openai_costs.export.AMOUNT_LIMIT`, which bounds amounts;
    quantities, token counts, have none), checked before it is written out: ``1e999999``
    would be a million digits. A float is a TypeError: by then the digits OpenAI sent are
    already lost.
    """
    if isinstance(value, bool):
        raise ValueError("not a decimal number")
    if isinstance(value, str):
        if len(value) <= AMOUNT_MAX_LENGTH and _SHORTEST_TEXT.fullmatch(value):
            if limit is not None and Decimal(value).copy_abs() > limit:
                raise AmountTooLarge(value)
            return value  # already the shortest text of its value (most amounts)
        if len(value) > _MAX_TEXT or not _DECIMAL_TEXT.fullmatch(value):
            raise ValueError("not a decimal number")
        number = Decimal(value)
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("not a finite number")
        text = str(value)
        if len(text) <= AMOUNT_MAX_LENGTH and _SHORTEST_TEXT.fullmatch(text):
            if limit is not None and value.copy_abs() > limit:
                raise AmountTooLarge(value)
            return text
        number = value
    elif isinstance(value, float):
        raise TypeError("amount values must be parsed as Decimal, never float (digits lost)")
    else:
        raise ValueError("not a decimal number")
    return _shortest(number, limit)


def _shortest(number: Decimal, limit: Decimal | None) -> str:
    sign, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError("not a finite number")
    if not any(digits):
        return "0"  # also 0E-6176 and -0
    if limit is not None and number.copy_abs() > limit:  # copy_abs: no context, no overflow
        raise AmountTooLarge(number)
    if abs(number.adjusted()) > _MAX_MAGNITUDE:
        raise ValueError("too large or too small for an export's amount")
    kept = list(digits)
    while exponent < 0 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    text = format(Decimal((sign, tuple(kept), exponent)), "f")
    if len(text) > AMOUNT_MAX_LENGTH:
        raise ValueError(f"longer than the {AMOUNT_MAX_LENGTH} characters an export's amount has")
    return text


def fetch_exports(
    client: OpenAICostsClient,
    months: list[str],
    today: date,
    organization_id: str,
    organization_name: str,
    directory: Path,
    log: Callable[[str], None],
    notes: FieldNotes | None = None,
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
                    notes=notes,
                )
        except BaseException:
            path.unlink(missing_ok=True)  # a partial month must not look like an export
            raise
        log(f"read {month} from the OpenAI Costs API: {len(days)} day(s), {rows} row(s)")
        paths.append(path)
    return paths
