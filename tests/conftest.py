"""Fixtures that start local fakes of the remote services (never the network)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from target_pelanor.sandbox import PelanorSandbox

#: The Pelanor token the sandbox accepts in tests.
TOKEN = "tok_8f3Kx2_s3cr3t_value"


def sandbox_config(**extra) -> dict:
    return {
        "tokens": [TOKEN],
        "integrations": {"int-acme": "org-acme", "int-globex": "org-globex"},
    } | extra


@pytest.fixture
def pelanor(tmp_path: Path) -> Iterator[PelanorSandbox]:
    """A local Pelanor sandbox that knows the acme and globex integrations."""
    with PelanorSandbox(sandbox_config(), tmp_path / "pelanor") as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def private_temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own system temp folder, in process and in the plugins it starts:
    the target's working files and upload locks (with their record of the last upload)
    live there by default, and must not leak from one test into another."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder
