"""Fixtures that start local fakes of the remote services (never the network)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from target_pelanor.sandbox import PelanorSandbox
from tests.fake_openai import FakeOpenAI

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


@pytest.fixture
def start_openai() -> Iterator[Callable[..., FakeOpenAI]]:
    """Start fakes of OpenAI's admin API: ``start_openai(costs, projects, key, **options)``
    (options as :class:`FakeOpenAI` takes them); each is stopped after the test."""
    started: list[FakeOpenAI] = []

    def start(costs: Any, projects: list[dict[str, Any]], key: str, **options: Any) -> FakeOpenAI:
        fake = FakeOpenAI(costs, projects, key, **options).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture(autouse=True)
def private_state_folder(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test gets its own per-user state folder (``XDG_STATE_HOME``), in process and in
    the plugins it starts: the target keeps this machine's upload records there by default,
    and a record must not leak from one test into another."""
    folder = tmp_path_factory.mktemp("user-state")
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder


@pytest.fixture(autouse=True)
def private_temp_folder(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test gets its own system temp folder, in process and in the plugins it starts:
    the target's working files and upload locks live there by default, and must not leak
    from one test into another. (Beside the test's tmp_path, not in it: tests check what
    their tmp_path holds.)"""
    folder = tmp_path_factory.mktemp("system-tmp")
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder
