"""What the tests that drive the real meltano CLI share."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.docs import REPO, commands
from tests.singer import BIN

MELTANO = BIN / "meltano"
#: The dev environment's token (meltano.yml), which the sandboxes of these tests accept.
DEV_TOKEN = "dev-token-not-secret"
SEPTEMBER = "cost_2025-09-01_2025-09-30.csv"
OCTOBER = "cost_2025-10-01_2025-10-31.csv"


def require_meltano() -> None:
    if not MELTANO.exists():
        pytest.skip(
            f"meltano is not installed next to {sys.executable}; `make test` installs it "
            "(pip install meltano==4.4.1)"
        )


def hermetic_env() -> dict[str, str]:
    """The shell's environment without any setting of these plugins or of Meltano."""
    hermetic = ("TAP_OPENAI_COSTS", "TARGET_PELANOR", "PELANOR_", "MELTANO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(hermetic)}
    return env | {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def write_umbrella_exports(folder: Path) -> None:
    """Exports for the documented example organization: acme's samples, as org-umbrella's."""
    folder.mkdir(parents=True)
    for name in (SEPTEMBER, OCTOBER):
        acme = (REPO / "samples" / "acme" / name).read_bytes()
        (folder / name).write_bytes(acme.replace(b",org-acme,", b",org-umbrella,"))


def meltano(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """One `meltano` command in the project at ``cwd``, with no input, its output kept."""
    return subprocess.run(
        [str(MELTANO), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_meltano_commands(
    block: str, cwd: Path, env: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """Run a documented block whose commands are all `meltano ...`; stop at the first failure."""
    done = []
    for assignments, words in commands(block):
        assert words[0] == "meltano", words
        result = meltano(cwd, env | assignments, *words[1:])
        assert result.returncode == 0, f"{shlex.join(words)} failed:\n{result.stderr[-5000:]}"
        done.append(result)
    return done


def copy_project(root: Path) -> None:
    """This Meltano project in ``root``: meltano.yml, the organizations' files (orgs/) and
    samples/, the plugins being this venv's console scripts."""
    shutil.copytree(REPO / "samples", root / "samples")
    shutil.copytree(REPO / "orgs", root / "orgs")
    config: dict[str, Any] = yaml.safe_load((REPO / "meltano.yml").read_text("utf-8"))
    for kind in ("extractors", "loaders"):
        for plugin in config["plugins"][kind]:
            if plugin.pop("pip_url", None):
                plugin["executable"] = str(BIN / plugin["executable"])
    (root / "meltano.yml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")


def project_config() -> dict[str, Any]:
    """meltano.yml with the files its include_paths name, merged as Meltano merges them."""
    config: dict[str, Any] = yaml.safe_load((REPO / "meltano.yml").read_text("utf-8"))
    assert config["include_paths"] == ["./orgs/*.meltano.yml"]
    for path in sorted((REPO / "orgs").glob("*.meltano.yml")):
        included = yaml.safe_load(path.read_text("utf-8"))
        for kind, plugins in included.get("plugins", {}).items():
            config["plugins"][kind] += plugins
        for key in ("jobs", "schedules"):
            config[key] += included.get(key, [])
    return config
