"""Write a realistic one-month OpenAI Cost data export, streaming, for the benchmark.

    python bench/generate_export.py --rows 1000000 --month 2025-10 --out bench/data/x.csv

The file is in the current 17-column layout, organization ``org-bench``, rows grouped by
UTC day in time order, ``\\n`` terminators, quoted as ``csv.writer`` (QUOTE_MINIMAL) quotes.
A few days are idle (one row with only the four time columns filled). Active days carry
many projects (some names with commas, quotes or non-ASCII text, plus the default project
with no id or name) and many line items (most with a comma, so quoted). Every row of a day
has a distinct (project, line item, user, API key) combination, so the tap's duplicate-row
check (same day and key, different amount) never fires.

Rows are written as they are made, so memory stays flat whatever ``--rows`` is.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import random
import string
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from tap_openai_costs.cost_export import CURRENT_COLUMNS

UTC = timezone.utc  # datetime.UTC needs Python 3.11
ORGANIZATION_ID = "org-bench"
ORGANIZATION_NAME = "Bench Labs, Inc."
HEADER = CURRENT_COLUMNS
MODELS = (
    "gpt-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "gpt-5-2025-08-07",
    "gpt-5-mini-2025-08-07",
    "o3-2025-04-16",
    "o4-mini-2025-04-16",
    "text-embedding-3-small",
    "text-embedding-3-large",
    'ft:gpt-4o-mini-2024-07-18:bench:"support":A1b2',
    "ft:gpt-4.1-mini-2025-04-14:bench::Zq9xY8",
)
TOKEN_KINDS = ("input", "cached input", "output", "batch input", "batch output")
OTHER_ITEMS = (
    "web search tool calls",
    "file search tool calls",
    "file search storage",
    "code interpreter sessions",
    "whisper-1",
    "tts-1",
    "dall-e-3, 1024x1024, standard",
    "gpt-image-1, output",
)
PROJECT_NAMES = (
    "Search, Ranking",
    'Support Bot "v2"',
    "Recherche & Développement",
    '東京チーム, "beta"',
    "Équipe Données",
    "Zürich Labs",
    "Ingest; nightly",
    "Billing (legacy)",
    "São Paulo Ops",
    "Core API",
)
API_SOURCES = ("api", "api", "api", "batch", "playground")
DEFAULT_PROJECTS = 400
DEFAULT_USERS = 600
DEFAULT_KEYS = 900
IDLE_DAYS = 3


def quoted(value: str) -> str:
    """One field as csv.writer (QUOTE_MINIMAL) writes it."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([value])
    return buffer.getvalue()


def random_id(rng: random.Random, prefix: str, length: int) -> str:
    return prefix + "".join(rng.choices(string.ascii_letters + string.digits, k=length))


def line_items() -> list[str]:
    return [f"{model}, {kind}" for model in MODELS for kind in TOKEN_KINDS] + list(OTHER_ITEMS)


def project_fields(rng: random.Random, count: int) -> list[str]:
    """Pre-rendered ``project_id,organization_id,project_name,organization_name`` text."""
    organization = f"{ORGANIZATION_ID},{{name}},{quoted(ORGANIZATION_NAME)}"
    projects = [",".join(("", ORGANIZATION_ID, "", quoted(ORGANIZATION_NAME)))]  # default
    for n in range(1, count):
        name = PROJECT_NAMES[n % len(PROJECT_NAMES)] if n % 7 == 0 else f"Project {n:03d}"
        pid = random_id(rng, "proj_", 12)
        projects.append(f"{pid}," + organization.format(name=quoted(name)))
    return projects


