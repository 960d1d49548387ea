"""tap-openai-costs with source api, run in process on the OpenAI fake.

The fake's data (`api_costs`, `PROJECTS`, `KEY`) is what the ``openai`` fixture in
conftest.py serves.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from local_sandboxes.openai_costs_api import number, project, result
from openai_costs.export import month_days, unix_of
from tap_openai_costs.streams import CostsStream
from tap_openai_costs.tap import TapOpenAICosts

KEY = "sk-admin-fake-Q7x2v9"
ORG = "org-acme"
PROJECTS = [project("proj_live", "Acme App"), project("proj_old", 'Old, "v1"', 1_750_000_000)]


def api_costs() -> dict[int, list[dict]]:
    """September to November 2025: two costs a day, 5 Oct idle, one project archived."""
    costs: dict[int, list[dict]] = {}
    for month in ("2025-09", "2025-10", "2025-11"):
        for day in month_days(month):
            if day == date(2025, 10, 5):
                continue
            costs[unix_of(day)] = [
                result(number("0.8958740000000000"), "gpt-4o-2024-08-06, input", "proj_live"),
                result("0.0600", "gpt-4o-2024-08-06, output", "proj_old"),
            ]
    return costs


def api_tap(
    monkeypatch, openai, today: date, state: dict | None, catalog: dict | None = None, **config
) -> TapOpenAICosts:
    """The tap in process on the fake OpenAI, with ``today`` as its current UTC date (and
    the streams a catalog selects, if one is given)."""
    monkeypatch.setattr(CostsStream, "today", lambda self: today)
    return TapOpenAICosts(
        catalog=catalog,
        config={
            "source": "api",
            "admin_api_key": KEY,
            "organization_id": ORG,
            "organization_name": "Acme, Inc.",
            "api_base_url": openai.url,
            **config,
        },
        state=state,
        parse_env_config=False,
    )


def run_api_tap(monkeypatch, capsys, openai, today: date, state: dict | None = None, **config):
    """Run the tap to its end: its RECORD messages and the last state it wrote."""
    api_tap(monkeypatch, openai, today, state, **config).sync_all()
    messages = [
        json.loads(line, parse_float=Decimal) for line in capsys.readouterr().out.splitlines()
    ]
    records = [m for m in messages if m["type"] == "RECORD"]
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    return records, states[-1]
