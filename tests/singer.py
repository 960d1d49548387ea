"""Run the plugins as a user does, through their console scripts (the tap's output as a
target's input comes from the tap in process: :func:`tap_output`)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.pelanor_sandbox import TOKEN
from tests.stopping_tests import signal_handlers_kept

if TYPE_CHECKING:
    from local_sandboxes.pelanor import PelanorSandbox

BIN = Path(sys.executable).parent


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    @property
    def last_state(self) -> dict[str, Any] | None:
        """A tap writes STATE messages; a target writes the bare state values it confirms."""
        states = [m.get("value", m) for m in self.messages if m.get("type", "STATE") == "STATE"]
        return states[-1] if states else None

    @property
    def errors(self) -> list[str]:
        """The lines a user reads: everything on stderr that is not the SDK's own logging."""
        return [line for line in self.stderr.splitlines() if ": error: " in line]


def unversioned(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without their month_version (it names the run, so it differs between runs)."""
    return [{k: v for k, v in record.items() if k != "month_version"} for record in records]


def run(
    command: str,
    *args: str,
    stdin: str | None = None,
    config: dict | None = None,
    tmp: Path | None = None,
    env: dict[str, str] | None = None,
    bin_dir: Path = BIN,
) -> Run:
    argv = [str(bin_dir / command), *args]
    if config is not None:
        assert tmp is not None
        path = tmp / f"{command}.config.json"
        path.write_text(json.dumps(config))
        argv += ["--config", str(path)]
    done = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=None if env is None else os.environ | env,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def run_tap(
    tmp: Path,
    config: dict,
    state: dict | None = None,
    env: dict[str, str] | None = None,
    catalog: Path | None = None,
) -> Run:
    args: list[str] = []
    if state is not None:
        state_path = tmp / "state.json"
        state_path.write_text(json.dumps(state))
        args = ["--state", str(state_path)]
    if catalog is not None:
        args += ["--catalog", str(catalog)]
    return run("tap-openai-costs", *args, config=config, tmp=tmp, env=env)


def tap_in_process(tmp: Path, config: dict, state: dict | None = None) -> Run:
    """The tap run in this process, as the input of a target under test: the bytes its
    console script writes (but for the run's month_version and time), without a process's
    start-up (the tap's own tests run it as a process). Its config is left in ``tmp`` as
    :func:`run_tap` leaves it; the signal handlers it installs are put back, also when a
    module fixture calls this. A run that fails raises."""
    from tap_openai_costs.tap import TapOpenAICosts

    (tmp / "tap-openai-costs.config.json").write_text(json.dumps(config))
    written = io.BytesIO()
    out = io.TextIOWrapper(written, encoding="utf-8")
    with signal_handlers_kept(), contextlib.redirect_stdout(out):
        TapOpenAICosts(config=config, state=state, parse_env_config=False).sync_all()
        out.flush()
    return Run(0, written.getvalue().decode("utf-8"), "")


def tap_output(tmp: Path, *paths: Path, organization_id: str = "org-acme") -> str:
    """The tap's messages for these exports (run in process, :func:`tap_in_process`)."""
    config = {"paths": [str(p) for p in paths], "organization_id": organization_id}
    return tap_in_process(tmp, config).stdout


def target_config(sandbox: PelanorSandbox, **extra: Any) -> dict[str, Any]:
    return {
        "organization_id": "org-acme",
        "integration_id": "int-acme",
        "api_token": TOKEN,
        "api_url": sandbox.url,
        "max_retry_seconds": 30,
    } | extra


def run_target(tmp: Path, config: dict, messages: str, env: dict[str, str] | None = None) -> Run:
    return run("target-pelanor", stdin=messages, config=config, tmp=tmp, env=env)


def stored(sandbox: PelanorSandbox) -> dict[str, bytes]:
    """What the sandbox holds: integration/month -> the file's bytes."""
    return {f"{p.parent.name}/{p.stem}": p.read_bytes() for p in sandbox.stored_files()}


def report(result: Run) -> list[list[str]]:
    """The target's end-of-run table, as cells (split on runs of two or more spaces)."""
    lines = result.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("organization  month"))
    table = []
    for line in lines[start:]:
        if not line.startswith("org-") and table:
            break
        table.append(re.split(r" {2,}", line))
    return table


def every_stream_selected(tmp: Path) -> Path:
    """The tap's discovered catalog with every stream selected (focus_costs too, which is
    not selected by default), written to a file for ``--catalog``."""
    discovered = run("tap-openai-costs", "--discover")
    assert discovered.returncode == 0, discovered.stderr
    catalog = json.loads(discovered.stdout)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = True
    path = tmp / "every-stream.catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def wait_for_line(lines: Iterable[str], text: str, what: str) -> None:
    """Read a running process's output until a line holds ``text``; fail with ``what`` if
    it ends first (the process's own end bounds the wait: no sleep)."""
    for line in lines:
        if text in line:
            return
    pytest.fail(what)
