"""Using the plugins in another Meltano project, exactly as docs/meltano-project.md says
(127.0.0.1 only).

Builds the wheel, runs `meltano init` in a temporary folder, copies the two plugin
definitions shipped in plugins/ there unchanged and adds them with the commands of
docs/meltano-project.md: Meltano installs the wheel into each plugin's own virtualenv (with
uv, taking the dependencies from the package index). Then, as that page says, `meltano
config set` configures the organization on the plugins themselves, Meltano's checks pass,
and `meltano run tap-openai-costs target-pelanor` uploads into the local sandbox. Slow: one
wheel build and one install for the module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from local_sandboxes.pelanor import PelanorSandbox
from tests.docs import REPO, block
from tests.meltano_cli import (
    DEV_TOKEN,
    MELTANO,
    OCTOBER,
    SEPTEMBER,
    hermetic_env,
    meltano,
    require_meltano,
    run_meltano_commands,
    write_umbrella_exports,
)
from tests.pelanor_sandbox import running_sandbox
from tests.plugin_settings import (
    DEFINITIONS_PAGE,
    shipped_definition_texts,
    shipped_definitions,
)

pytestmark = pytest.mark.meltano


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (setuptools leaves build/ behind)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for package in ("openai_costs", "tap_openai_costs", "target_pelanor"):
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(REPO / package, source / package, ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def environ() -> dict[str, str]:
    require_meltano()
    return hermetic_env()


@pytest.fixture(scope="module")
def your_project(
    tmp_path_factory: pytest.TempPathFactory, wheel: Path, environ: dict[str, str]
) -> Path:
    """A new Meltano project with both plugins added as docs/meltano-project.md says."""
    parent = tmp_path_factory.mktemp("meltano")
    subprocess.run(
        [str(MELTANO), "init", "your-project", "--no-usage-stats"],
        cwd=parent,
        env=environ,
        capture_output=True,
        timeout=120,
        check=True,
    )
    root = parent / "your-project"
    # The definitions' pip_url: the wheel, copied into the project's wheels/ folder, and
    # the definitions into its plugins/ folder, as docs/meltano-project.md's build step does.
    pip_urls = {definition["pip_url"] for definition in shipped_definitions().values()}
    assert pip_urls == {f"$MELTANO_PROJECT_ROOT/wheels/{wheel.name}"}
    build = block("sh", "python3 -m pip wheel --no-deps -w dist .", page=DEFINITIONS_PAGE)
    assert f"cp dist/{wheel.name} /path/to/your-project/wheels/" in build
    assert "cp plugins/tap-openai-costs.yml plugins/target-pelanor.yml" in build
    (root / "wheels").mkdir()
    (root / "plugins").mkdir(exist_ok=True)
    shutil.copy2(wheel, root / "wheels" / wheel.name)
    for name, text in shipped_definition_texts().items():
        (root / "plugins" / f"{name}.yml").write_text(text, "utf-8")

    commands = block("sh", "--from-ref plugins/tap-openai-costs.yml", page=DEFINITIONS_PAGE)
    run_meltano_commands(commands, root, environ)
    return root


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[PelanorSandbox]:
    integrations = {"int-umbrella": "org-umbrella"}
    with running_sandbox(
        tmp_path / "pelanor", tokens=[DEV_TOKEN], integrations=integrations
    ) as running:
        yield running


def test_a_new_project_runs_the_literal_command_into_the_sandbox(
    your_project: Path, environ: dict[str, str], sandbox: PelanorSandbox, wheel: Path
) -> None:
    for kind, name in (("extractors", "tap-openai-costs"), ("loaders", "target-pelanor")):
        venv = your_project / ".meltano" / kind / name / "venv"
        (record,) = venv.glob("lib/python*/site-packages/openai_costs_to_pelanor-*/direct_url.json")
        url = json.loads(record.read_text("utf-8"))["url"]
        assert PurePosixPath(url).name == wheel.name, f"{name} was not installed from the wheel"
    exports = your_project / "exports" / "umbrella"
    write_umbrella_exports(exports)
    env = environ | {"TARGET_PELANOR_API_URL": sandbox.url}

    configure = block("sh", "meltano config set tap-openai-costs organization_id", DEFINITIONS_PAGE)
    assert "<token_id>:<token_secret>" in configure
    run_meltano_commands(
        configure.replace("<token_id>:<token_secret>", DEV_TOKEN), your_project, env
    )
    assert DEV_TOKEN not in (your_project / "meltano.yml").read_text("utf-8")
    assert sandbox.uploads() == []  # the checks upload nothing
    run_meltano_commands(
        block("sh", "meltano run tap-openai-costs target-pelanor", DEFINITIONS_PAGE),
        your_project,
        env,
    )

    assert [(u["integration_id"], u["month"]) for u in sandbox.uploads()] == [
        ("int-umbrella", "2025-09"),
        ("int-umbrella", "2025-10"),
    ]
    for month, name in (("2025-09", SEPTEMBER), ("2025-10", OCTOBER)):
        stored = sandbox.data_dir / "files" / "int-umbrella" / f"{month}.csv"
        assert stored.read_bytes() == (exports / name).read_bytes()

    # A second organization added by inheritance that forgets its integration and token:
    # it would upload into the first one's integration; it stops before reading anything.
    second = [
        "add --plugin-type extractor tap-openai-costs--second --inherit-from tap-openai-costs",
        "config set tap-openai-costs--second organization_id org-second",
        "add --plugin-type loader target-pelanor--second --inherit-from target-pelanor",
        "config set target-pelanor--second organization_id org-second",
    ]
    run_meltano_commands("\n".join(f"meltano {line}" for line in second), your_project, env)
    done = meltano(your_project, env, "run", "tap-openai-costs--second", "target-pelanor--second")
    assert done.returncode != 0
    assert (
        "integration_id int-umbrella is the Pelanor integration of org-umbrella (its months "
        "were uploaded there from this machine), and Pelanor keeps one integration per OpenAI "
        "organization: org-second needs an integration of its own. Set it on this "
        "organization's loader (meltano config set target-pelanor--second integration_id"
    ) in done.stderr
    assert len(sandbox.uploads()) == 2


def test_meltanos_loader_test_runs_the_checks_and_ends_as_meltanos_race_decides(
    your_project: Path, environ: dict[str, str], sandbox: PelanorSandbox
) -> None:
    """`meltano config test target-pelanor`: target-pelanor takes Meltano's test stream,
    checks, uploads nothing and exits 0. Meltano 4.4.1 then stops the process it has just
    waited for: depending on which of asyncio's callbacks runs first, that is a no-op (Meltano
    says the configuration is valid) or a ProcessLookupError traceback. docs/meltano-project.md
    describes both; this checks that only those two happen."""
    env = environ | {
        "TARGET_PELANOR_API_URL": sandbox.url,
        "TARGET_PELANOR_ORGANIZATION_ID": "org-umbrella",
        "TARGET_PELANOR_INTEGRATION_ID": "int-umbrella",
        "TARGET_PELANOR_API_TOKEN": DEV_TOKEN,
    }
    done = meltano(your_project, env, "--log-level=debug", "config", "test", "target-pelanor")

    assert f"Pelanor at {sandbox.url} answered over plain http" in done.stderr
    assert "Process return code: 0" in done.stderr
    if done.returncode == 0:
        assert "Plugin configuration is valid" in done.stdout + done.stderr
    else:
        assert "ProcessLookupError" in done.stderr
    assert sandbox.uploads() == []
