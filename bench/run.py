"""Throughput and peak memory of tap-openai-costs and target-pelanor, against a floor and a peer.

    .venv/bin/python bench/run.py [--rows 1000000] [--also-rows 3000000] [--peer-rows N]
        [--skip-peers] [--daily-rows 150000] [--skip-daily] [--only-daily] [--skip-api]
        [--repeat 1]

Generates a realistic one-month export (bench/generate_export.py) into bench/data/, then
runs each stage as separate OS processes and reports wall time, rows/s and the peak RSS of
every process:

- tap        tap-openai-costs writing its Singer messages to a file (rows in BATCH files)
- target     target-pelanor (dry_run, output_dir) reading that file
- e2e        tap-openai-costs | target-pelanor, piped
- tap-records, target-records, e2e-records
             the same three with every row a RECORD message (no batch_config)
- floor      bench/csv_copy.py: Python's csv module reading and writing the same file
- peers      tap-spreadsheets | target-csv (MeltanoLabs), the generic SDK pair, piped
- daily-*    the daily run over 12 monthly exports (``--daily-rows`` each): the first-time
             backfill, then with its state an unchanged run, the same with the weekly content
             check due, and a run with one month's export replaced; tap | target, piped
- api-month  bench/api_month.py: the Costs API source on a 1M-row month

It checks that the month file target-pelanor writes is byte-identical to the input, prints a
table, then one JSON line with every figure, the ratios and the issue's goals. With
``--repeat N`` the one-month stages and the floor run N times, taking turns, and each
stage's figures are those of its median run (its seconds of every run are kept in the JSON).

How peak RSS is measured: each process is started with subprocess.Popen and reaped with
``os.wait4(pid)``, which returns that one process's ``struct rusage``; its ``ru_maxrss`` is
the kernel's high-water mark of the process's resident set (KiB on Linux), kept until exit.
Nothing is sampled, so a short spike cannot be missed, and in a pipeline every process is
reaped (and so measured) on its own. The figure is the peak of the process itself (plus any
children it reaped, of which these have none); the benchmark's own memory is not included.
"""

from __future__ import annotations

import argparse
import compileall
import filecmp
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_export import ORGANIZATION_ID, generate

from openai_costs.export import upload_filename

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
DATA = BENCH / "data"
PEERS = BENCH / ".peers-venv"
PEER_PACKAGES = ("tap-spreadsheets", "meltanolabs-target-csv")
MONTH = "2025-10"
MiB = 1024 * 1024
#: The daily run's history: twelve monthly exports, 2024-11 to 2025-10.
DAILY_MONTHS = tuple(f"{2024 + (10 + i) // 12}-{(10 + i) % 12 + 1:02d}" for i in range(12))
DAILY_CHANGED = "2025-04"  # the month whose export is replaced for the "one changed" run

# The goals.
GOAL_E2E_ROWS_PER_S = 50_000
GOAL_VS_PEERS = 15.0
GOAL_PEAK_RSS_MB = 200.0
GOAL_DAILY_UNCHANGED = 0.10  # of the backfill's seconds
GOAL_DAILY_ONE_CHANGED = 0.25
FLAT_TOLERANCE = 0.10  # "flat": the bigger month's peak at most 10% above the smaller's
# The RECORD path's goals, as a stage's seconds over the floor's seconds in the same run.
GOAL_E2E_RECORDS_VS_FLOOR = 3.0
GOAL_E2E_BATCH_VS_FLOOR = 2.0
GOAL_RECORDS_SPEEDUP = 1.7  # tap and target alone, each, against --before's
GOAL_RECORDS_PEAK_RSS_MB = 64.0


@dataclass
class Process:
    """One finished OS process of a stage."""

    name: str
    returncode: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    stderr: Path

    def error_tail(self, lines: int = 8) -> str:
        text = self.stderr.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class Stage:
    name: str
    rows: int
    seconds: float
    processes: list[Process]
    note: str = ""
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(p.returncode == 0 for p in self.processes)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def peak_rss_mb(self) -> float:
        return max(p.peak_rss_mb for p in self.processes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s),
            "ok": self.ok,
            "processes": {
                p.name: {
                    "peak_rss_mb": round(p.peak_rss_mb, 1),
                    "seconds": round(p.seconds, 3),
                    "cpu_seconds": round(p.cpu_seconds, 3),
                    "returncode": p.returncode,
                }
                for p in self.processes
            },
            **({"note": self.note} if self.note else {}),
            **self.checks,
        }


@dataclass
class Command:
    """A process to start: argv, where its stdin comes from and its stdout goes."""

    name: str
    argv: list[str]
    stdin: Path | None = None  # None: from the previous command's stdout (or nothing)
    stdout: Path | None = None  # None: into the next command's stdin (or discarded)
    env: dict[str, str] | None = None  # added to this process's environment