def user_fields(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """(user_id, user_email) pairs, rendered."""
    users = []
    for n in range(count):
        email = f"dev{n:04d}@bench.example" if n % 11 else f"Jörg.Müller{n}@bench.example"
        users.append((random_id(rng, "user-", 24), quoted(email)))
    return users


def day_row_counts(rng: random.Random, days: list[date], rows: int) -> list[int]:
    """Rows per day summing to ``rows``; 0 marks an idle day (it still gets its one row).

    A few days are idle, weekends are lighter, the rest vary by about 15%.
    """
    idle = set(rng.sample(range(len(days)), min(IDLE_DAYS, len(days) - 1)))
    active = [n for n in range(len(days)) if n not in idle]
    budget = rows - len(idle)
    if budget < len(active):
        msg = f"--rows must be at least {len(days)} (one per day of the month)"
        raise SystemExit(msg)
    weights = [(0.6 if days[n].weekday() >= 5 else 1.0) * rng.uniform(0.85, 1.15) for n in active]
    total = sum(weights)
    spare = budget - len(active)  # every active day has at least one row
    counts = [0] * len(days)
    for n, weight in zip(active, weights, strict=True):
        counts[n] = 1 + int(spare * weight / total)
    for n in active[: budget - sum(counts)]:  # what flooring left over, one row each
        counts[n] += 1
    return counts


def amount_text(rng: random.Random) -> str:
    """Decimal text with varying digits, as OpenAI writes amounts (never exponent form)."""
    value = rng.expovariate(1.5)
    style = rng.random()
    if style < 0.45:
        text = f"{value:.16f}"
    elif style < 0.65:
        text = f"{value:.17f}"
    elif style < 0.9:
        text = f"{value:.6f}"
    else:
        text = f"{value:.2f}"
    return text


def rows_for_day(
    rng: random.Random,
    day: date,
    count: int,
    projects: list[str],
    items: list[str],
    users: list[tuple[str, str]],
    keys: list[str],
) -> Iterator[str]:
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    end = start + 86_400
    times = (
        f"{start},{end},{datetime.fromtimestamp(start, UTC).isoformat()},"
        f"{datetime.fromtimestamp(end, UTC).isoformat()}"
    )
    if count == 0:  # an idle day: one row, only the time columns filled
        yield times + "," * (len(HEADER) - 4) + "\n"
        return
    # A day's rows walk a permutation of (project, line item, key slot) combinations, so no
    # combination repeats within the day; the key slot picks the user and the API key.
    slots = math.ceil(count / (len(projects) * len(items))) + 1
    combos = len(projects) * len(items) * slots
    stride = _coprime_stride(rng, combos)
    offset = rng.randrange(combos)
    quantity_units = ("tokens", "tokens", "requests", "")
    for n in range(count):
        combo = (n * stride + offset) % combos
        project, rest = combo % len(projects), combo // len(projects)
        item, slot = rest % len(items), rest // len(items)
        user_n = (project * 7 + slot * 131) % len(users)
        key_n = (project * 13 + slot * 17) % len(keys)
        user_id, email = users[user_n]
        unit = quantity_units[(item + slot) % len(quantity_units)]
        quantity = str(rng.randrange(1, 5_000_000)) if unit else ""
        source = API_SOURCES[(project + slot) % len(API_SOURCES)]
        yield (
            f"{times},{amount_text(rng)},usd,{quantity},{unit},{items[item]},"
            f"{user_id},{keys[key_n]},{projects[project]},{email},{source}\n"
        )


def _coprime_stride(rng: random.Random, modulus: int) -> int:
    while True:
        stride = rng.randrange(1, modulus) if modulus > 1 else 1
        if math.gcd(stride, modulus) == 1:
            return stride


def month_days(month: str) -> list[date]:
    first = date.fromisoformat(f"{month}-01")
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return [first + timedelta(days=n) for n in range((following - first).days)]


def generate(rows: int, month: str, out: Path, seed: int = 7) -> None:
    rng = random.Random(seed)
    days = month_days(month)
    counts = day_row_counts(rng, days, rows)
    projects = project_fields(rng, DEFAULT_PROJECTS)
    items = [quoted(item) for item in line_items()]
    users = user_fields(rng, DEFAULT_USERS)
    keys = [random_id(rng, "key_", 16) for _ in range(DEFAULT_KEYS)]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="", buffering=1 << 20) as handle:
        handle.write(",".join(HEADER) + "\n")
        for day, count in zip(days, counts, strict=True):
            handle.writelines(rows_for_day(rng, day, count, projects, items, users, keys))
    partial.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="data rows (header excluded)")
    parser.add_argument("--month", default="2025-10", help="YYYY-MM")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    generate(args.rows, args.month, args.out, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
