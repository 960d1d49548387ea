"""End to end through the real meltano CLI, with the project's meltano.yml (127.0.0.1 only).

Each test copies meltano.yml, orgs/ and samples/ into a temporary project and points the
plugins' `executable` at the console scripts of the running venv instead of `pip_url: -e .`,
so no plugin venv is built (`meltano install` of both plugins costs a few seconds and needs the
network; `make demo` does it). Only the local sandbox (in process) is ever contacted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_sandboxes.pelanor import PelanorSandbox
from tests.docs import block
from tests.loaders import loader_executable
from tests.meltano_cli import (
    BIN,
    DEV_TOKEN,
    OCTOBER,
    SEPTEMBER,
    hermetic_env,
    meltano,
    project_config,
    require_meltano,
    run_meltano_commands,
    write_umbrella_exports,
)
from tests.pelanor_sandbox import running_sandbox

pytestmark = pytest.mark.meltano

REPO = Path(__file__).resolve().parent.parent
SANDBOX_CONFIG = {
    "tokens": [DEV_TOKEN],
    "integrations": {
        "int-acme": "org-acme",
        "int-globex": "org-globex",
        "int-umbrella": "org-umbrella",  # the documented example of adding an organization
    },
}
#: The first organization lives on the two plugins themselves; the others in orgs/.
ACME = ("tap-openai-costs", "target-pelanor")
GLOBEX = ("tap-openai-costs--globex--pelanor", "target-pelanor--globex")
UMBRELLA = ("tap-openai-costs--umbrella--pelanor", "target-pelanor--umbrella")
#: The page whose commands set an organization up and add one.
ORGANIZATIONS = "docs/organizations.md"
WAREHOUSE = "docs/warehouse.md"
FOCUS = "docs/focus.md"
PELANOR_ENDPOINT = "docs/pelanor-endpoint.md"
ACME_STATE_ID = "dev:tap-openai-costs-to-target-pelanor"
#: The daily schedule of every organization: 06:30 UTC, once OpenAI's day has closed.
DAILY = "30 6 * * *"
TARGET_JSONL = ("target-jsonl", "0.1.4", "target-jsonl")


class Project:
    """A throwaway copy of the Meltano project, driven through the meltano CLI."""

    def __init__(self, root: Path, api_url: str) -> None:
        self.root = root
        shutil.copy2(REPO / "meltano.yml", root / "meltano.yml")
        shutil.copytree(REPO / "orgs", root / "orgs")
        shutil.copytree(REPO / "samples", root / "samples")
        self.edit(_use_installed_executables)
        self.env = hermetic_env() | {
            # Every organization's loader inherits it (none sets its own), which is how
            # the sandbox's free port replaces the dev environment's fixed one.
            "TARGET_PELANOR_API_URL": api_url,
        }

    def edit(self, change: Any) -> None:
        path = self.root / "meltano.yml"
        config = yaml.safe_load(path.read_text("utf-8"))
        change(config)
        path.write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")

    def meltano(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return meltano(self.root, self.env | env, *args)

    def run(self, tap: str, target: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.meltano("--environment=dev", "run", tap, target, **env)

    def config(self, plugin: str, environment: str = "dev", **env: str) -> dict[str, Any]:
        done = self.meltano(
            f"--environment={environment}", "config", "--unsafe", "print", plugin, **env
        )
        assert done.returncode == 0, done.stderr
        config: dict[str, Any] = json.loads(done.stdout)
        return config

    def organization_file(self, org: str) -> dict[str, Any]:
        """orgs/<org>.meltano.yml, parsed."""
        path = self.root / "orgs" / f"{org}.meltano.yml"
        config: dict[str, Any] = yaml.safe_load(path.read_text("utf-8"))
        return config

    def state(self, state_id: str) -> dict[str, Any]:
        done = self.meltano("state", "get", state_id)
        assert done.returncode == 0, done.stderr
        state: dict[str, Any] = json.loads(done.stdout)
        return state


def _use_installed_executables(config: dict[str, Any]) -> None:
    for kind in ("extractors", "loaders"):
        for plugin in config["plugins"][kind]:
            if plugin.pop("pip_url", None):
                plugin["executable"] = str(BIN / plugin["executable"])


def _loader(config: dict[str, Any], name: str) -> dict[str, Any]:
    loader: dict[str, Any] = next(p for p in config["plugins"]["loaders"] if p["name"] == name)
    return loader


@pytest.fixture(scope="module")
def meltano_cli() -> None:
    require_meltano()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[PelanorSandbox]:
    with running_sandbox(tmp_path / "pelanor", **SANDBOX_CONFIG) as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, sandbox: PelanorSandbox, meltano_cli: None) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    return Project(root, sandbox.url)


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"meltano failed:\n{done.stderr[-5000:]}"
    return done


def test_each_organization_uploads_exact_months_once_then_only_what_changed(
    project: Project, sandbox: PelanorSandbox
) -> None:
    files = sandbox.data_dir / "files"
    acme, globex = project.root / "samples" / "acme", project.root / "samples" / "globex"

    ok(project.run(*ACME))
    ok(project.run(*GLOBEX))

    assert sorted((u["integration_id"], u["month"]) for u in sandbox.uploads()) == [
        ("int-acme", "2025-09"),
        ("int-acme", "2025-10"),
        ("int-globex", "2025-10"),
    ]
    assert (files / "int-acme/2025-09.csv").read_bytes() == (acme / SEPTEMBER).read_bytes()
    assert (files / "int-acme/2025-10.csv").read_bytes() == (acme / OCTOBER).read_bytes()
    assert (files / "int-globex/2025-10.csv").read_bytes() == (globex / OCTOBER).read_bytes()
    months = project.state(ACME_STATE_ID)["singer_state"]["bookmarks"]["costs"]["months"]
    assert sorted(months) == ["org-acme/2025-09", "org-acme/2025-10"]
    # Rows went through BATCH files (meltano.yml's batch_config), all read and removed.
    assert list((project.root / ".meltano" / "run" / "batches").iterdir()) == []

    uploads = (sandbox.data_dir / "uploads.jsonl").read_bytes()
    ok(project.run(*ACME))
    assert (sandbox.data_dir / "uploads.jsonl").read_bytes() == uploads, "re-uploaded"
    assert project.state(ACME_STATE_ID)["singer_state"]["bookmarks"]["costs"]["months"] == months

    # A newer export of September (one amount corrected): exactly September goes again.
    original = (acme / SEPTEMBER).read_bytes()
    corrected = original.replace(b",0.7652070772182651,", b",0.7652070772182652,", 1)
    assert corrected != original
    newer = acme / "cost_2025-09-01_2025-09-30 (1).csv"
    newer.write_bytes(corrected)
    stat = (acme / SEPTEMBER).stat()
    os.utime(newer, (stat.st_atime + 60, stat.st_mtime + 60))
    ok(project.run(*ACME))

    new = sandbox.uploads()[3:]
    assert [(u["integration_id"], u["month"]) for u in new] == [("int-acme", "2025-09")]
    assert (files / "int-acme/2025-09.csv").read_bytes() == corrected
    assert (files / "int-acme/2025-10.csv").read_bytes() == (acme / OCTOBER).read_bytes()
    after = project.state(ACME_STATE_ID)["singer_state"]["bookmarks"]["costs"]["months"]
    assert after["org-acme/2025-10"] == months["org-acme/2025-10"]
    assert after["org-acme/2025-09"] != months["org-acme/2025-09"]


def test_an_organization_that_inherits_another_ones_integration_uploads_nothing(
    project: Project, sandbox: PelanorSandbox
) -> None:
    """The inheritance trap: an organization added with `--inherit-from` that sets its own
    organization_id but forgets its integration (and token) falls back to the first
    organization's; target-pelanor refuses at start, naming what the organization lacks."""

    def add_forgetful_organization(config: dict[str, Any]) -> None:
        config["plugins"]["extractors"].append(
            {
                "name": "tap-openai-costs--forgetful",
                "inherit_from": "tap-openai-costs",
                "config": {
                    "organization_id": "org-globex",
                    "paths": ["$MELTANO_PROJECT_ROOT/samples/globex"],
                },
            }
        )
        config["plugins"]["loaders"].append(
            {
                "name": "target-pelanor--forgetful",
                "inherit_from": "target-pelanor",
                "config": {"organization_id": "org-globex"},
            }
        )

    project.edit(add_forgetful_organization)
    ok(project.run(*ACME))  # Pelanor accepted acme's months into int-acme: bound
    uploads = sandbox.uploads()
    assert project.config("target-pelanor--forgetful")["integration_id"] == "int-acme"

    done = project.run("tap-openai-costs--forgetful", "target-pelanor--forgetful")

    binding = (
        Path(project.env["XDG_STATE_HOME"])
        / "target-pelanor/uploads/integration-bindings/int-acme.json"
    )
    assert done.returncode != 0
    assert (
        "integration_id int-acme is the Pelanor integration of org-acme (its months were "
        "uploaded there from this machine), and Pelanor keeps one integration per OpenAI "
        "organization: org-globex needs an integration of its own. Set it on this "
        "organization's loader (meltano config set target-pelanor--forgetful integration_id "
        "<its integration ID>), with the token for it; nothing was uploaded. If int-acme now "
        f"really serves org-globex, delete {binding}"
    ) in done.stderr
    assert sandbox.uploads() == uploads
    assert "dev:tap-openai-costs--forgetful-to-target-pelanor--forgetful" not in (
        project.meltano("state", "list").stdout
    )


