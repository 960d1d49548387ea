"""Peak memory of a first-time backfill: many small monthly exports, every seal at the end.

    .venv/bin/python bench/backfill_memory.py [--months 120] [--rows-per-day 1]

Writes one export per month (``--months`` months ending 2025-10, ``--rows-per-day`` cost
rows a day, so about 30 rows a month by default) into ``bench/data/backfill-<months>/``,
then runs, as separate OS processes, the tap alone (BATCH files, as ``meltano.yml``
configures it), the target alone (``dry_run``) on the tap's output, and both piped. A
first-time backfill drafts every month while the files are validated and seals them all
at the end, so anything kept per month until its seal shows here, not in ``run.py``'s one
big month. Prints a table and one JSON line; exit status 1 if a process failed or peak RSS
is above 200 MB. Peak RSS is each process's own ``ru_maxrss`` (``os.wait4``), as in
``run.py``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_export import ORGANIZATION_ID, ORGANIZATION_NAME
from run import (
    DATA,
    GOAL_PEAK_RSS_MB,
    Command,
    Stage,
    bin_of,
    fresh_dir,
    project_bin,
    run_pipeline,
    write_json,
)

from openai_costs.export import CURRENT_COLUMNS, iso_of, month_days, unix_of, upload_filename

LAST_MONTH = date(2025, 10, 1)


def months_back(count: int) -> list[str]:
    """``count`` months ending with LAST_MONTH, oldest first."""
    index = LAST_MONTH.year * 12 + LAST_MONTH.month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count + 1, index + 1)]


def write_month(month: str, rows_per_day: int, folder: Path) -> int:
    """One month's export in the current layout; returns its row count."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CURRENT_COLUMNS)
    rows = 0
    for day in month_days(month):
        start = unix_of(day)
        for n in range(rows_per_day):
            values = {
                "start_time": str(start),
                "end_time": str(start + 86_400),
                "start_time_iso": iso_of(start),
                "end_time_iso": iso_of(start + 86_400),
                "amount_value": f"0.{day.day:02d}{n:04d}5",
                "amount_currency": "usd",
                "line_item": f"gpt-4o-2024-08-06, {'input' if n % 2 == 0 else 'output'}",
                "project_id": f"proj_{n // 2:04d}",
                "organization_id": ORGANIZATION_ID,
                "project_name": f"Project {n // 2}",
                "organization_name": ORGANIZATION_NAME,
            }
            writer.writerow([values.get(column, "") for column in CURRENT_COLUMNS])
            rows += 1
    (folder / upload_filename(month)).write_text(buffer.getvalue(), encoding="utf-8")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--months", type=int, default=120)
    parser.add_argument("--rows-per-day", type=int, default=1)
    args = parser.parse_args(argv)

    work = fresh_dir(DATA / f"backfill-{args.months}")
    exports = fresh_dir(work / "exports")
    rows = sum(write_month(m, args.rows_per_day, exports) for m in months_back(args.months))
    print(f"wrote {args.months} monthly exports, {rows:,} rows: {exports}", file=sys.stderr)

    venv_bin = project_bin()
    tap, target = bin_of(venv_bin, "tap-openai-costs"), bin_of(venv_bin, "target-pelanor")
    tap_config = write_json(
        work / "tap.json",
        {
            "paths": [str(exports)],
            "organization_id": ORGANIZATION_ID,
            "batch_config": {
                "encoding": {"format": "jsonl", "compression": "none"},
                "storage": {"root": fresh_dir(work / "batches").as_uri()},
            },
        },
    )

    def target_command(name: str, stdin: Path | None = None) -> Command:
        output = fresh_dir(work / f"out-{name}")
        config = {"organization_id": ORGANIZATION_ID, "dry_run": True, "output_dir": str(output)}
        argv = [target, "--config", str(write_json(work / f"{name}.target.json", config))]
        return Command("target", argv, stdin=stdin)

    messages = work / "tap-output.singer"
    logs = work / "logs"
    tap_command = [tap, "--config", str(tap_config)]
    stages: list[Stage] = []
    for name, commands in (
        ("tap", [Command("tap", tap_command, stdout=messages)]),
        ("target", [target_command("target", stdin=messages)]),
        ("e2e", [Command("tap", tap_command), target_command("e2e")]),
    ):
        print(f"[backfill {args.months} months] {name} ...", file=sys.stderr)
        stage = run_pipeline(name, commands, rows, logs)
        if name != "tap":
            stage.checks["months_written"] = len(list((work / f"out-{name}").glob("*.csv")))
        stages.append(stage)

    header = f"{'stage':<8} {'rows':>7} {'seconds':>8}  peak RSS MiB per process"
    print(header)
    print("-" * (len(header) + 16))
    for stage in stages:
        rss = ", ".join(f"{p.name} {p.peak_rss_mb:.0f}" for p in stage.processes)
        flag = "" if stage.ok else "  [FAILED]"
        print(f"{stage.name:<8} {stage.rows:>7,} {stage.seconds:>8.2f}  {rss}{flag}")
    peak = max(p.peak_rss_mb for stage in stages for p in stage.processes)
    within = peak <= GOAL_PEAK_RSS_MB
    figures = {
        "months": args.months,
        "rows": rows,
        "stages": {stage.name: stage.to_dict() for stage in stages},
        "peak_rss_mb": round(peak, 1),
        "goals": {"peak_rss_each_process_at_most_200mb": within},
        "all_ok": all(stage.ok for stage in stages),
    }
    print()
    print(json.dumps(figures, separators=(",", ":")))
    return 0 if figures["all_ok"] and within else 1


if __name__ == "__main__":
    sys.exit(main())
