"""What the target's month ledger says of a month of rows, sealed to match them: the tests
of the rules the tap and the target share ask both."""

from __future__ import annotations

import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path

from openai_costs.contract import CostRow, MonthOpened, Seal
from openai_costs.export import Layout, RowsDigest, format_decimal
from target_pelanor.month_ledger import MonthLedger, Withheld
from tests.exports import NEW, ORG, export

LAYOUT = Layout(NEW, ",".join(NEW))


def row_text(row: dict[str, str]) -> str:
    return export([row]).decode().splitlines()[1]


def ledger_verdict(rows: list[dict[str, str]], today: date) -> str:
    """What the target's ledger says of a month of these rows, sealed to match them."""
    work_dir = Path(tempfile.mkdtemp())  # in the test's private temp folder (conftest)
    ledger = MonthLedger(ORG, allow_partial_month=True, today=today, work_dir=work_dir)
    month = rows[0]["start_time_iso"][:7]
    ledger.open_month(MonthOpened(ORG, month, "v1", LAYOUT))
    digest, total = RowsDigest(), Decimal(0)
    for row in rows:
        day, text = row["start_time_iso"][:10], row_text(row)
        ledger.add_row(
            CostRow(ORG, month, day, text, Decimal(row["amount_value"]), row["organization_id"])
        )
        digest.add_row(day, text)
        total += Decimal(row["amount_value"])
    seal = Seal(
        organization=ORG,
        month=month,
        month_version="v1",
        row_count=len(rows),
        total_usd=format_decimal(total),
        days_covered=0,
        days_expected=0,
        missing_days=[],
        complete=False,
        rows_digest=digest.hexdigest(),
        input_digest="",
        source_files=[],
        layout=LAYOUT,
    )
    try:
        ready = ledger.seal(seal)
    except Withheld as withheld:
        return f"withheld: {withheld}"
    finally:
        ledger.close()
    return f"ready: {ready.rows} rows"
