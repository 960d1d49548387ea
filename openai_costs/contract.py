"""What the tap sends and the target reads: the three streams' names and record types, and
the state key. Both plugins use these types, so a renamed field fails mypy, not a run.

Per (organization, month) the tap writes a :class:`MonthOpened` record before the month's
rows, one ``costs`` record per CSV row (read by the target as :class:`CostRow`), and a
:class:`Seal` after them, once every input has passed validation.

Every sending of a month has its own ``month_version``, on its layout record and on each of
its rows; the seal names the version it vouches for. A warehouse keeps every version it
was sent and reads the sealed one (see docs/warehouse.md, "Loading into a warehouse"), so a month
sent twice (a draft, then its merged plan; a restated month in a later run) is never
counted twice, and rows removed by a restatement disappear from the totals.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal

import msgspec

from openai_costs.export import Layout

#: One record per CSV row.
COSTS = "costs"
#: Written right before a month's first row: how its upload file is laid out.
MONTH_LAYOUTS = "cost_month_layouts"
#: Written right after a month's last row: the target uploads sealed months only.
MONTH_SEALS = "cost_months"
STREAMS = (MONTH_LAYOUTS, COSTS, MONTH_SEALS)
#: The same costs as FOCUS rows, for warehouses and other FinOps tools (not selected by
#: default): target-pelanor takes it, uploads nothing of it, and says so once.
FOCUS_COSTS = "focus_costs"
#: ``YYYY-MM``: the ``month`` field of every record.
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


def state_key(organization_id: str, month: str) -> str:
    """The state key: one bookmark per organization and month."""
    return f"{organization_id}/{month}"


#: The target's own part of the state, ``bookmarks["target-pelanor"]["uploaded"]``: per
#: state key, what it last uploaded (rows, days, total as decimal text, rows digest, and
#: since they are recorded, the Pelanor endpoint and the time of the upload). In
#: Meltano the target sees state only as the tap passes it on, so the tap must carry this
#: through unchanged: the SDK's tap loads and writes back every entry of ``bookmarks``,
#: and no stream has this name, so it never collides with the tap's own bookmarks.
TARGET_BOOKMARK = "target-pelanor"


def read_from_api(source_files: Iterable[str]) -> bool:
    """Whether a sealed month was read from OpenAI's Costs API rather than from exports.

    The tap names such a month's source by the endpoint's URL (its files are the run's
    own, deleted at its end); an export's source is a path, and a path never holds "://".
    """
    return any("://" in source for source in source_files)


#: What to do about a state that cannot be read, in both plugins' messages.
STATE_FIX = (
    "restore it (meltano state get, correct it, meltano state set) or clear it (meltano "
    "state clear: every month is sent again, and the upload records the target keeps on "
    "this machine still guard them)"
)


def describe_kind(value: object) -> str:
    """``a list``, ``a number``, ``text``: what a JSON value is, for a message."""
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float | Decimal):
        return "a number"
    return "null" if value is None else type(value).__name__


def state_problem(state: object) -> str | None:
    """What is wrong with the shape of a state both plugins read (a list where a map
    belongs), or None. The tap's own and the target's own entries are read each by its
    plugin; what is checked here is what every reader walks through."""
    if not isinstance(state, dict):
        return f"the state is {describe_kind(state)}, not a map"
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        return f"bookmarks is {describe_kind(bookmarks)}, not a map"
    for name, bookmark in bookmarks.items():
        if not isinstance(bookmark, dict):
            return f"bookmarks.{name} is {describe_kind(bookmark)}, not a map"
    months = bookmarks.get(COSTS, {}).get("months", {})
    if not isinstance(months, dict):
        return f"bookmarks.{COSTS}.months is {describe_kind(months)}, not a map"
    return None


def month_version(run_started: datetime, sending: int) -> str:
    """The version of one sending of a month: the run's UTC start, then the sending's
    number in the run (``20251105T063000.123456Z-0001``). Fixed width, so versions sort
    as text in the order they were sent."""
    return f"{run_started.astimezone(timezone.utc):%Y%m%dT%H%M%S.%fZ}-{sending:04d}"


class MonthOpened(msgspec.Struct, frozen=True):
    """A ``cost_month_layouts`` record: the month's rows follow, in this layout."""

    organization: str
    month: str
    #: This sending of the month; its rows carry the same.
    month_version: str
    layout: Layout


class CostRow(msgspec.Struct, frozen=True):
    """What the target uses of a ``costs`` record; read straight from batch files. Every
    field but ``month`` and ``csv_row`` must agree with the row's text (the target checks)."""

    organization: str
    month: str
    day: str
    csv_row: str
    amount_value: Decimal | None = None
    organization_id: str | None = None
    amount_currency: str | None = None


class Seal(msgspec.Struct, frozen=True):
    """A ``cost_months`` record: what the tap vouches for once the month's rows are out."""

    organization: str
    month: str
    #: The version of the rows sealed: the month's sending they arrived in.
    month_version: str
    row_count: int
    #: Exact decimal text.
    total_usd: str
    days_covered: int
    days_expected: int
    missing_days: list[str]
    complete: bool
    #: sha256 of one line per day: ``YYYY-MM-DD <sha256 of that day's csv_row lines>``.
    rows_digest: str
    input_digest: str
    source_files: list[str]
    layout: Layout


def to_record(value: MonthOpened | Seal) -> dict[str, object]:
    """The record a tap writes for a contract type."""
    return msgspec.to_builtins(value)  # type: ignore[no-any-return]
