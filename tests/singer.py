"""Run the plugins as a user does, through their console scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def run(
    command: str,
    *args: str,
    stdin: str | None = None,
    config: dict | None = None,
    tmp: Path | None = None,
) -> Run:
    argv = [str(BIN / command), *args]
    if config is not None:
        assert tmp is not None
        path = tmp / f"{command}.config.json"
        path.write_text(json.dumps(config))
        argv += ["--config", str(path)]
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    return Run(done.returncode, done.stdout, done.stderr)


def run_tap(tmp: Path, config: dict, state: dict | None = None) -> Run:
    args: list[str] = []
    if state is not None:
        state_path = tmp / "state.json"
        state_path.write_text(json.dumps(state))
        args = ["--state", str(state_path)]
    return run("tap-openai-costs", *args, config=config, tmp=tmp)