def test_durations_and_months_to_let_shrink_are_set_by_environment_variables(
    project: Project, sandbox: PelanorSandbox
) -> None:
    """Meltano casts an environment variable by its setting's kind: a `decimal` became a
    Decimal it could not write into the plugin's config ("Decimal is not JSON
    serializable"), so the durations are integers; `allow_shrinking_months` is a JSON list,
    as the README's override command sets it."""
    overrides = {
        "TARGET_PELANOR_MAX_RETRY_SECONDS": "120",
        "TARGET_PELANOR_REQUEST_TIMEOUT": "30",
    }
    config = project.config("target-pelanor", **overrides)
    assert (config["max_retry_seconds"], config["request_timeout"]) == (120, 30)
    ok(project.run(*ACME, **overrides))
    assert sorted(u["month"] for u in sandbox.uploads()) == ["2025-09", "2025-10"]

    # October again, its last two rows cut: refused, then let through by listing it.
    october = project.root / "samples" / "acme" / OCTOBER
    stat = october.stat()
    october.write_bytes(b"".join(october.read_bytes().splitlines(keepends=True)[:-2]))
    os.utime(october, (stat.st_atime + 60, stat.st_mtime + 60))
    refused = project.run(*ACME, **overrides)
    assert refused.returncode != 0
    assert "withheld: is smaller than the copy uploaded to" in refused.stderr
    allowed = {"TARGET_PELANOR_ALLOW_SHRINKING_MONTHS": '["2025-10"]'}
    assert project.config("target-pelanor", **allowed)["allow_shrinking_months"] == ["2025-10"]
    ok(project.run(*ACME, **overrides, **allowed))
    assert (sandbox.data_dir / "files" / "int-acme" / "2025-10.csv").read_bytes() == (
        october.read_bytes()
    )


