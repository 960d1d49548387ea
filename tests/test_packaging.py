"""The package as PyPI, pip and Meltano take it: a wheel and an sdist built with
`python -m build` from a copy of the checkout, their metadata and contents (the plugins
only: not the local sandboxes, the tests or the benchmark), and both installed with pip
alone into a fresh virtualenv, where the two console scripts run a pipeline.

Needs the package index once (the build backend, the dependencies); slow: one build and
one install for the module.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from email.message import Message
from pathlib import Path

import pytest

from tests.exports import SAMPLES
from tests.loaders import require
from tests.plugin_settings import REPO

#: One xdist worker runs this module's tests: the build (a module fixture) happens once.
pytestmark = pytest.mark.xdist_group("packaging")
PACKAGES = ("openai_costs", "tap_openai_costs", "target_pelanor")
#: The wheel's entry points: the two plugins' commands, nothing else (no sandbox).
ENTRY_POINTS = (
    "[console_scripts]\n"
    "tap-openai-costs = tap_openai_costs.command:main\n"
    "target-pelanor = target_pelanor.command:main\n"
)
SUMMARY = (
    "Singer tap for OpenAI cost data and Singer target that uploads it to Pelanor, month by "
    "month, byte for byte."
)
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist, and the wheel `build` makes from it, from a copy of the checkout: every
    file git would commit (setuptools leaves build/ behind)."""
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        path = REPO / name
        if path.is_file() and not path.is_symlink():  # not tests/.loaders; not deleted files
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    assert (source / "sandboxes" / "local_sandboxes" / "pelanor.py").is_file()
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "is ignored" not in line]
        require(f"python -m build failed: {' '.join(errors[-3:])}")
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_string(archive.read(name).decode("utf-8"))


def sdist_metadata(sdist: Path) -> tuple[Message, list[str]]:
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        root = names[0].split("/")[0]
        member = archive.extractfile(f"{root}/PKG-INFO")
        assert member is not None
        text = member.read().decode("utf-8")
        return email.message_from_string(text), [n.split("/", 1)[-1] for n in names]


def test_wheel_and_sdist_carry_the_metadata_pypi_and_the_hub_read(dists) -> None:
    assert dists["wheel"].name == "openai_costs_to_pelanor-0.3.0-py3-none-any.whl"
    assert dists["sdist"].name == "openai_costs_to_pelanor-0.3.0.tar.gz"
    sdist, files = sdist_metadata(dists["sdist"])
    for metadata in (wheel_metadata(dists["wheel"]), sdist):
        assert metadata["Name"] == "openai-costs-to-pelanor"
        assert metadata["Version"] == "0.3.0"
        assert metadata["Summary"] == SUMMARY
        assert metadata["License-Expression"] == "Apache-2.0"
        assert metadata["Requires-Python"] == ">=3.10"
        assert metadata["Description-Content-Type"] == "text/markdown"
        assert metadata.get_payload().startswith("# OpenAI costs → Pelanor")
        assert set(metadata["Keywords"].split(",")) >= {"openai", "pelanor", "singer", "meltano"}
        classifiers = metadata.get_all("Classifier")
        versions = [
            c.rsplit(" :: ", 1)[1]
            for c in classifiers
            if c.count("::") == 2 and (c.startswith("Programming Language :: Python :: 3."))
        ]
        assert versions == PYTHONS
        assert not [c for c in classifiers if c.startswith("License ::")]  # the SPDX field says it
        # No home yet: no made-up project URL.
        assert metadata.get_all("Project-URL") is None
        assert metadata["Home-page"] is None
    assert {"LICENSE", "README.md", "pyproject.toml"} <= set(files)
    assert {f"{package}/__init__.py" for package in PACKAGES} <= set(files)
    assert not [f for f in files if f.startswith(("tests/", ".venv", "bench/", "sandboxes/"))]


def test_the_wheel_holds_only_the_plugins_and_their_two_commands(dists) -> None:
    with zipfile.ZipFile(dists["wheel"]) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert archive.read(entry_points).decode("utf-8") == ENTRY_POINTS
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == set(PACKAGES)
    assert not [n for n in names if "sandbox" in n]


def test_the_wheel_and_the_sdist_install_with_pip_alone_and_run_a_pipeline(dists, tmp_path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    environ = os.environ | {"PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    def pip(*args: str) -> None:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *args],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            env=environ,
        )
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "is ignored" not in line]
            require(f"pip install {args[-1]} failed: {' '.join(errors[-3:])}")

    def pipeline(output: Path) -> None:
        config = tmp_path / "tap.json"
        config.write_text(f'{{"organization_id": "org-acme", "paths": ["{SAMPLES / "acme"}"]}}')
        target = tmp_path / "target.json"
        target.write_text(
            f'{{"organization_id": "org-acme", "dry_run": true, "output_dir": "{output}"}}'
        )
        tap = subprocess.run(
            [str(env_dir / "bin" / "tap-openai-costs"), "--config", str(config)],
            capture_output=True,
            timeout=120,
            check=True,
        )
        subprocess.run(
            [str(env_dir / "bin" / "target-pelanor"), "--config", str(target)],
            input=tap.stdout,
            capture_output=True,
            timeout=120,
            check=True,
        )
        assert sorted(p.name for p in output.iterdir()) == [
            "cost_2025-09-01_2025-09-30.csv",
            "cost_2025-10-01_2025-10-31.csv",
        ]
        for written in output.iterdir():
            assert written.read_bytes() == (SAMPLES / "acme" / written.name).read_bytes()

    pip(str(dists["wheel"]))
    pipeline(tmp_path / "from-wheel")

    pip("--force-reinstall", "--no-deps", str(dists["sdist"]))
    installed = subprocess.run(
        [str(python), "-m", "pip", "show", "-f", "openai-costs-to-pelanor"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "Version: 0.3.0" in installed
    pipeline(tmp_path / "from-sdist")
