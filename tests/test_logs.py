"""Logs a person can follow: files as they are read, months as they are sealed, written and
uploaded, and user errors at error level when Meltano runs the plugins."""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from datetime import date
from pathlib import Path

from tap_openai_costs.progress import ReadProgress
from tests.exports import ORG, SAMPLES, cost, export, write
from tests.singer import run_tap, run_target, tap_output, target_config

SEPTEMBER = SAMPLES / "acme" / "cost_2025-09-01_2025-09-30.csv"
OCT1 = date(2025, 10, 1)
#: The logging configuration Meltano hands a plugin with structured logging (its
#: SINGER_SDK_LOG_CONFIG file): JSON lines on stderr, each with its level.
MELTANO_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"singer_formatter": {"()": "singer_sdk.logging.StructuredFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "singer_formatter",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["console"], "level": "INFO"},
}


def messages(stderr: str) -> list[str]:
    """The messages of the SDK's plain log lines (``time | LEVEL | logger | message``)."""
    return [line.split(" | ", 3)[3] for line in stderr.splitlines() if line.count(" | ") >= 3]


def test_a_long_file_shows_progress_about_every_ten_seconds(caplog) -> None:
    ticks = iter(range(0, 1000, 3))  # each look at the clock: 3 s later

    def rows() -> Generator[int, None, str]:
        yield from range(20_000)
        return "the scan"

    watch = ReadProgress(logging.getLogger("test-progress"), clock=lambda: next(ticks))
    with caplog.at_level(logging.INFO, logger="test-progress"):
        result: list[str] = []
        passed = list(_drain_into(watch(Path("big.csv"), rows()), result))
    assert len(passed) == 20_000
    assert result == ["the scan"]  # the scan a generator returns passes through
    # The clock is read at the start and every 4,096 rows (3 s later each time): a line
    # once 10 s have passed since the last, then the end.
    assert [r.getMessage() for r in caplog.records] == [
        "reading big.csv",
        "reading big.csv: 16,384 rows so far in 12.0 s, 1,365 rows/s",
        "read big.csv: 20,000 rows in 15.0 s, 1,333 rows/s",
    ]


def _drain_into(generator: Generator[int, None, str], result: list[str]):
    """Yield every row, then keep what the generator returned."""
    result.append((yield from generator))


def test_the_tap_logs_each_file_and_each_sealed_month(tmp_path) -> None:
    result = run_tap(tmp_path, {"paths": [str(SEPTEMBER)], "organization_id": ORG})
    assert result.returncode == 0, result.stderr
    logged = messages(result.stderr)
    assert "Beginning sync of 'costs', incremental by month" in logged
    assert not [m for m in logged if "full_table" in m]
    assert f"reading {SEPTEMBER}" in logged
    assert [m for m in logged if m.startswith(f"read {SEPTEMBER}: 409 rows in ")]
    assert "sealed org-acme 2025-09: 409 rows, 566.15973238589393446 USD, complete" in logged


def test_the_target_logs_each_month_written_and_uploaded(tmp_path, pelanor) -> None:
    result = run_target(tmp_path, target_config(pelanor), tap_output(tmp_path, SEPTEMBER))
    assert result.returncode == 0, result.stderr
    logged = messages(result.stderr)
    written = "org-acme 2025-09: written and checked, 409 rows, 566.15973238589393446 USD; sending"
    assert written in logged
    assert "org-acme 2025-09: uploaded" in logged
    assert logged.index(written) < logged.index("org-acme 2025-09: uploaded")


def test_user_errors_are_logged_at_error_level_when_meltano_runs_the_plugin(tmp_path) -> None:
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(MELTANO_LOG_CONFIG))
    bad = write(tmp_path / "eur.csv", export([cost(OCT1, amount_currency="EUR")]))
    result = run_tap(
        tmp_path,
        {"paths": [str(bad)], "organization_id": ORG},
        env={"SINGER_SDK_LOG_CONFIG": str(config)},
    )
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    errors = [(line["level"], line["message"]) for line in lines if line["level"] == "error"]
    assert errors == [
        (
            "error",
            f"tap-openai-costs: error: {bad}: row 2: amount_currency is 'EUR', but Pelanor "
            "accepts USD only",
        )
    ]