def run_pipeline(stage: str, commands: list[Command], rows: int, logs: Path) -> Stage:
    """Start the commands as one pipeline, wait for all, measure each process."""
    logs.mkdir(parents=True, exist_ok=True)
    # Earlier stages leave up to a gigabyte of dirty pages (the export, batch files kept for
    # the target-alone run): flush them now, so this stage does not pay for their writeback.
    os.sync()
    opened: list[IO[bytes]] = []
    popens: list[tuple[Command, subprocess.Popen[bytes], Path]] = []
    started = time.perf_counter()
    previous_stdout: IO[bytes] | None = None
    for index, command in enumerate(commands):
        last = index == len(commands) - 1
        if command.stdin is not None:
            stdin: Any = command.stdin.open("rb")
            opened.append(stdin)
        else:
            stdin = previous_stdout if previous_stdout is not None else subprocess.DEVNULL
        if command.stdout is not None:
            stdout: Any = command.stdout.open("wb")
            opened.append(stdout)
        else:
            stdout = subprocess.DEVNULL if last else subprocess.PIPE
        stderr_path = logs / f"{stage}.{command.name}.stderr.log"
        stderr = stderr_path.open("wb")
        opened.append(stderr)
        env = None if command.env is None else os.environ | command.env
        popen = subprocess.Popen(command.argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env)
        if previous_stdout is not None:
            previous_stdout.close()  # only the child holds the pipe: it sees EOF / EPIPE
        previous_stdout = popen.stdout
        popens.append((command, popen, stderr_path))

    finished: dict[int, tuple[int, Any, float]] = {}

    def reap(pid: int) -> None:
        _, status, usage = os.wait4(pid, 0)
        finished[pid] = (status, usage, time.perf_counter())

    waiters = [threading.Thread(target=reap, args=(p.pid,)) for _, p, _ in popens]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    seconds = time.perf_counter() - started
    for handle in opened:
        handle.close()

    processes = []
    for command, popen, stderr_path in popens:
        status, usage, ended = finished[popen.pid]
        popen.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        processes.append(
            Process(
                name=command.name,
                returncode=popen.returncode,
                seconds=ended - started,
                cpu_seconds=usage.ru_utime + usage.ru_stime,
                peak_rss_mb=usage.ru_maxrss * 1024 / MiB,
                stderr=stderr_path,
            )
        )
    return Stage(stage, rows, seconds, processes)


def bin_of(venv_bin: Path, name: str) -> str:
    candidate = venv_bin / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        msg = f"{name} not found in {venv_bin} or on PATH; install the repo (pip install -e .)"
        raise SystemExit(msg)
    return found


def plugin_command(name: str, code: Path | None) -> list[str]:
    """The command line that starts plugin ``name``: this version's console script, or,
    for another version's folder, that version's own entry point (its pyproject.toml's
    ``[project.scripts]``) run by this venv's Python, so each version starts as its users'
    installs do."""
    if code is None:
        return [bin_of(project_bin(), name)]
    pyproject = (code / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(rf'^{re.escape(name)} = "([\w.]+):([\w.]+)"$', pyproject, re.MULTILINE)
    if declared is None:
        raise SystemExit(f"--before {code}: its pyproject.toml declares no {name} command")
    module, attribute = declared.groups()
    start = (
        f"import functools, importlib, sys; sys.argv[0] = {name!r}; "
        f"sys.exit(functools.reduce(getattr, {attribute!r}.split('.'), "
        f"importlib.import_module({module!r}))())"
    )
    return [str(project_bin() / "python"), "-c", start]


def project_bin() -> Path:
    """The repo's venv (where tap-openai-costs is installed), else this interpreter's."""
    venv = REPO / ".venv" / "bin"
    return venv if (venv / "tap-openai-costs").exists() else Path(sys.executable).parent


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def make_export(rows: int, seed: int) -> Path:
    """bench/data/export-<rows>/cost_2025-10-01_2025-10-31.csv, regenerated each run."""
    path = DATA / f"export-{rows}" / upload_filename(MONTH)
    started = time.perf_counter()
    generate(rows, MONTH, path, seed)
    size = path.stat().st_size / MiB
    print(
        f"generated {rows:,} rows ({size:,.0f} MiB) in {time.perf_counter() - started:.1f} s: "
        f"{path.relative_to(REPO)}",
        file=sys.stderr,
    )
    return path


class Ours:
    """tap-openai-costs and target-pelanor on one export.

    ``batch`` (the default, as meltano.yml sets it for target-pelanor) moves rows in BATCH
    files; without it every row is a RECORD message, the plain Singer path. ``code``: run
    the plugins' code from this folder instead (``PYTHONPATH``; see :func:`check_code`).
    """

    def __init__(
        self, export: Path, rows: int, work: Path, batch: bool = True, code: Path | None = None
    ) -> None:
        self.export = export
        self.rows = rows
        self.work = work
        self.env = None if code is None else {"PYTHONPATH": str(code)}
        self.tap = plugin_command("tap-openai-costs", code)
        self.target = plugin_command("target-pelanor", code)
        config: dict[str, Any] = {"paths": [str(export)], "organization_id": ORGANIZATION_ID}
        if batch:
            config["batch_config"] = {
                "encoding": {"format": "jsonl", "compression": "none"},
                "storage": {"root": fresh_dir(work / "batches").as_uri()},
            }
        self.tap_config = write_json(work / f"tap-{'batch' if batch else 'records'}.json", config)

    def target_config(self, output_dir: Path) -> Path:
        config = {
            "organization_id": ORGANIZATION_ID,
            "dry_run": True,
            "output_dir": str(output_dir),
        }
        return write_json(output_dir.parent / f"{output_dir.name}.target.json", config)

    def identical(self, output_dir: Path) -> bool:
        """Whether the one month file written equals the input; kept on disk only if not.
        Taken by content, not name: a version run with --before may name files otherwise
        (before 2026-12, by the day after the month)."""
        written = list(output_dir.glob("*.csv")) if output_dir.exists() else []
        same = len(written) == 1 and filecmp.cmp(written[0], self.export, shallow=False)
        if same:
            written[0].unlink()
        return same

    def tap_alone(self, messages: Path, name: str = "tap") -> Stage:
        tap = Command(
            "tap", [*self.tap, "--config", str(self.tap_config)], stdout=messages, env=self.env
        )
        stage = run_pipeline(name, [tap], self.rows, self.work / "logs")
        stage.checks["singer_mib"] = round(messages.stat().st_size / MiB, 1)
        return stage

    def target_alone(self, messages: Path, name: str = "target") -> Stage:
        output = fresh_dir(self.work / f"out-{name}")
        argv = [*self.target, "--config", str(self.target_config(output))]
        target = Command("target", argv, stdin=messages, env=self.env)
        stage = run_pipeline(name, [target], self.rows, self.work / "logs")
        stage.checks["byte_identical"] = self.identical(output)
        return stage

    def end_to_end(self, name: str = "e2e") -> Stage:
        output = fresh_dir(self.work / f"out-{name}")
        tap = Command("tap", [*self.tap, "--config", str(self.tap_config)], env=self.env)
        target_argv = [*self.target, "--config", str(self.target_config(output))]
        target = Command("target", target_argv, env=self.env)
        stage = run_pipeline(name, [tap, target], self.rows, self.work / "logs")
        stage.checks["byte_identical"] = self.identical(output)
        return stage


class Daily:
    """The scheduled daily run over a year of monthly exports, after its first backfill.

    Every run is ``tap-openai-costs | tee | target-pelanor`` (dry_run, output_dir): ``tee``
    keeps the tap's messages (a few KiB with BATCH files) for the checks and for the state
    the next run starts from, since a dry run confirms no state.
    """

    def __init__(self, rows_per_month: int, seed: int) -> None:
        self.rows_per_month = rows_per_month
        self.seed = seed
        self.work = DATA / f"daily-{rows_per_month}"
        self.exports = fresh_dir(self.work / "exports")
        venv_bin = project_bin()
        self.tap = bin_of(venv_bin, "tap-openai-costs")
        self.target = bin_of(venv_bin, "target-pelanor")
        self.tee = shutil.which("tee") or "tee"
        config = {
            "paths": [str(self.exports)],
            "organization_id": ORGANIZATION_ID,
            "batch_config": {
                "encoding": {"format": "jsonl", "compression": "none"},
                "storage": {"root": fresh_dir(self.work / "batches").as_uri()},
            },
        }
        self.tap_config = write_json(self.work / "tap.json", config)

    def generate(self) -> None:
        started = time.perf_counter()
        for index, month in enumerate(DAILY_MONTHS):
            generate(self.rows_per_month, month, self.path_of(month), self.seed + index)
        size = sum(p.stat().st_size for p in self.exports.iterdir()) / MiB
        print(
            f"generated {len(DAILY_MONTHS)} monthly exports of {self.rows_per_month:,} rows "
            f"({size:,.0f} MiB) in {time.perf_counter() - started:.1f} s: "
            f"{self.exports.relative_to(REPO)}",
            file=sys.stderr,
        )

    def path_of(self, month: str) -> Path:
        return self.exports / upload_filename(month)

    def run(self, name: str, state: Path | None, rows: int) -> tuple[Stage, Path]:
        """One run; returns the stage and the state it ended with."""
        output = fresh_dir(self.work / f"out-{name}")
        messages = self.work / f"{name}.singer"
        tap_argv = [self.tap, "--config", str(self.tap_config)]
        if state is not None:
            tap_argv += ["--state", str(state)]
        target_config = {
            "organization_id": ORGANIZATION_ID,
            "dry_run": True,
            "output_dir": str(output),
        }
        target_argv = [
            self.target,
            "--config",
            str(write_json(self.work / f"{name}.target.json", target_config)),
        ]
        stage = run_pipeline(
            name,
            [
                Command("tap", tap_argv),
                Command("tee", [self.tee, str(messages)]),
                Command("target", target_argv),
            ],
            rows,
            self.work / "logs",
        )
        sealed, costs_messages, last_state = _read_messages(messages)
        stage.checks["sealed"] = sealed
        stage.checks["costs_messages"] = costs_messages
        written = sorted(p.name for p in output.iterdir())
        stage.checks["byte_identical"] = written == [upload_filename(m) for m in sealed] and all(
            filecmp.cmp(output / name, self.exports / name, shallow=False) for name in written
        )
        shutil.rmtree(output)
        return stage, write_json(self.work / f"{name}.state.json", last_state)

    def measure(self) -> list[Stage]:
        self.generate()
        history = self.rows_per_month * len(DAILY_MONTHS)
        print("[daily] backfill of 12 months ...", file=sys.stderr)
        backfill, state = self.run("daily-backfill", None, history)
        print("[daily] unchanged run ...", file=sys.stderr)
        unchanged, _ = self.run("daily-unchanged", state, 0)
        print("[daily] unchanged run, weekly content check due ...", file=sys.stderr)
        checked, _ = self.run("daily-content-check", _check_due(state), 0)
        # One month's export replaced by a new download with other figures.
        generate(self.rows_per_month, DAILY_CHANGED, self.path_of(DAILY_CHANGED), self.seed + 99)
        print(f"[daily] one changed month ({DAILY_CHANGED}) ...", file=sys.stderr)
        one_changed, _ = self.run("daily-one-changed", state, self.rows_per_month)
        stages = [backfill, unchanged, checked, one_changed]
        for stage in stages[1:]:
            fraction = stage.seconds / backfill.seconds
            stage.checks["fraction_of_backfill"] = round(fraction, 3)
            stage.note = f"{fraction:.1%} of the backfill"
        return stages


def _read_messages(path: Path) -> tuple[list[str], int, dict[str, Any]]:
    """The months sealed, the ``costs`` RECORD and BATCH messages, and the last state."""
    sealed: list[str] = []
    costs = 0
    state: dict[str, Any] = {}
    with path.open("rb") as lines:
        for line in lines:
            message = json.loads(line)
            kind, stream = message.get("type"), message.get("stream")
            if kind == "STATE":
                state = message["value"]
            elif stream == "costs" and kind in {"RECORD", "BATCH"}:
                costs += 1
            elif stream == "cost_months" and kind == "RECORD":
                sealed.append(message["record"]["month"])
    path.unlink()
    return sealed, costs, state


def _check_due(state_path: Path) -> Path:
    """The state as it is a week after the backfill: every file's content check is due."""
    state = json.loads(state_path.read_text(encoding="utf-8"))
    for record in state["bookmarks"]["costs"].get("files", {}).values():
        record["hashed"] = "2000-01-01"
    return write_json(state_path.with_name("check-due.state.json"), state)


def api_month(work: Path) -> Stage:
    """bench/api_month.py's figures (the Costs API source on a 1M-row month).

    The script prints one JSON line (its last line) with ``rows``, ``seconds``,
    ``rows_per_s`` and ``peak_rss_mb``; anything else in it is kept in the JSON line.
    """
    script = BENCH / "api_month.py"
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stderr = logs / "api-month.stderr.log"
    with stderr.open("wb") as errors:
        done = subprocess.run(
            [str(project_bin() / "python"), str(script)],
            stdout=subprocess.PIPE,
            stderr=errors,
            check=False,
        )
    lines = done.stdout.decode("utf-8", errors="replace").strip().splitlines()
    try:
        figures = json.loads(lines[-1])
    except (IndexError, ValueError):
        figures = {}
    rows = int(figures.get("rows") or 0)
    rows_per_s = float(figures.get("rows_per_s") or 0)
    seconds = float(figures.get("seconds") or (rows / rows_per_s if rows_per_s else 0))
    peak = float(figures.get("peak_rss_mb") or 0)
    process = Process("tap", done.returncode, seconds, 0.0, peak, stderr)
    stage = Stage("api-month", rows, seconds, [process])
    stage.checks["api_month"] = figures
    return stage


def floor(export: Path, rows: int, work: Path) -> Stage:
    copy = work / "floor-copy.csv"
    argv = [str(project_bin() / "python"), str(BENCH / "csv_copy.py"), str(export), str(copy)]
    stage = run_pipeline("floor", [Command("csv_copy", argv)], rows, work / "logs")
    stage.checks["byte_identical"] = filecmp.cmp(copy, export, shallow=False)
    if stage.checks["byte_identical"]:
        copy.unlink()
    return stage


def ensure_peers() -> dict[str, Path]:
    """One venv per peer under bench/.peers-venv/, as Meltano installs each plugin alone
    (in one shared venv pip would have to pick an older target-csv for tap-spreadsheets'
    singer-sdk pin)."""
    bins = {}
    for package in PEER_PACKAGES:
        venv = PEERS / package
        if not (venv / "bin" / "pip").exists():
            print(f"creating {venv.relative_to(REPO)} (pip install {package})", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        probe = subprocess.run(
            [str(python), "-m", "pip", "show", "-q", package], capture_output=True, check=False
        )
        if probe.returncode != 0:
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", package],
                check=True,
            )
        bins[package] = venv / "bin"
    return bins


def peer_version(venv_bin: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    result = subprocess.run(
        [str(venv_bin / "python"), "-c", code], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "?"


def peers(export: Path, rows: int, work: Path) -> Stage:
    bins = ensure_peers()
    tap_bin, target_bin = bins["tap-spreadsheets"], bins["meltanolabs-target-csv"]
    output = fresh_dir(work / "out-peers")
    file_config = {
        "path": str(export),
        "format": "csv",
        "table_name": "costs",
        "delimiter": ",",
        "quotechar": '"',  # the README's name
        "quote_char": '"',  # the name 1.1.2's code reads
    }
    tap_config = write_json(work / "peers-tap.json", {"files": [file_config]})
    target_config = write_json(
        work / "peers-target.json",
        {"output_path": str(output), "file_naming_scheme": "{stream_name}.csv"},
    )
    tap = Command(
        "tap-spreadsheets", [str(tap_bin / "tap-spreadsheets"), "--config", str(tap_config)]
    )
    target = Command("target-csv", [str(target_bin / "target-csv"), "--config", str(target_config)])
    stage = run_pipeline("peers", [tap, target], rows, work / "logs")
    written = output / "costs.csv"
    stage.checks["rows_written"] = _count_lines(written) - 1 if written.exists() else 0
    stage.checks["versions"] = {
        "tap-spreadsheets": peer_version(tap_bin, "tap-spreadsheets"),
        "meltanolabs-target-csv": peer_version(target_bin, "meltanolabs-target-csv"),
    }
    return stage


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def measure_ours(
    rows: int, seed: int, label: str, repeat: int = 1, before: Path | None = None
) -> tuple[Path, list[Stage]]:
    """tap alone, target alone and end to end on a fresh export of ``rows`` rows; at the
    main size (no ``label``) the same three with RECORD messages, and the floor, too;
    with ``before`` (a folder with another version's code) the RECORD stages of that
    version as well, each right after this version's.

    With ``repeat`` every stage runs that many times, the stages taking turns (so a busy
    moment of the machine does not fall on one stage only); each stage's figures are those
    of its median run.
    """
    export = make_export(rows, seed)
    work = DATA / f"run-{rows}"
    work.mkdir(parents=True, exist_ok=True)
    ours = Ours(export, rows, work)
    messages = work / "tap-output.singer"
    tag = label or f"@{rows}"
    runs: list[tuple[str, Callable[[], Stage]]] = [
        ("tap", lambda: ours.tap_alone(messages)),
        ("target", lambda: ours.target_alone(messages)),
        ("e2e", ours.end_to_end),
    ]
    records_messages = work / "tap-records-output.singer"
    if not label:  # the plain RECORD path and the floor, at the main size only
        versions = [("", records_stages(export, rows, work, None))]
        if before is not None:
            versions.append(("-before", records_stages(export, rows, work, before)))
        for stage_name in ("tap-records", "target-records", "e2e-records"):
            runs += [(f"{stage_name}{suffix}", runs_of[stage_name]) for suffix, runs_of in versions]
        runs.append(("floor", lambda: floor(export, rows, work)))
    measured: dict[str, list[Stage]] = {}
    for turn in range(1, repeat + 1):
        for stage_name, run in runs:
            of = f" ({turn}/{repeat})" if repeat > 1 else ""
            print(f"[{tag}] {stage_name}{of} ...", file=sys.stderr)
            measured.setdefault(stage_name, []).append(run())
    for leftover in (messages, records_messages, work / "tap-records-before-output.singer"):
        leftover.unlink(missing_ok=True)
    stages = []
    for stage_name, done in measured.items():
        stage = median_run(done)
        stage.name = stage_name if stage_name == "floor" else f"{stage_name}{label}"
        stages.append(stage)
    return export, stages


def records_stages(
    export: Path, rows: int, work: Path, code: Path | None
) -> dict[str, Callable[[], Stage]]:
    """The RECORD stages of one version (``code``: another version's folder, or None)."""
    suffix = "" if code is None else "-before"
    records = Ours(export, rows, work, batch=False, code=code)
    messages = work / f"tap-records{suffix}-output.singer"
    return {
        "tap-records": lambda: records.tap_alone(messages, f"tap-records{suffix}"),
        "target-records": lambda: records.target_alone(messages, f"target-records{suffix}"),
        "e2e-records": lambda: records.end_to_end(f"e2e-records{suffix}"),
    }


def check_code(code: Path) -> Path:
    """A folder with another version's packages, as ``git worktree add DIR COMMIT`` or
    ``git archive COMMIT | tar -x -C DIR`` leaves it; its plugins must import from it."""
    code = code.resolve()
    probe = "import tap_openai_costs, target_pelanor; print(tap_openai_costs.__file__)"
    found = subprocess.run(
        [str(project_bin() / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        cwd=str(code.parent),
        env=os.environ | {"PYTHONPATH": str(code)},
    ).stdout.strip()
    if not found.startswith(str(code)):
        raise SystemExit(f"--before {code}: no tap_openai_costs package there")
    # Its bytecode, as this version's (make bench): both start as an installed wheel does.
    for package in ("openai_costs", "tap_openai_costs", "target_pelanor"):
        compileall.compile_dir(code / package, quiet=1)
    return code


def median_run(runs: list[Stage]) -> Stage:
    """The run of median seconds (the lower of the two middle ones for an even count), with
    every run's seconds, and failures or differing output of any run kept visible."""
    if len(runs) == 1:
        return runs[0]
    ordered = sorted(runs, key=lambda stage: stage.seconds)
    median = ordered[(len(ordered) - 1) // 2]
    median.checks["runs_seconds"] = [round(stage.seconds, 3) for stage in runs]
    median.checks["runs_cpu_seconds"] = [
        round(sum(p.cpu_seconds for p in stage.processes), 3) for stage in runs
    ]
    if "byte_identical" in median.checks:
        median.checks["byte_identical"] = all(s.checks["byte_identical"] for s in runs)
    failed = next((stage for stage in runs if not stage.ok), None)
    if failed is not None:
        median.processes = failed.processes  # its exit status and log
    median.note = f"median of {len(runs)}"
    return median


def print_table(stages: list[Stage]) -> None:
    header = f"{'stage':<22} {'rows':>10} {'seconds':>9} {'rows/s':>10}  peak RSS MiB per process"
    print(header)
    print("-" * (len(header) + 24))
    for stage in stages:
        rss = ", ".join(f"{p.name} {p.peak_rss_mb:.0f}" for p in stage.processes)
        flags = []
        if "byte_identical" in stage.checks:
            flags.append(f"identical={str(stage.checks['byte_identical']).lower()}")
        if not stage.ok:
            flags.append("FAILED")
        if stage.note:
            flags.append(stage.note)
        tail = f"  [{'; '.join(flags)}]" if flags else ""
        print(
            f"{stage.name:<22} {stage.rows:>10,} {stage.seconds:>9.2f} "
            f"{stage.rows_per_s:>10,.0f}  {rss}{tail}"
        )
    for stage in stages:
        for process in stage.processes:
            if process.returncode != 0:
                print(f"\n{stage.name}/{process.name} exited {process.returncode}:")
                print(process.error_tail())


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 2) if denominator else None


def summarize(
    rows: int, stages: dict[str, Stage], also_rows: int | None, peer_rows: int | None
) -> dict[str, Any]:
    figures: dict[str, Any] = {"rows": rows, "month": MONTH} if "e2e" in stages else {}
    figures["stages"] = {name: stage.to_dict() for name, stage in stages.items()}
    ratios: dict[str, Any] = {}
    goals: dict[str, Any] = {}
    if "e2e" in stages:
        summarize_one_month(rows, stages, also_rows, peer_rows, figures, ratios, goals)
    if "daily-backfill" in stages:
        summarize_daily(stages, figures, goals)
    api = stages.get("api-month")
    figures["api_month"] = api.checks["api_month"] if api else "n/a"
    figures["ratios"] = ratios
    figures["goals"] = goals
    figures["all_ok"] = all(stage.ok for stage in stages.values()) and all(
        stage.checks.get("byte_identical", True) for stage in stages.values()
    )
    return figures


def summarize_daily(
    stages: dict[str, Stage], figures: dict[str, Any], goals: dict[str, Any]
) -> None:
    backfill = stages["daily-backfill"]
    daily: dict[str, Any] = {
        "months": len(DAILY_MONTHS),
        "rows_per_month": backfill.rows // len(DAILY_MONTHS),
        "backfill_seconds": round(backfill.seconds, 3),
    }
    for name, key in (
        ("daily-unchanged", "unchanged"),
        ("daily-content-check", "unchanged_content_check"),
        ("daily-one-changed", "one_changed_month"),
    ):
        daily[f"{key}_seconds"] = round(stages[name].seconds, 3)
        daily[f"{key}_fraction_of_backfill"] = stages[name].checks["fraction_of_backfill"]
    figures["daily"] = daily
    unchanged, one_changed = stages["daily-unchanged"], stages["daily-one-changed"]
    goals["daily_unchanged_at_most_10pct_of_backfill"] = (
        unchanged.seconds <= GOAL_DAILY_UNCHANGED * backfill.seconds
        and unchanged.checks["costs_messages"] == 0
    )
    goals["daily_one_changed_month_at_most_25pct_of_backfill"] = (
        one_changed.seconds <= GOAL_DAILY_ONE_CHANGED * backfill.seconds
        and one_changed.checks["sealed"] == [DAILY_CHANGED]
    )


def summarize_one_month(
    rows: int,
    stages: dict[str, Stage],
    also_rows: int | None,
    peer_rows: int | None,
    figures: dict[str, Any],
    ratios: dict[str, Any],
    goals: dict[str, Any],
) -> None:
    e2e = stages["e2e"]
    ours_procs = [p for name in ("tap", "target", "e2e") for p in stages[name].processes]
    ratios["e2e_vs_floor"] = ratio(e2e.rows_per_s, stages["floor"].rows_per_s)
    summarize_records(stages, ratios, goals)
    goals["e2e_rows_per_s_at_least_50k"] = e2e.rows_per_s >= GOAL_E2E_ROWS_PER_S
    goals["peak_rss_each_process_at_most_200mb"] = all(
        p.peak_rss_mb <= GOAL_PEAK_RSS_MB for p in ours_procs
    )
    goals["byte_identical"] = bool(
        stages["target"].checks.get("byte_identical") and e2e.checks.get("byte_identical")
    )
    if "peers" in stages:
        same_file = stages.get(f"e2e@{peer_rows}", e2e)
        ratios["e2e_vs_peers"] = ratio(same_file.rows_per_s, stages["peers"].rows_per_s)
        ratios["e2e_vs_peers_basis"] = (
            f"both on the same {stages['peers'].rows:,}-row file"
            if same_file.rows == stages["peers"].rows
            else "different files"
        )
        ratios[f"e2e_{rows}_vs_peers_{stages['peers'].rows}"] = ratio(
            e2e.rows_per_s, stages["peers"].rows_per_s
        )
        ratios["peers_vs_floor"] = ratio(stages["peers"].rows_per_s, stages["floor"].rows_per_s)
        goals["e2e_at_least_15x_peers"] = (ratios["e2e_vs_peers"] or 0) >= GOAL_VS_PEERS
    if also_rows:
        growth = {}
        flat = True
        for name in ("tap", "target", "e2e"):
            small, big = stages[name], stages[f"{name}@{also_rows}"]
            for p_small, p_big in zip(small.processes, big.processes, strict=True):
                key = f"{name}.{p_small.name}"
                growth[key] = round(p_big.peak_rss_mb - p_small.peak_rss_mb, 1)
                flat &= p_big.peak_rss_mb <= p_small.peak_rss_mb * (1 + FLAT_TOLERANCE)
        figures[f"rss_growth_mb_{rows}_to_{also_rows}"] = growth
        goals[f"rss_flat_{rows}_to_{also_rows}_within_10pct"] = flat
        goals[f"peak_rss_at_most_200mb_at_{also_rows}"] = all(
            p.peak_rss_mb <= GOAL_PEAK_RSS_MB
            for name in ("tap", "target", "e2e")
            for p in stages[f"{name}@{also_rows}"].processes
        )


def summarize_records(
    stages: dict[str, Stage], ratios: dict[str, Any], goals: dict[str, Any]
) -> None:
    """The RECORD path against the floor of the same run: each stage's seconds over the
    floor's (lower is better), and the goals of the costs stream's fast record path; with
    ``--before``, each RECORD stage's speedup over the other version's in the same run."""
    names = ("tap-records", "target-records", "e2e-records", "e2e")
    if any(name not in stages for name in (*names, "floor")):
        return
    floor_seconds, floor_cpu = stages["floor"].seconds, stages["floor"].processes[0].cpu_seconds
    seconds_vs_floor = {name: ratio(stages[name].seconds, floor_seconds) for name in names}
    ratios["seconds_vs_floor"] = seconds_vs_floor
    # On a busy machine a process waits for a core; its CPU seconds change much less. With
    # a free core for each process a pipeline takes about as long as its busier process.
    ratios["cpu_seconds_vs_floor"] = {
        name: ratio(max(p.cpu_seconds for p in stages[name].processes), floor_cpu) for name in names
    }
    goals["e2e_records_at_most_3x_floor"] = (
        seconds_vs_floor["e2e-records"] or 0
    ) <= GOAL_E2E_RECORDS_VS_FLOOR
    goals["e2e_batch_at_most_2x_floor"] = (seconds_vs_floor["e2e"] or 0) <= GOAL_E2E_BATCH_VS_FLOOR
    if "tap-records-before" in stages:
        speedups, cpu_speedups = {}, {}
        for name in ("tap-records", "target-records", "e2e-records"):
            now, before = stages[name], stages[f"{name}-before"]
            speedups[name] = speedup(before, now, "seconds")
            cpu_speedups[name] = speedup(before, now, "cpu_seconds")
        ratios["speedup_vs_before"] = speedups
        ratios["cpu_speedup_vs_before"] = cpu_speedups
        for name in ("tap-records", "target-records"):
            goals[f"{name.replace('-', '_')}_at_least_1.7x_faster"] = (
                speedups[name] or 0
            ) >= GOAL_RECORDS_SPEEDUP
    goals["records_peak_rss_each_process_at_most_64mb"] = all(
        p.peak_rss_mb <= GOAL_RECORDS_PEAK_RSS_MB
        for name in ("tap-records", "target-records", "e2e-records")
        for p in stages[name].processes
    )
    goals["records_byte_identical"] = bool(
        stages["target-records"].checks.get("byte_identical")
        and stages["e2e-records"].checks.get("byte_identical")
    )


def speedup(before: Stage, now: Stage, measure: str) -> float | None:
    """How many times faster ``now`` is than ``before`` (their seconds, or their processes'
    CPU seconds); over repeated runs, the median of each turn's ratio, as the two ran one
    right after the other."""
    runs = f"runs_{measure}"
    if runs in before.checks and runs in now.checks:
        pairs = zip(before.checks[runs], now.checks[runs], strict=True)
        return round(float(statistics.median(b / n for b, n in pairs if n)), 2)
    if measure == "seconds":
        return ratio(before.seconds, now.seconds)
    return ratio(
        sum(p.cpu_seconds for p in before.processes), sum(p.cpu_seconds for p in now.processes)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the main month")
    parser.add_argument(
        "--also-rows", type=int, help="also run tap, target and e2e at this size (RSS flatness)"
    )
    parser.add_argument(
        "--peer-rows",
        type=int,
        help="rows for the peer pair (default: the --rows file itself; at 1M rows it takes "
        "about 2.5 min and 6 GB, as tap-spreadsheets and target-csv hold the file in memory); "
        "with a smaller file our e2e is also run on it, so the ratio compares the same file",
    )
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument(
        "--daily-rows",
        type=int,
        default=150_000,
        help="rows of each of the 12 monthly exports of the daily-run stages",
    )
    parser.add_argument("--skip-daily", action="store_true", help="no daily-run stages")
    parser.add_argument(
        "--only-daily", action="store_true", help="only the daily-run stages (and api-month)"
    )
    parser.add_argument("--skip-api", action="store_true", help="do not run bench/api_month.py")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--before",
        type=Path,
        help="a folder with another version's code (git worktree add DIR COMMIT): also run "
        "the RECORD stages with it, each right after this version's, for their speedups",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the one-month stages and the floor this many times, taking turns, and "
        "report each stage's median run",
    )
    args = parser.parse_args(argv)

    stages: dict[str, Stage] = {}
    peer_rows = None if args.only_daily else measure_one_month(args, stages)
    if not args.skip_daily:
        stages.update((stage.name, stage) for stage in Daily(args.daily_rows, args.seed).measure())
    if not args.skip_api:
        print("api-month ...", file=sys.stderr)
        api = api_month(DATA)
        stages[api.name] = api

    print()
    print_table(list(stages.values()))
    figures = summarize(args.rows, stages, args.also_rows, peer_rows)
    print()
    print(json.dumps(figures, separators=(",", ":")))
    return 0 if figures["all_ok"] else 1


def measure_one_month(args: argparse.Namespace, stages: dict[str, Stage]) -> int | None:
    """tap, target, e2e, floor and peers on one generated month (and --also-rows); returns
    the rows of the peers' file."""
    before = check_code(args.before) if args.before else None
    export, ours = measure_ours(args.rows, args.seed, "", max(1, args.repeat), before)
    stages.update((stage.name, stage) for stage in ours)

    peer_rows = None
    if not args.skip_peers:
        peer_rows = min(args.peer_rows or args.rows, args.rows)
        if peer_rows == args.rows:
            peer_export, peer_work = export, DATA / f"run-{args.rows}"
        else:
            peer_export = make_export(peer_rows, args.seed)
            peer_work = DATA / f"run-{peer_rows}"
            peer_work.mkdir(parents=True, exist_ok=True)
            print(f"[@{peer_rows}] e2e (same file as the peers) ...", file=sys.stderr)
            same = Ours(peer_export, peer_rows, peer_work).end_to_end()
            same.name = f"e2e@{peer_rows}"
            stages[same.name] = same
        print(f"[@{peer_rows}] peers ...", file=sys.stderr)
        stages["peers"] = peers(peer_export, peer_rows, peer_work)
        if peer_rows != args.rows:
            stages["peers"].note = (
                f"on a {peer_rows:,}-row file of the same generator; tap-spreadsheets holds "
                "a whole file in memory, so its RSS grows with the file"
            )

    if args.also_rows:
        _, big = measure_ours(args.also_rows, args.seed, f"@{args.also_rows}", max(1, args.repeat))
        stages.update((stage.name, stage) for stage in big)
    return peer_rows


if __name__ == "__main__":
    sys.exit(main())
