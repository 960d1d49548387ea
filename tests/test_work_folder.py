"""openai_costs.work_folder: the working folder per process both plugins can use."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from openai_costs.work_folder import (
    WorkFolderError,
    default_root,
    open_work_folder,
    remove_stale,
)


def test_a_work_folder_is_private_and_gone_after_cleanup(tmp_path) -> None:
    work = open_work_folder(tmp_path / "root", "tap-openai-costs")
    assert work.path.parent == tmp_path / "root"
    assert work.path.name.startswith(f"tap-openai-costs.{os.getpid()}.")
    assert stat.S_IMODE(work.path.stat().st_mode) == 0o700
    (work.path / "month.csv").write_text("rows")
    work.cleanup()
    work.cleanup()  # a second time changes nothing
    assert list((tmp_path / "root").iterdir()) == []


def test_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path) -> None:
    root = tmp_path / "root"
    alive = open_work_folder(root, "target-pelanor")
    other_plugin = open_work_folder(root, "tap-openai-costs")
    # A process that opened its folder and died without cleaning up.
    script = (
        "import os, sys; from openai_costs.work_folder import open_work_folder; "
        f"w = open_work_folder({str(root)!r}, 'target-pelanor'); "
        "(w.path / 'month.csv').write_text('rows'); print(w.path, flush=True); os._exit(0)"
    )
    dead = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(dead).is_dir()

    assert [str(p) for p in remove_stale(root, "target-pelanor")] == [dead]
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [
            alive.path.name,
            alive.path.name + ".lock",
            other_plugin.path.name,
            other_plugin.path.name + ".lock",
        ]
    )
    alive.cleanup()
    other_plugin.cleanup()


def test_a_default_root_that_is_not_this_users_own_is_refused(tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    default_root("target-pelanor").symlink_to(elsewhere)
    with pytest.raises(WorkFolderError) as refused:
        open_work_folder(None, "target-pelanor")
    assert str(refused.value) == (
        f"{default_root('target-pelanor')} is not a folder of this user's own (another user "
        "or a link created it); remove it, or set work_dir to a private folder"
    )
    assert list(elsewhere.iterdir()) == []