def test_meltano_precedence_the_organizations_rely_on(project: Project) -> None:
    """What Meltano 4.4.1 does with inherited settings; fails loudly if an upgrade changes it.

    - A key an organization's plugin sets itself beats the shell's TARGET_PELANOR_<SETTING>
      (which is the parent's variable, and the child's too).
    - A key it does not set comes from the parent: the first organization's value, or the
      shell's variable through it. That is the trap the integration binding closes.
    """
    shell = {"TARGET_PELANOR_INTEGRATION_ID": "int-shell", "TARGET_PELANOR_API_TOKEN": "shell"}
    globex = project.config("target-pelanor--globex", **shell)
    assert (globex["integration_id"], globex["api_token"]) == ("int-globex", DEV_TOKEN)
    prod = project.config("target-pelanor--globex", "prod", PELANOR_API_TOKEN_GLOBEX="globex")
    assert prod["api_token"] == "globex"
    assert "api_token" not in project.config("target-pelanor", "prod")  # no variable set

    def add_bare_child(config: dict[str, Any]) -> None:
        config["plugins"]["loaders"].append(
            {"name": "target-pelanor--bare", "inherit_from": "target-pelanor"}
        )

    project.edit(add_bare_child)
    assert project.config("target-pelanor--bare")["integration_id"] == "int-acme"
    assert project.config("target-pelanor--bare", **shell)["integration_id"] == "int-shell"


