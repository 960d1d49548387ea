"""One integration per OpenAI organization: an organization's loader that names another
organization's integration (inherited from its parent plugin, or from the shell) uploads
nothing into it (127.0.0.1 only)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from local_sandboxes.pelanor import PelanorSandbox
from target_pelanor.integration_binding import BindingProblem, IntegrationBindings
from tests.exports import SAMPLES
from tests.singer import BIN, run_target, tap_output, target_config, wait_for_line

AT = datetime(2025, 11, 3, 6, 30, tzinfo=timezone.utc)
OCTOBER = "cost_2025-10-01_2025-10-31.csv"


def bindings_folder() -> Path:
    """This test's machine-wide binding folder (the per-test XDG_STATE_HOME)."""
    return Path(os.environ["XDG_STATE_HOME"]) / "target-pelanor" / "uploads"


def taken_line(path: Path, loader: str = "target-pelanor") -> str:
    return (
        "integration_id int-acme is the Pelanor integration of org-acme (its months were "
        "uploaded there from this machine), and Pelanor keeps one integration per OpenAI "
        "organization: org-globex needs an integration of its own. Set it on this "
        f"organization's loader (meltano config set {loader} integration_id <its "
        "integration ID>), with the token for it; nothing was uploaded. If int-acme now "
        f"really serves org-globex, delete {path}"
    )


def test_the_first_accepted_upload_binds_the_integration_to_its_organization(
    tmp_path: Path, pelanor: PelanorSandbox
) -> None:
    acme = tap_output(tmp_path, SAMPLES / "acme" / OCTOBER)
    assert run_target(tmp_path, target_config(pelanor), acme).returncode == 0

    binding = bindings_folder() / "integration-bindings" / "int-acme.json"
    content = json.loads(binding.read_text("utf-8"))
    assert {k: content[k] for k in ("integration_id", "organization_id")} == {
        "integration_id": "int-acme",
        "organization_id": "org-acme",
    }
    assert binding.stat().st_mode & 0o077 == 0  # the folder and file are the owner's
    # The same organization again: the binding stands and lets it through.
    assert run_target(tmp_path, target_config(pelanor), acme).returncode == 0


def test_another_organization_naming_that_integration_stops_at_start(
    tmp_path: Path, pelanor: PelanorSandbox
) -> None:
    acme = tap_output(tmp_path, SAMPLES / "acme" / OCTOBER)
    assert run_target(tmp_path, target_config(pelanor), acme).returncode == 0
    uploads = pelanor.uploads()

    globex = tap_output(tmp_path, SAMPLES / "globex" / OCTOBER, organization_id="org-globex")
    env = {"MELTANO_LOADER_NAME": "target-pelanor--globex"}
    config = target_config(pelanor, organization_id="org-globex")
    result = run_target(tmp_path, config, globex, env=env)

    binding = bindings_folder() / "integration-bindings" / "int-acme.json"
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].rsplit(" | ", 1)[-1] == (
        "Config validation failed: " + taken_line(binding, "target-pelanor--globex")
    )
    assert pelanor.uploads() == uploads
    assert result.stdout == ""


def test_an_integration_bound_while_the_run_waits_for_input_is_still_refused(
    tmp_path: Path, pelanor: PelanorSandbox
) -> None:
    """Checked again right before the upload, under the month's lock: another process may
    have bound the integration after this one started."""
    globex = tap_output(tmp_path, SAMPLES / "globex" / OCTOBER, organization_id="org-globex")
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(target_config(pelanor, organization_id="org-globex")))
    with subprocess.Popen(
        [str(BIN / "target-pelanor"), "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as target:
        assert target.stderr is not None
        # Started: the check at start has passed.
        wait_for_line(target.stderr, "Working files in", "the target did not start")
        IntegrationBindings(bindings_folder()).bind("int-acme", "org-acme", AT)
        stdout, stderr = target.communicate(globex, timeout=120)

    binding = bindings_folder() / "integration-bindings" / "int-acme.json"
    assert target.returncode == 1
    assert f"org-globex 2025-10: withheld: {taken_line(binding)}" in stderr
    assert pelanor.uploads() == []
    assert stdout == ""


def test_a_binding_is_written_once_and_the_first_stands(tmp_path: Path) -> None:
    bindings = IntegrationBindings(tmp_path)
    assert bindings.organization_of("int-acme") is None
    bindings.bind("int-acme", "org-acme", AT)
    bindings.bind("int-acme", "org-globex", AT)

    assert bindings.organization_of("int-acme") == "org-acme"
    bindings.check("int-acme", "org-acme", "target-pelanor")
    with pytest.raises(BindingProblem) as refused:
        bindings.check("int-acme", "org-globex", "target-pelanor")
    assert str(refused.value) == taken_line(tmp_path / "integration-bindings" / "int-acme.json")
    assert [p.name for p in (tmp_path / "integration-bindings").iterdir()] == ["int-acme.json"]


def test_an_integration_id_never_makes_a_path_outside_the_folder(tmp_path: Path) -> None:
    bindings = IntegrationBindings(tmp_path / "records")
    bindings.bind("../../escape", "org-acme", AT)
    assert bindings.path("../../escape") == (
        tmp_path / "records" / "integration-bindings" / "..%2F..%2Fescape.json"
    )
    assert bindings.organization_of("../../escape") == "org-acme"


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda path: path.write_text("not json"), "it is not a binding this target wrote"),
        (
            lambda path: path.write_text('{"integration_id": "int-other", "organization_id": "x"}'),
            "it is not a binding this target wrote",
        ),
        (lambda path: path.write_bytes(b" " * 70_000), "it is larger than 64 KiB"),
        (os.mkfifo, "it is a named pipe (FIFO), not a regular file"),
        (Path.mkdir, "it is a folder, not a regular file"),
    ],
    ids=["not JSON", "another integration's", "too large", "a FIFO", "a folder"],
)
def test_a_binding_that_cannot_be_read_stops_the_run(tmp_path: Path, make, why: str) -> None:
    """Fail closed; a FIFO is refused without waiting for a writer."""
    bindings = IntegrationBindings(tmp_path)
    path = bindings.path("int-acme")
    path.parent.mkdir(parents=True)
    make(path)

    with pytest.raises(BindingProblem) as unreadable:
        bindings.check("int-acme", "org-acme", "target-pelanor")
    assert str(unreadable.value) == (
        f"this machine's binding of an integration to its organization, {path}, cannot be "
        f"read ({why}); nothing was uploaded. Delete it if it is not target-pelanor's (the "
        "next accepted upload writes it again)"
    )
