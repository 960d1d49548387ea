"""Throughput and peak memory of tap-openai-costs reading a big month from the Costs API.

    .venv/bin/python bench/api_month.py [--rows 1000000] [--month YYYY-MM]

Starts the fake of OpenAI's Costs API (local_sandboxes.openai_costs_api, installed by
`make install`) on 127.0.0.1, serving ``--rows``
cost results spread over the days of ``--month`` (default: the previous UTC month, so the
tap reads it and the current month, whose full days are idle). The results are generated
a day at a time when a page is asked for: neither the fake nor this script ever holds the
month. Then runs the tap as its own OS process (``source: api``, ``api_base_url`` the fake,
RECORD messages to /dev/null, logs to a temporary file) and prints one JSON line: rows,
wall seconds, rows/s, the tap's own CPU seconds, its peak RSS in MiB, its exit status, the
rows the tap says it wrote, and the issue's memory goal (200 MB).

Rows/s covers the whole tap run: fetching the month from the fake (whose time to build and
send each page is included), writing the export file, validating it and emitting every
row as a RECORD; the tap's CPU seconds leave the fake out. Peak RSS is the tap process's
own ``ru_maxrss`` from ``os.wait4`` (the kernel's high-water mark, KiB on Linux): nothing
sampled, the fake (in this process) not included.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from local_sandboxes.openai_costs_api import FakeOpenAI, number, project, result
from openai_costs.export import month_days, unix_of
from tap_openai_costs.costs_api import previous_month

REPO = Path(__file__).resolve().parents[1]

UTC = timezone.utc  # datetime.UTC needs Python 3.11

KEY = "sk-admin-bench-not-a-secret"
ORGANIZATION_ID = "org-bench"
ORGANIZATION_NAME = "Bench Labs, Inc."
GOAL_PEAK_RSS_MB = 200.0
MiB = 1024 * 1024
PROJECTS = 500
LINE_ITEMS = tuple(
    f"{model}, {kind}"
    for model in (
        "gpt-4o-2024-08-06",
        "gpt-4o-mini-2024-07-18",
        "gpt-4.1-2025-04-14",
        "gpt-4.1-mini-2025-04-14",
        "gpt-5-2025-08-07",
        "gpt-5-mini-2025-08-07",
        "o3-2025-04-16",
        "o4-mini-2025-04-16",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "gpt-image-1",
        "gpt-realtime-2025-08-28",
        "whisper-1",
        "tts-1",
        "computer-use-preview",
        "codex-mini-latest",
    )
    for kind in ("input", "cached input", "output", "batch input", "batch output")
)  # 80 line items: 500 x 80 = 40,000 distinct rows a day at most


class LazyMonth:
    """A day's results, made when the fake asks for that day; other days are idle."""

    def __init__(self, month: str, rows: int) -> None:
        days = month_days(month)
        per_day, extra = divmod(rows, len(days))
        if per_day + 1 > PROJECTS * len(LINE_ITEMS):
            raise SystemExit(f"--rows {rows} is more than {PROJECTS * len(LINE_ITEMS)} a day")
        self.counts = {unix_of(d): per_day + (i < extra) for i, d in enumerate(days)}

    def __call__(self, start: int) -> Iterator[dict[str, Any]]:
        for i in range(self.counts.get(start, 0)):
            project_number, item = divmod(i, len(LINE_ITEMS))
            seed = (start // 86_400 * 7919 + i * 104_729) % 1_000_000_007
            if i % 3 == 0:  # a JSON string with trailing zeros kept
                amount: Any = f"{seed % 1000}.{seed % 10**8:08d}0000"
            elif i % 50 == 1:  # a float's repr with an exponent, as JSON number text
                amount = number(f"{seed % 9 + 1}.{seed % 97}e-05")
            else:
                amount = number(f"{seed % 100}.{seed % 10**6:06d}")
            yield result(
                amount,
                LINE_ITEMS[item],
                f"proj_{project_number:04d}" if project_number else None,
                quantity=number(str(seed % 5_000_000)),
                quantity_unit="tokens",
                api_key_id=f"key_{seed % 40:02d}",
            )


def run_tap(fake_url: str, month: str, work: Path) -> dict[str, Any]:
    config = {
        "source": "api",
        "admin_api_key": KEY,
        "organization_id": ORGANIZATION_ID,
        "organization_name": ORGANIZATION_NAME,
        "api_base_url": fake_url,
        "start_month": month,
    }
    config_path = work / "config.json"
    config_path.write_text(json.dumps(config))
    log = work / "tap.log"
    argv = [str(REPO / ".venv" / "bin" / "tap-openai-costs"), "--config", str(config_path)]
    with Path(os.devnull).open("wb") as devnull, log.open("wb") as stderr:
        started = time.perf_counter()
        popen = subprocess.Popen(argv, stdout=devnull, stderr=stderr)
        _, status, usage = os.wait4(popen.pid, 0)
        seconds = time.perf_counter() - started
    popen.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    text = log.read_text(encoding="utf-8", errors="replace")
    written = re.search(rf"read {month} from the OpenAI Costs API: \d+ day\(s\), (\d+) row", text)
    return {
        "seconds": seconds,
        "peak_rss_mb": usage.ru_maxrss * 1024 / MiB,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "returncode": popen.returncode,
        "rows_written": int(written.group(1)) if written else None,
        "log_tail": text.splitlines()[-5:] if popen.returncode else [],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--month", default=previous_month(datetime.now(UTC).date()))
    args = parser.parse_args()
    projects = [project(f"proj_{n:04d}", f"Project {n}, team {n % 7}") for n in range(PROJECTS)]
    costs = LazyMonth(args.month, args.rows)
    with (
        FakeOpenAI(costs, projects, KEY) as fake,
        tempfile.TemporaryDirectory(prefix="api-month-") as work,
    ):
        figures = run_tap(fake.url, args.month, Path(work))
        requests = len(fake.requests)
    figures = {
        "bench": "api_month",
        "month": args.month,
        "rows": args.rows,
        "seconds": round(figures["seconds"], 2),
        "rows_per_s": round(args.rows / figures["seconds"]),
        "tap_cpu_seconds": round(figures["cpu_seconds"], 2),
        "peak_rss_mb": round(figures["peak_rss_mb"], 1),
        "goal_peak_rss_mb": GOAL_PEAK_RSS_MB,
        "within_goal": figures["peak_rss_mb"] <= GOAL_PEAK_RSS_MB,
        "requests": requests,
        "returncode": figures["returncode"],
        "rows_written": figures["rows_written"],
        **({"log_tail": figures["log_tail"]} if figures["log_tail"] else {}),
    }
    print(json.dumps(figures))
    ok = figures["returncode"] == 0 and figures["rows_written"] == args.rows
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
