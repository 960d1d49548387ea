"""The tap into a real PostgreSQL through meltanolabs-target-postgres (default settings): the
documented per-month totals query (docs/warehouse.md) gives the exact sum of the source rows
after a first load from overlapping exports, after a month restated with other amounts, and
after one restated with fewer rows; with the loader upserting (its default) and appending.
The documented reconciliation against the seals finds nothing, and names a month that lost
a row. The shipped view of the current rows (warehouse/), created by the documented command
after the first load, gives a plain sum equal to the seals through every restatement.

Into DuckDB through target-duckdb 0.8.0, with DuckDB pinned to 1.2.2 (1.3 and newer lose
the first row of each load): the documented DuckDB casts keep every digit, the
reconciliation finds nothing, and a plain sum over the shipped view equals the seals.

The cluster is a throwaway one (tests/postgres.py); the loader comes from PyPI into its own
venv (tests/loaders.py). Nothing leaves 127.0.0.1 but that one install.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from openai_costs.export import format_decimal, month_days
from tests.docs import REPO, block, commands
from tests.exports import ORG, cost, export, times, write
from tests.loaders import loader_executable, require
from tests.postgres import INSTALL_HINT, PostgresCluster, find_bin_dir
from tests.singer import every_stream_selected, run, run_tap

#: One xdist worker runs this module's tests: one Postgres cluster (a module fixture).
pytestmark = pytest.mark.xdist_group("warehouse")
TARGET_POSTGRES = ("meltanolabs-target-postgres", "0.8.1", "target-postgres")
#: target-duckdb 0.8.0 with the DuckDB the README pins (README "DuckDB").
TARGET_DUCKDB = ("target-duckdb", "0.8.0", "target-duckdb", ("duckdb==1.2.2",))
#: Amount texts as real exports write them: many digits, a float's repr, exponents.
AMOUNTS = (
    "0.019733999999999998",
    "5.5e-05",
    "0.8958740000000000",
    "1.2345E-05",
    "0.005705150000000001",
    "2.37",
    "0.34090000000000000",
    "12.5",
    "0.0036963",
)
UPSERT, APPEND = "upserting", "appending"
#: Per-month rows and plain sums over the shipped view of the current rows (warehouse/).
VIEW_TOTALS = (
    "SELECT organization, month, count(*), sum(amount_value) FROM current_costs "
    "GROUP BY organization, month ORDER BY organization, month"
)
#: The sum of every month's latest seal, with upserting and append-only loaders alike.
LATEST_SEALS_TOTAL = (
    "SELECT sum(CAST(total_usd AS NUMERIC)) FROM cost_months AS s WHERE month_version = "
    "(SELECT max(month_version) FROM cost_months AS l "
    "WHERE l.organization = s.organization AND l.month = s.month)"
)


def rows_of(
    month: str, shift: int, items: int = 3, days: range | None = None, idle: tuple[int, ...] = ()
) -> list[dict[str, str]]:
    """A month's export rows: `items` costs a day with amounts from AMOUNTS, idle days."""
    rows: list[dict[str, str]] = []
    for n, day in enumerate(month_days(month)):
        if days is not None and day.day not in days:
            continue
        if day.day in idle:
            rows.append(times(day))
            continue
        for i in range(items):
            amount = AMOUNTS[(n * items + i + shift) % len(AMOUNTS)]
            rows.append(cost(day, amount, item=f"gpt-4o-2024-08-06, item {i}"))
    return rows


def totals(rows: list[dict[str, str]]) -> tuple[str, str]:
    """(row count, exact total) as Postgres prints them."""
    amounts = [Decimal(row["amount_value"]) for row in rows if row.get("amount_value")]
    return str(len(rows)), format_decimal(sum(amounts, Decimal(0)))


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        require(f"PostgreSQL server binaries not found: {INSTALL_HINT}")
        return
    try:
        cluster = PostgresCluster(bin_dir)
    except KeyError:  # root, and no unprivileged user to run the server as
        require(f"no 'postgres' user to run PostgreSQL as: {INSTALL_HINT}")
        return
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def target_postgres() -> Path:
    return loader_executable(*TARGET_POSTGRES)