def test_one_job_and_daily_schedule_per_organization() -> None:
    config = project_config()
    jobs = {job["name"]: job["tasks"] for job in config["jobs"]}
    assert jobs == {
        "openai-costs-acme": ["tap-openai-costs target-pelanor"],
        "openai-costs-globex": [" ".join(GLOBEX)],
        "openai-costs-initech": ["tap-openai-costs--initech--pelanor target-pelanor--initech"],
    }
    assert {(s["job"], s["interval"]) for s in config["schedules"]} == {
        ("openai-costs-acme", DAILY),
        ("openai-costs-globex", DAILY),
        ("openai-costs-initech", DAILY),
    }
    assert config["default_environment"] == "dev"
    for template in ("template.meltano.yml.txt", "template-api.meltano.yml.txt"):
        assert f"  interval: {DAILY}\n" in (REPO / "orgs" / template).read_text("utf-8")
    organizations = (REPO / ORGANIZATIONS).read_text("utf-8")
    assert f"**06:30 UTC**\n   (`{DAILY}`)" in organizations
    assert f"   {DAILY} cd /srv/openai-costs" in organizations


def test_each_organization_file_is_its_template_filled_in() -> None:
    """orgs/globex and orgs/initech are what the documented command makes (globex on the
    bundled samples), so the template is exercised by the example organizations."""
    fill = {"{org}": "globex", "{ORG}": "GLOBEX", "{organization_id}": "org-globex"}
    text = (REPO / "orgs" / "template.meltano.yml.txt").read_text("utf-8")
    for placeholder, value in (fill | {"{integration_id}": "int-globex"}).items():
        text = text.replace(placeholder, value)
    text = text.replace("exports/globex", "samples/globex")
    assert (REPO / "orgs" / "globex.meltano.yml").read_text("utf-8") == text

    text = (REPO / "orgs" / "template-api.meltano.yml.txt").read_text("utf-8")
    values = {
        "{org}": "initech",
        "{ORG}": "INITECH",
        "{organization_id}": "org-initech",
        "{integration_id}": "int-initech",
        "{organization_name}": "Initech",
        "{start_month}": "2026-01",
    }
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    assert (REPO / "orgs" / "initech.meltano.yml").read_text("utf-8") == text


def run_shell_block(block_text: str, cwd: Path) -> None:
    """A documented shell block that is not `meltano` (the `sed` that makes a file)."""
    subprocess.run(["bash", "-euo", "pipefail", "-c", block_text], cwd=cwd, check=True)


def add_umbrella(project: Project, page_block: str = "orgs/template.meltano.yml.txt >") -> None:
    """docs/organizations.md's one command for a new organization, and its exports."""
    write_umbrella_exports(project.root / "exports" / "umbrella")
    run_shell_block(block("sh", page_block, page=ORGANIZATIONS), project.root)


