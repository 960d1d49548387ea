"""This project's Meltano jobs under Dagster, through dagster-meltano (docs/orchestrators.md):
the documented definitions file loads every job and schedule, and one organization's job
runs in process, its `meltano run … --force` uploading the organization's months to the
local sandbox (127.0.0.1 only); the documented run queue setting is one Dagster takes.

dagster-meltano (with the Dagster it pulls in) comes from PyPI into its own venv under
tests/.loaders/, once, about a minute; it runs the `meltano` of this venv (first on the
PATH) in a copy of the project whose plugins are this venv's console scripts.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.docs import block, commands
from tests.loaders import loader_executable
from tests.meltano_cli import DEV_TOKEN, MELTANO, copy_project, hermetic_env, require_meltano
from tests.pelanor_sandbox import running_sandbox

pytestmark = pytest.mark.meltano

#: dagster-meltano 1.5.5 takes Dagster 1.9 (through dagster-shell); pinned for repeatability.
DAGSTER_MELTANO = ("dagster-meltano", "1.5.5", "dagster", ("dagster==1.9.13",))
ORCHESTRATORS = "docs/orchestrators.md"
#: Runs the documented definitions file, then one job in process; prints what it found.
RUN_ONE_JOB = """
import json, runpy, sys
from dagster import ScheduleDefinition
defs = runpy.run_path(sys.argv[1])["defs"]
from dagster import DagsterInstance
repository = defs.get_repository_def()
queue = DagsterInstance.get().run_coordinator.get_run_queue_config()
result = defs.get_job_def(sys.argv[2]).execute_in_process(raise_on_error=False)
print(json.dumps({
    "jobs": sorted(job.name for job in repository.get_all_jobs()),
    "schedules": sorted((s.name, s.job_name, s.cron_schedule) for s in repository.schedule_defs),
    "success": result.success,
    "queue_limits": queue.tag_concurrency_limits,
}))
"""


def test_dagster_loads_the_jobs_and_runs_one_organizations_job(tmp_path) -> None:
    require_meltano()
    python = loader_executable(*DAGSTER_MELTANO).parent / "python"
    project = tmp_path / "project"
    project.mkdir()
    copy_project(project)
    definitions = tmp_path / "definitions.py"
    definitions.write_text(block("python", "load_jobs_from_meltano_project", ORCHESTRATORS))
    integrations = {"int-acme": "org-acme", "int-globex": "org-globex"}
    with running_sandbox(
        tmp_path / "pelanor", tokens=[DEV_TOKEN], integrations=integrations
    ) as sandbox:
        env = hermetic_env() | {
            "MELTANO_PROJECT_ROOT": str(project),
            "MELTANO_ENVIRONMENT": "dev",
            "TARGET_PELANOR_API_URL": sandbox.url,
            "DAGSTER_HOME": str(tmp_path / "dagster"),
        }
        (tmp_path / "dagster").mkdir()
        # The documented run queue: one run per schedule at a time.
        run_queue = block("yaml", "tag_concurrency_limits", ORCHESTRATORS)
        (tmp_path / "dagster" / "dagster.yaml").write_text(run_queue)
        # As the page says: Meltano's system database made once before Dagster loads jobs.
        ((assignments, words),) = commands(block("sh", "meltano job list", ORCHESTRATORS))
        first = subprocess.run(
            [str(MELTANO), *words[1:]],
            cwd=project,
            env=env | assignments,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert first.returncode == 0, first.stderr[-3000:]
        done = subprocess.run(
            [str(python), "-c", RUN_ONE_JOB, str(definitions), "openai_costs_acme"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-5000:]
        found = json.loads(done.stdout.splitlines()[-1])
        uploads = sorted((u["integration_id"], u["month"]) for u in sandbox.uploads())
    assert found == {
        "jobs": ["openai_costs_acme", "openai_costs_globex", "openai_costs_initech"],
        "schedules": [
            ["openai_costs_acme_daily", "openai_costs_acme", "30 6 * * *"],
            ["openai_costs_globex_daily", "openai_costs_globex", "30 6 * * *"],
            ["openai_costs_initech_daily", "openai_costs_initech", "30 6 * * *"],
        ],
        "success": True,
        "queue_limits": [
            {
                "key": "dagster/schedule_name",
                "value": {"applyLimitPerUniqueValue": True},
                "limit": 1,
            }
        ],
    }
    assert uploads == [("int-acme", "2025-09"), ("int-acme", "2025-10")]