class Warehouse:
    """One Postgres schema loaded by target-postgres, upserting (its default: the streams'
    key properties) or appending (no key properties, as append-only loaders behave)."""

    def __init__(self, postgres: PostgresCluster, loader: Path, mode: str, tmp: Path) -> None:
        self.postgres = postgres
        self.loader = loader
        self.mode = mode
        self.schema = f"openai_costs_{mode}"
        self.config = tmp / f"{self.schema}.json"
        self.config.write_text(json.dumps(postgres.loader_config(self.schema)))

    def load(self, messages: str) -> None:
        if self.mode == APPEND:
            messages = _without_key_properties(messages)
        done = run(
            self.loader.name,
            "--config",
            str(self.config),
            stdin=messages,
            bin_dir=self.loader.parent,
        )
        assert done.returncode == 0, done.stderr[-5000:]

    def query(self, sql: str) -> list[list[str]]:
        return self.postgres.sql(sql, schema=self.schema)


def create_current_costs_view(postgres: PostgresCluster, schema: str) -> None:
    """docs/warehouse.md's command for the PostgreSQL view, on this cluster and schema."""
    ((env, argv),) = commands(block("sh", "current_costs.postgresql.sql", page="docs/warehouse.md"))
    env["PGOPTIONS"] = env["PGOPTIONS"].replace("=openai_costs", f"={schema}")
    argv[0] = str(postgres.bin_dir / argv[0])
    connection = {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "PGUSER": postgres.user,
        "PGDATABASE": "postgres",
    }
    done = subprocess.run(
        argv,
        cwd=REPO,
        env=os.environ | connection | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _without_key_properties(messages: str) -> str:
    lines = []
    for line in messages.splitlines():
        message = json.loads(line)
        if message["type"] == "SCHEMA":
            message["key_properties"] = []
            line = json.dumps(message)
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_month_totals_are_exact_after_overlaps_and_restatements(
    tmp_path, postgres, target_postgres
) -> None:
    totals_sql = block("sql", "sum(amount_value)", page="docs/warehouse.md")
    reconcile_sql = block(
        "sql", "Months whose current rows differ from their seal", page="docs/warehouse.md"
    )
    focus_totals_sql = block("sql", "FOCUS month totals", page="docs/focus.md")
    focus_rows_sql = block("sql", "Current FOCUS rows", page="docs/focus.md")
    warehouses = [Warehouse(postgres, target_postgres, mode, tmp_path) for mode in (UPSERT, APPEND)]
    exports = tmp_path / "exports"
    config = {"paths": [str(exports)], "organization_id": ORG}
    catalog = every_stream_selected(tmp_path)  # focus_costs too

    def load(state: dict | None) -> dict:
        tap = run_tap(tmp_path, config, state, catalog=catalog)
        assert tap.returncode == 0, tap.stderr
        for warehouse in warehouses:
            warehouse.load(tap.stdout)
        return tap.last_state

    def assert_totals(expected: dict[str, list[dict[str, str]]]) -> None:
        want = [[ORG, month, *totals(rows)] for month, rows in sorted(expected.items())]
        for warehouse in warehouses:
            assert warehouse.query(totals_sql) == want, warehouse.mode
            # The README's reconciliation against the seals: nothing differs.
            assert warehouse.query(reconcile_sql) == [], warehouse.mode
            # The view: plain sums, per month and in all, are the current seals'.
            assert warehouse.query(VIEW_TOTALS) == want, warehouse.mode
            assert warehouse.query(
                "SELECT sum(amount_value) FROM current_costs"
            ) == warehouse.query(LATEST_SEALS_TOTAL), warehouse.mode
            # docs/focus.md: the current FOCUS rows add up to the same, row for row.
            focus = [[org, month, total] for org, month, _, total in want]
            assert warehouse.query(focus_totals_sql) == focus, warehouse.mode
            costed = sum(1 for rows in expected.values() for r in rows if r.get("amount_value"))
            count_sql = f"SELECT count(*) FROM ({focus_rows_sql.strip().rstrip(';')}) AS f"  # noqa: S608
            current = warehouse.query(count_sql)
            assert current == [[str(costed)]], warehouse.mode

    # 1. First load from overlapping exports: October's early export goes out as a draft
    # while read; the later one wins days 10 to 31, so October is sent again, merged.
    september = rows_of("2025-09", 0, idle=(6, 7))
    write(exports / "a-sep.csv", export(september))
    early = rows_of("2025-10", 1, days=range(1, 21))
    late = rows_of("2025-10", 2, days=range(10, 32), idle=(4,))
    write(exports / "b-oct-early.csv", export(early), mtime=1_900_000_000)
    write(exports / "c-oct-late.csv", export(late), mtime=1_900_000_060)
    october = [r for r in early if int(r["start_time"]) < int(late[0]["start_time"])] + late
    state = load(None)
    for warehouse in warehouses:
        create_current_costs_view(postgres, warehouse.schema)
    assert_totals({"2025-09": september, "2025-10": october})
    # The draft's rows are in the table too: only the seal tells them apart.
    for warehouse in warehouses:
        versions = warehouse.query(
            "SELECT count(DISTINCT month_version) FROM costs WHERE month = '2025-10'"
        )
        assert versions == [["2"]], warehouse.mode

    # 2. October restated with other amounts (a newer full export).
    restated = rows_of("2025-10", 3)
    write(exports / "d-oct-restated.csv", export(restated), mtime=1_900_000_120)
    state = load(state)
    assert_totals({"2025-09": september, "2025-10": restated})

    # 3. October restated with fewer rows: the rows it no longer has leave the totals.
    fewer = rows_of("2025-10", 3, items=2)
    write(exports / "e-oct-fewer.csv", export(fewer), mtime=1_900_000_180)
    load(state)
    assert_totals({"2025-09": september, "2025-10": fewer})
    assert len(fewer) < len(restated)

    # The seals vouch for the same: their total_usd is the sum of the current rows.
    upserting = warehouses[0]
    assert upserting.query(
        "SELECT organization, month, row_count, total_usd FROM cost_months ORDER BY month"
    ) == [[ORG, "2025-09", *totals(september)], [ORG, "2025-10", *totals(fewer)]]

    # A row lost on the way (as target-duckdb with DuckDB 1.3+ loses them): the
    # reconciliation names the month, with the seal's figures and the warehouse's.
    upserting.query("DELETE FROM costs WHERE month = '2025-09' AND row = 1 RETURNING row")
    lost = upserting.query(reconcile_sql)
    september_rows, september_total = totals(september)
    assert [row[:5] for row in lost] == [
        [ORG, "2025-09", september_rows, str(int(september_rows) - 1), september_total]
    ]


def test_columns_land_with_warehouse_types(tmp_path, postgres, target_postgres) -> None:
    path = write(tmp_path / "oct.csv", export(rows_of("2025-10", 0)))
    tap = run_tap(tmp_path, {"paths": [str(path)], "organization_id": ORG})
    assert tap.returncode == 0, tap.stderr
    warehouse = Warehouse(postgres, target_postgres, "types", tmp_path)
    warehouse.load(tap.stdout)
    types = warehouse.query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND column_name IN ('day', "
        "'start_time_iso', 'amount_value', 'total_usd', 'month', 'month_version') "
        "ORDER BY table_name, column_name"
    )
    assert types == [
        ["cost_month_layouts", "month", "text"],
        ["cost_month_layouts", "month_version", "text"],
        ["cost_months", "month", "text"],
        ["cost_months", "month_version", "text"],
        ["cost_months", "total_usd", "numeric"],
        ["costs", "amount_value", "numeric"],
        ["costs", "day", "date"],
        ["costs", "month", "text"],
        ["costs", "month_version", "text"],
        ["costs", "start_time_iso", "timestamp without time zone"],
    ]
    first = warehouse.query("SELECT day, start_time_iso, amount_value FROM costs WHERE row = 2")
    assert first == [["2025-10-01", "2025-10-01 00:00:00", "0.000055"]]


@pytest.fixture(scope="module")
def target_duckdb() -> Path:
    return loader_executable(*TARGET_DUCKDB)


def duckdb_query(loader: Path, database: Path, sql: str) -> list[list[str]]:
    """Rows of a query, each value as text, run by the DuckDB installed with the loader."""
    script = (
        "import duckdb, json, sys\n"
        "connection = duckdb.connect(sys.argv[1])\n"
        "connection.execute('SET search_path = openai_costs')\n"
        "rows = connection.sql(sys.argv[2]).fetchall()\n"
        "print(json.dumps([[str(v) for v in row] for row in rows]))\n"
    )
    done = subprocess.run(
        [str(loader.parent / "python"), "-c", script, str(database), sql],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows: list[list[str]] = json.loads(done.stdout)
    return rows


def test_duckdb_casts_keep_every_digit_and_the_seals_reconcile(tmp_path, target_duckdb) -> None:
    database = tmp_path / "warehouse.duckdb"
    config = tmp_path / "target-duckdb.json"
    config.write_text(json.dumps({"path": str(database), "default_target_schema": "openai_costs"}))
    exports = tmp_path / "exports"
    september, october = rows_of("2025-09", 0, idle=(6, 7)), rows_of("2025-10", 1)
    write(exports / "sep.csv", export(september))
    write(exports / "oct.csv", export(october), mtime=1_900_000_000)
    restated = rows_of("2025-10", 4, items=2)

    state = None
    for _ in range(2):
        tap = run_tap(tmp_path, {"paths": [str(exports)], "organization_id": ORG}, state)
        assert tap.returncode == 0, tap.stderr
        state = tap.last_state
        done = run(
            "target-duckdb", "--config", str(config), stdin=tap.stdout, bin_dir=target_duckdb.parent
        )
        assert done.returncode == 0, done.stderr[-3000:]
        write(exports / "oct-restated.csv", export(restated), mtime=1_900_000_060)

    # target-duckdb keeps the decimals as text: the README's casts make them exact numbers.
    types = duckdb_query(
        target_duckdb,
        database,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE column_name IN ('amount_value', 'quantity', 'total_usd') ORDER BY ALL",
    )
    assert types == [
        ["cost_months", "total_usd", "VARCHAR"],
        ["costs", "amount_value", "VARCHAR"],
        ["costs", "quantity", "VARCHAR"],
    ]
    reconcile = block(
        "sql", "Months whose current rows differ from their seal", page="docs/warehouse.md"
    )
    assert (
        duckdb_query(target_duckdb, database, reconcile.replace("NUMERIC", "DECIMAL(38,20)")) == []
    )
    current = duckdb_query(
        target_duckdb,
        database,
        "SELECT month, count(*), sum(CAST(amount_value AS DECIMAL(38,20))) FROM costs "
        "JOIN cost_months USING (organization, month, month_version) GROUP BY month ORDER BY month",
    )
    expected = {"2025-09": totals(september), "2025-10": totals(restated)}
    assert [(month, count, Decimal(total)) for month, count, total in current] == [
        (month, count, Decimal(total)) for month, (count, total) in sorted(expected.items())
    ]
    # The shipped view, created by the documented command: plain sums, exact, equal the seals.
    ((_, argv),) = commands(block("sh", "current_costs.duckdb.sql", page="docs/warehouse.md"))
    argv = [str(target_duckdb.parent / argv[0]), *argv[1:]]
    argv[argv.index("warehouse.duckdb")] = str(database)
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    view = duckdb_query(target_duckdb, database, VIEW_TOTALS.replace("organization, ", ""))
    assert [(month, count, Decimal(total)) for month, count, total in view] == [
        (month, count, Decimal(total)) for month, (count, total) in sorted(expected.items())
    ]
    ((plain, kinds),) = duckdb_query(
        target_duckdb,
        database,
        "SELECT sum(amount_value), typeof(amount_value) || ' ' || typeof(quantity) "
        "FROM current_costs GROUP BY ALL",
    )
    seals = sum((Decimal(total) for _, total in expected.values()), Decimal(0))
    assert (Decimal(plain), kinds) == (seals, "DECIMAL(38,20) DECIMAL(38,20)")
    # Why not NUMERIC: DuckDB's NUMERIC is DECIMAL(18,3), three places.
    assert duckdb_query(
        target_duckdb,
        database,
        "SELECT CAST('0.019733999999999998' AS NUMERIC), "
        "CAST('0.019733999999999998' AS DECIMAL(38,20))",
    ) == [["0.020", "0.01973399999999999800"]]
