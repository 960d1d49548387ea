"""Generic Singer loaders from PyPI, each in its own venv (as Meltano installs plugins),
installed once and kept in tests/.loaders/ (gitignored) for later runs.

Parallel workers (pytest-xdist) install each loader once: the first takes a lock on it, the
others wait for it and use the venv it built.

A loader that cannot be installed (no package index reachable) skips its tests with the
reason, except in CI (``CI`` set), where those tests must run: there it is a failure.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

LOADERS_DIR = Path(__file__).resolve().parent / ".loaders"


def require(reason: str) -> None:
    """Skip with the reason on a developer's machine; fail in CI, where nothing may skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run this test)")
    pytest.skip(reason)


def loader_executable(
    package: str, version: str, executable: str, pins: tuple[str, ...] = ()
) -> Path:
    """The loader's console script, from a venv of its own (built on first use); ``pins``
    are requirements installed with it (``duckdb==1.2.2``), part of the venv's name."""
    venv = LOADERS_DIR / "-".join((f"{package}-{version}", *pins)).replace("==", "-")
    script = venv / "bin" / executable
    marker = venv / ".installed"
    if marker.exists() and script.exists():
        return script
    install_venv(venv, sys.executable, [f"{package}=={version}", *pins])
    return script


def install_venv(venv: Path, python: str, *installs: list[str]) -> None:
    """A fresh venv of ``python`` with each list of requirements installed in turn, then
    marked installed (``.installed``); a failure skips the test (fails it in CI). Under a
    lock: a parallel worker that asks meanwhile waits, then uses the venv built."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing it
        if not (venv / ".installed").exists():
            _install(venv, python, installs)


def _install(venv: Path, python: str, installs: tuple[list[str], ...]) -> None:
    pip = str(venv / "bin" / "pip")
    commands = [[python, "-m", "venv", "--clear", str(venv)]]
    commands += [[pip, "install", "--quiet", *requirements] for requirements in installs]
    for command in commands:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            env=os.environ | {"PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "is ignored" not in line]
            require(f"cannot install {' '.join(installs[0])}: {' '.join(errors[-3:])}")
    (venv / ".installed").touch()