def test_adding_an_organization_is_one_file(project: Project, sandbox: PelanorSandbox) -> None:
    """docs/organizations.md, "Adding an organization": one command makes the
    organization's file (plugins, job, schedule), its token comes from its own variable, and
    its job runs; `meltano config set` on its plugins changes that file only; deleting the
    file removes the organization and leaves its state."""
    before = yaml.safe_load((project.root / "meltano.yml").read_text("utf-8"))
    add_umbrella(project)

    umbrella = project.organization_file("umbrella")
    assert umbrella["plugins"]["loaders"] == [
        {
            "name": "target-pelanor--umbrella",
            "inherit_from": "target-pelanor",
            "config": {
                "organization_id": "org-umbrella",
                "integration_id": "int-umbrella",
                "api_token": "$PELANOR_API_TOKEN_UMBRELLA",
            },
        }
    ]
    assert _extractor(umbrella, UMBRELLA[0])["config"] == {
        "organization_id": "org-umbrella",
        "paths": ["$MELTANO_PROJECT_ROOT/exports/umbrella"],
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": "file://$MELTANO_PROJECT_ROOT/.meltano/run/batches"},
        },
    }
    assert umbrella["jobs"] == [{"name": "openai-costs-umbrella", "tasks": [" ".join(UMBRELLA)]}]
    assert umbrella["schedules"] == [
        {"name": "openai-costs-umbrella-daily", "job": "openai-costs-umbrella", "interval": DAILY}
    ]

    token = {"PELANOR_API_TOKEN_UMBRELLA": DEV_TOKEN}
    run_meltano_commands(
        block("sh", "run openai-costs-umbrella", page=ORGANIZATIONS),
        project.root,
        project.env | token,
    )
    assert [(u["integration_id"], u["month"]) for u in sandbox.uploads()] == [
        ("int-umbrella", "2025-09"),
        ("int-umbrella", "2025-10"),
    ]
    exports = project.root / "exports" / "umbrella"
    for month, name in (("2025-09", SEPTEMBER), ("2025-10", OCTOBER)):
        stored = sandbox.data_dir / "files" / "int-umbrella" / f"{month}.csv"
        assert stored.read_bytes() == (exports / name).read_bytes()

    # Checked against the Costs API: the commands write the organization's own file.
    run_meltano_commands(
        block("sh", "check_against_api true", page=ORGANIZATIONS), project.root, project.env
    )
    assert _extractor(project.organization_file("umbrella"), UMBRELLA[0])["config"] == (
        _extractor(umbrella, UMBRELLA[0])["config"]
        | {"check_against_api": True, "admin_api_key": "$OPENAI_ADMIN_KEY_UMBRELLA"}
    )
    assert yaml.safe_load((project.root / "meltano.yml").read_text("utf-8")) == before
    assert not (project.root / ".env").exists(), "a secret went to .env"

    # Removing it: the file goes, the state stays.
    (project.root / "orgs" / "umbrella.meltano.yml").unlink()
    assert "openai-costs-umbrella" not in ok(project.meltano("job", "list")).stdout
    state_id = "prod:tap-openai-costs--umbrella--pelanor-to-target-pelanor--umbrella"
    assert state_id in ok(project.meltano("state", "list")).stdout


def test_an_organization_read_from_the_costs_api_is_one_file(project: Project) -> None:
    run_shell_block(
        block("sh", "orgs/template-api.meltano.yml.txt >", page=ORGANIZATIONS), project.root
    )
    for extractor in UMBRELLA[0], "tap-openai-costs--umbrella":
        api = project.config(extractor, OPENAI_ADMIN_KEY_UMBRELLA="sk-admin-x")
        settings = ("source", "organization_id", "organization_name", "admin_api_key")
        assert {k: api[k] for k in (*settings, "start_month")} == {
            "source": "api",
            "organization_id": "org-umbrella",
            "organization_name": "Umbrella Corp",
            "admin_api_key": "sk-admin-x",
            "start_month": "2026-01",
        }


