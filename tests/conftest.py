"""Fixtures that start local fakes of the remote services (never the network), and what keeps
the suite safe to run in parallel workers and to stop: each test's own temp and state
folders, signal handlers put back, processes ended when the session ends
(tests/stopping_tests.py), ``--in-process-only`` for ``make check``."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local_sandboxes.openai_costs_api import FakeOpenAI
from local_sandboxes.pelanor import PelanorSandbox
from tests.api_tap import KEY, PROJECTS, api_costs
from tests.fake_clock import FakeClock
from tests.pelanor_sandbox import running_sandbox
from tests.stopping_tests import (
    end_marked_processes,
    interrupt_on_signals,
    mark_children,
    signal_handlers_kept,
)

#: The mark of the processes this pytest process starts (tests/stopping_tests.py).
CHILDREN_MARK = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--in-process-only",
        action="store_true",
        help="skip each test when it starts its first process (make check)",
    )


@pytest.fixture(scope="session", autouse=True)
def in_process_only(request: pytest.FixtureRequest) -> Iterator[None]:
    """With --in-process-only (``make check``), a test is skipped when it (or a fixture it
    uses) starts a process: what is left is the in-process tests, none of them forgotten.
    (Session-wide, in the processes that run tests: xdist's controller starts its
    workers.)"""
    if not request.config.getoption("in_process_only"):
        yield
        return

    def skip(*args: Any, **kwargs: Any) -> None:
        pytest.skip("starts a process (make test runs it)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "_execute_child", skip)
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (those driving Meltano, and the groups one worker runs: a
    build, a database), so parallel workers do not end waiting on one of them."""
    long = ("meltano", "xdist_group")
    items.sort(key=lambda item: not any(m.name in long for m in item.iter_markers()))


def pytest_configure(config: pytest.Config) -> None:
    """Mark the processes the tests start; SIGINT and SIGTERM stop them and the session."""
    config.stash[CHILDREN_MARK] = mark_children()
    if threading.current_thread() is threading.main_thread():
        interrupt_on_signals(config.stash[CHILDREN_MARK])


def pytest_unconfigure(config: pytest.Config) -> None:
    """However the session ended, no process a test started outlives it."""
    if CHILDREN_MARK in config.stash and (
        left := end_marked_processes(config.stash[CHILDREN_MARK])
    ):
        print(f"conftest: ended {len(left)} process(es) the tests left running", file=sys.stderr)


@pytest.fixture(autouse=True)
def signal_handlers_restored() -> Iterator[None]:
    """A plugin built in process installs its SIGINT and SIGTERM handlers here; they are
    put back after each test, or Ctrl-C would stop working for the rest of the session."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with signal_handlers_kept():
        yield


@pytest.fixture
def start_pelanor(tmp_path: Path) -> Iterator[Callable[..., PelanorSandbox]]:
    """Start local Pelanor sandboxes: ``start_pelanor(**config)`` (as
    :func:`tests.pelanor_sandbox.running_sandbox` takes it), the first keeping its uploads
    in ``tmp_path / "pelanor"``; each is stopped after the test."""
    started: list[PelanorSandbox] = []
    with contextlib.ExitStack() as running:

        def start(**config: Any) -> PelanorSandbox:
            folder = tmp_path / ("pelanor" if not started else f"pelanor-{len(started) + 1}")
            started.append(running.enter_context(running_sandbox(folder, **config)))
            return started[-1]

        yield start


@pytest.fixture
def pelanor(start_pelanor: Callable[..., PelanorSandbox]) -> PelanorSandbox:
    """A local Pelanor sandbox that knows the acme and globex integrations."""
    return start_pelanor()


@pytest.fixture
def fake_time() -> FakeClock:
    """A clock that moves only when the code under test sleeps on it (tests/fake_clock.py)."""
    return FakeClock()


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


@pytest.fixture
def openai(start_openai: Callable[..., FakeOpenAI]) -> FakeOpenAI:
    """The OpenAI fake serving tests/api_tap.py's months (September to November 2025) to
    its admin key, seven results a page."""
    return start_openai(api_costs(), PROJECTS, KEY, page_size_override=7)


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
