"""The FinOps Foundation's FOCUS validator (focus-validator 2.x from PyPI), installed once in
a venv of its own under tests/.loaders/ (as tests/loaders.py installs loaders), and run on a
CSV file.

How it behaves here (see docs/focus.md, "Checked by the FinOps Foundation's validator"):
it needs Python 3.12 or newer; its ``numpy<2`` pin conflicts with the pyarrow it pulls in,
so ``numpy>=2`` and ``pyarrow>=20`` are installed after it; it opens a rule file by a
relative path, so it runs with its package folder's parent as the working directory; it
ships the FOCUS 1.2 rules, so ``--block-download`` keeps it offline; and it exits 0
whatever it finds, so its summary line and ``❌ <RuleId>: FAIL`` lines are read.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.loaders import LOADERS_DIR, install_venv, require

VERSION = "2.2.1"
REPO = Path(__file__).resolve().parent.parent
#: What OpenAI's data supports among the validator's applicability criteria: organizations
#: have names, projects are sub-accounts. Not USAGE_MEASUREMENT_SUPPORTED: the nine-column
#: exports carry no quantity, so ConsumedQuantity is null there (docs/focus.md).
CRITERIA = "ACCOUNT_NAMING_SUPPORTED,SUB_ACCOUNT_SUPPORTED"
_SUMMARY = re.compile(r"^Total: (\d+) \| Pass: (\d+) \| Fail: (\d+) \| Skipped: (\d+)$", re.M)
_FAILED = re.compile(r"^❌ (\S+): FAIL", re.M)


@dataclass
class Verdict:
    total: int
    passed: int
    failed: list[str]
    output: str

    @property
    def failed_must(self) -> list[str]:
        """The failed rules whose id says MUST (``-M``)."""
        return [rule for rule in self.failed if rule.endswith("-M")]


def _python() -> str:
    for version in ("3.12", "3.13"):
        found = subprocess.run(
            [str(REPO / ".ci" / "find-python"), version],
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode == 0:
            return found.stdout.strip()
    require("focus-validator needs Python 3.12 or newer, and neither 3.12 nor 3.13 was found")
    raise AssertionError  # require() skipped or failed


def _installed() -> tuple[Path, Path]:
    """The validator's console script and its site-packages folder (installed on first use)."""
    venv = LOADERS_DIR / f"focus-validator-{VERSION}"
    script = venv / "bin" / "focus-validator"
    marker = venv / ".installed"
    if not (marker.exists() and script.exists()):
        install_venv(
            venv,
            _python(),
            [f"focus-validator=={VERSION}"],
            # Its numpy<2 pin breaks the pyarrow it pulls in (pip warns about the pin).
            ["numpy>=2", "pyarrow>=20"],
        )
    (site_packages,) = venv.glob("lib/python3.*/site-packages")
    return script, site_packages


def validate(data: Path) -> Verdict:
    """FOCUS 1.2 CostAndUsage rules on a CSV file, offline."""
    script, site_packages = _installed()
    done = subprocess.run(
        [
            str(script),
            "--data-file",
            str(data.resolve()),
            "--validate-version",
            "1.2.0.1",
            "--block-download",
            "--output-type",
            "console",
            "--applicability-criteria",
            CRITERIA,
        ],
        cwd=site_packages,  # it opens a rule file by a relative path
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    summary = _SUMMARY.search(output)
    assert summary, f"no summary line from focus-validator (exit {done.returncode}):\n{output}"
    total, passed, _, _ = map(int, summary.groups())
    return Verdict(total, passed, _FAILED.findall(output), output)


def duckdb(sql: str, cwd: Path) -> None:
    """Run SQL in DuckDB (the validator's venv has it: the validator runs its rules in it)."""
    script, _ = _installed()
    done = subprocess.run(
        [str(script.parent / "python"), "-c", "import duckdb, sys; duckdb.sql(sys.argv[1])", sql],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