def test_trying_prod_without_uploading_changes_nothing(
    project: Project, sandbox: PelanorSandbox
) -> None:
    """docs/organizations.md, "Setting up a real organization", step 4: a dry run in prod for
    one command, leaving no dry_run behind."""
    before = (project.root / "meltano.yml").read_bytes()

    commands = block("sh", "TARGET_PELANOR_DRY_RUN=true", page=ORGANIZATIONS)
    run_meltano_commands(commands, project.root, project.env)

    acme = project.root / "samples" / "acme"
    output = project.root / "output" / "acme"
    assert sorted(path.name for path in output.iterdir()) == [SEPTEMBER, OCTOBER]
    for name in (SEPTEMBER, OCTOBER):
        assert (output / name).read_bytes() == (acme / name).read_bytes()
    assert sandbox.requests == []
    assert (project.root / "meltano.yml").read_bytes() == before
    assert project.meltano("state", "list").stdout.strip() == ""
    assert project.config("target-pelanor", "prod")["dry_run"] is False


def test_discovery_and_select_list_work_on_the_parent_plugin_without_settings(
    project: Project,
) -> None:
    """Discovery lists every stream whatever the settings (the schemas are static)."""
    done = ok(project.meltano("select", "tap-openai-costs", "--list", "--all"))
    for attribute in ("costs.csv_row", "costs.quantity", "cost_months.total_usd"):
        assert f"] {attribute}\n" in done.stdout, attribute
    assert "cost_month_layouts.layout" in done.stdout


def _streams_sent(done: subprocess.CompletedProcess[str]) -> set[str]:
    return {
        json.loads(line)["stream"]
        for line in done.stdout.splitlines()
        if line.startswith("{") and json.loads(line).get("type") == "RECORD"
    }


def test_selecting_on_the_warehouse_extractor_never_changes_the_pelanor_job(
    project: Project, sandbox: PelanorSandbox
) -> None:
    """README: the organization's warehouse extractor and its Pelanor extractor are
    siblings, so the README's `meltano select` for the warehouse leaves the Pelanor job
    whole (all three streams, every month uploaded). Structured logs carry the months'
    fields through Meltano."""
    add_umbrella(project)
    run_meltano_commands(
        block("sh", "meltano select tap-openai-costs--umbrella costs", page=WAREHOUSE),
        project.root,
        project.env,
    )
    # docs/focus.md: one more select adds the FOCUS rows, on the warehouse extractor only.
    run_meltano_commands(
        block("sh", "meltano select tap-openai-costs--umbrella focus_costs", page=FOCUS),
        project.root,
        project.env,
    )

    config = project.organization_file("umbrella")
    assert _extractor(config, "tap-openai-costs--umbrella") == {
        "name": "tap-openai-costs--umbrella",
        "inherit_from": "tap-openai-costs",
        "config": {
            "organization_id": "org-umbrella",
            "paths": ["$MELTANO_PROJECT_ROOT/exports/umbrella"],
        },
        "select": ["costs.*", "cost_months.*", "focus_costs.*"],
    }
    assert "select" not in _extractor(config, UMBRELLA[0])
    warehouse = ok(project.meltano("invoke", "tap-openai-costs--umbrella"))
    assert _streams_sent(warehouse) == {"costs", "cost_months", "focus_costs"}
    assert "deselected: cost_month_layouts" in warehouse.stderr
    # The parent's select (the three streams) reaches the Pelanor extractor: no focus_costs.
    pelanor = ok(project.meltano("invoke", UMBRELLA[0]))
    assert _streams_sent(pelanor) == {"cost_month_layouts", "cost_months"}  # rows: BATCH
    assert "deselected:" not in pelanor.stderr
    assert "Skipping deselected stream 'focus_costs'." in pelanor.stderr

    done = ok(
        project.meltano(
            "--log-format=json",
            "--environment=dev",
            "run",
            "openai-costs-umbrella",
            PELANOR_API_TOKEN_UMBRELLA=DEV_TOKEN,
        )
    )
    assert [(u["integration_id"], u["month"]) for u in sandbox.uploads()] == [
        ("int-umbrella", "2025-09"),
        ("int-umbrella", "2025-10"),
    ]
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    uploaded = [
        {key: event.get(key) for key in ("organization", "month", "rows", "action")}
        for event in events
        if event.get("string_id") == "target-pelanor--umbrella"
        and event.get("action") == "uploaded"
    ]
    assert uploaded == [
        {"organization": "org-umbrella", "month": "2025-09", "rows": 409, "action": "uploaded"},
        {"organization": "org-umbrella", "month": "2025-10", "rows": 382, "action": "uploaded"},
    ]

    # Why siblings: Meltano hands a plugin's select down to every plugin inheriting from it.
    def add_child_of_the_warehouse_extractor(config: dict[str, Any]) -> None:
        config["plugins"]["extractors"].append(
            {
                "name": "tap-openai-costs--umbrella--child",
                "inherit_from": "tap-openai-costs--umbrella",
            }
        )

    project.edit(add_child_of_the_warehouse_extractor)
    child = ok(project.meltano("invoke", "tap-openai-costs--umbrella--child"))
    assert _streams_sent(child) == {"costs", "cost_months", "focus_costs"}


def _extractor(config: dict[str, Any], name: str) -> dict[str, Any]:
    extractor: dict[str, Any] = next(
        p for p in config["plugins"]["extractors"] if p["name"] == name
    )
    return extractor


def test_batch_files_only_where_the_loader_is_target_pelanor(project: Project) -> None:
    """BATCH is set on the `--<org>--pelanor` extractors, never on the parent, because a
    child cannot unset an object setting it inherits (`null` and `{}` both fall back)."""
    batches = f"file://{project.root}/.meltano/run/batches"
    assert "batch_config" not in project.config("tap-openai-costs")
    assert "batch_config" not in project.config("tap-openai-costs--globex")
    pelanor = project.config(GLOBEX[0])
    assert pelanor["batch_config"]["storage"]["root"] == batches
    assert pelanor["organization_id"] == "org-globex"

    def set_on_parent_and_try_to_unset(config: dict[str, Any]) -> None:
        parent = _extractor(config, "tap-openai-costs")
        parent["config"]["batch_config"] = {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": "file://$MELTANO_PROJECT_ROOT/.meltano/run/batches"},
        }
        for name, value in (("null", None), ("empty", {})):
            config["plugins"]["extractors"].append(
                {
                    "name": f"tap-openai-costs--{name}",
                    "inherit_from": "tap-openai-costs--acme",
                    "config": {"batch_config": value},
                }
            )

    project.edit(set_on_parent_and_try_to_unset)
    for name in ("null", "empty"):
        inherited = project.config(f"tap-openai-costs--{name}")["batch_config"]
        assert inherited["storage"]["root"] == batches, name


@pytest.fixture(scope="module")
def target_jsonl() -> Path:
    return loader_executable(*TARGET_JSONL)


def _current_totals(loaded: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[int, Decimal]]:
    """The documented per-month totals (docs/warehouse.md), as an append-only loader's user
    computes them: the
    rows of each month's latest seal (highest month_version)."""
    current: dict[tuple[str, str], str] = {}
    for seal in (record for stream, record in loaded if stream == "cost_months"):
        key = (seal["organization"], seal["month"])
        current[key] = max(current.get(key, ""), seal["month_version"])
    totals: dict[str, tuple[int, Decimal]] = {}
    for row in (record for stream, record in loaded if stream == "costs"):
        if current.get((row["organization"], row["month"])) == row["month_version"]:
            count, total = totals.get(row["month"], (0, Decimal(0)))
            totals[row["month"]] = (count + 1, total + Decimal(row["amount_value"] or 0))
    return totals


def _export_totals(path: Path) -> tuple[int, Decimal]:
    amounts = [line.split(",")[4] for line in path.read_text().splitlines()[1:]]
    return len(amounts), sum((Decimal(a) for a in amounts if a), Decimal(0))


def test_meltano_run_into_target_jsonl_gives_exact_totals(
    project: Project, target_jsonl: Path
) -> None:
    """A generic append-only loader, with no settings of its own, on the organization's
    extractor: no BATCH; every version is appended, and the rows of each month's latest
    seal give the exact totals."""

    def add_target_jsonl(config: dict[str, Any]) -> None:
        config["plugins"]["loaders"].append(
            {"name": "target-jsonl", "namespace": "target_jsonl", "executable": str(target_jsonl)}
        )

    project.edit(add_target_jsonl)
    acme = project.root / "samples" / "acme"
    # A mid-month export of October, read first: October goes out as a draft from it,
    # then again from the full month, which wins every day.
    mid = acme / "cost_2025-10-01_2025-10-15.csv"
    mid.write_text("".join((acme / OCTOBER).read_text().splitlines(keepends=True)[:150]))
    os.utime(mid, (1_000_000_000, 1_000_000_000))

    def loaded() -> list[tuple[str, dict[str, Any]]]:
        """Every record target-jsonl wrote: files <stream>-<timestamp>.jsonl, appended."""
        return [
            (path.name.split("-")[0], json.loads(line))
            for path in sorted(project.root.glob("*.jsonl"))
            for line in path.read_text().splitlines()
        ]

    ok(project.run("tap-openai-costs--acme", "target-jsonl"))
    assert not (project.root / ".meltano" / "run" / "batches").exists()
    assert _current_totals(loaded()) == {
        "2025-09": _export_totals(acme / SEPTEMBER),
        "2025-10": _export_totals(acme / OCTOBER),
    }
    october = {r["month_version"] for s, r in loaded() if s == "costs" and r["month"] == "2025-10"}
    assert len(october) == 2  # the draft's rows were appended too

    # October restated with one amount changed: appended again, still exact.
    restated = (acme / OCTOBER).read_bytes().replace(b",1.530500,", b",1.530501,", 1)
    newer = acme / "cost_2025-10-01_2025-10-31 (1).csv"
    newer.write_bytes(restated)
    ok(project.run("tap-openai-costs--acme", "target-jsonl"))
    assert _current_totals(loaded()) == {
        "2025-09": _export_totals(acme / SEPTEMBER),
        "2025-10": _export_totals(newer),
    }
    assert _export_totals(newer)[1] - _export_totals(acme / OCTOBER)[1] == Decimal("0.000001")


def test_the_documented_put_with_a_raw_body_reaches_a_pelanor_that_takes_only_that(
    tmp_path: Path, meltano_cli: None
) -> None:
    """docs/pelanor-endpoint.md, "If Pelanor's endpoint differs": its commands set the shape
    on the parent loader, every organization's inherits it, and its debug log shows the
    request."""
    shape = {
        "upload_method": "PUT",
        "upload_body": "raw",
        "upload_path": "/v1/integrations/openai/{integration_id}/costs",
        "upload_query": {"month": "{month}"},
    }
    with running_sandbox(tmp_path / "pelanor", **SANDBOX_CONFIG, **shape) as sandbox:
        root = tmp_path / "project"
        root.mkdir()
        project = Project(root, sandbox.url)
        run_meltano_commands(
            block("sh", "target-pelanor upload_body raw", page=PELANOR_ENDPOINT), root, project.env
        )
        done = ok(project.meltano("--log-level=debug", "--environment=dev", "run", *ACME))
        url = sandbox.url

    acme = project.root / "samples" / "acme"
    assert [(r.method, r.path, r.query) for r in sandbox.requests] == [
        ("PUT", "/v1/integrations/openai/int-acme/costs", (("month", month),))
        for month in ("2025-09", "2025-10")
    ]
    assert (sandbox.data_dir / "files/int-acme/2025-10.csv").read_bytes() == (
        (acme / OCTOBER).read_bytes()
    )
    debug = [line for line in done.stderr.splitlines() if "upload request: " in line]
    assert len(debug) == 2
    assert (
        f"upload request: PUT {url}/v1/integrations/openai/int-acme/costs?month=2025-10; "
        f"Content-Type: text/csv; body: the CSV {OCTOBER}; "
        f"{(acme / OCTOBER).stat().st_size} bytes"
    ) in debug[1]
    assert all(DEV_TOKEN not in line for line in debug)
