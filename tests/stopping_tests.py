"""What lets the test suite stop on Ctrl-C and on SIGTERM within seconds, and leave no process
behind (tests/conftest.py wires it).

- Signal handlers: a plugin built in process (``TargetPelanor(...)``, ``TapOpenAICosts(...)``)
  installs the SDK's SIGINT and SIGTERM handlers in the test process, and the target's
  ignores a signal once its run has finished, so a handler left there would swallow Ctrl-C
  for the rest of the session. :func:`signal_handlers_kept` puts them back after each test.
- SIGINT or SIGTERM to a pytest process (the controller or an xdist worker) is taken as
  Ctrl-C in a terminal: SIGTERM is passed on to the processes this one started, then
  ``KeyboardInterrupt`` unwinds the test and the fixtures' teardown runs.
- Processes the tests start carry a mark in their environment (:data:`MARK`, inherited by
  their own children, orphans included: a target started by ``meltano run``, a Postgres
  server started by ``pg_ctl``); when the session ends, however it ends, the marked
  processes still running are sent SIGTERM, then SIGKILL (:func:`end_marked_processes`).
  Each pytest process gives its children a mark of its own that starts with the one it
  inherited, so an outer pytest ends what an inner one (or an xdist worker) left.

Linux only (``/proc``); elsewhere nothing is found and nothing is ended.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

#: The environment variable that marks processes started (directly or not) by the tests.
MARK = "OPENAI_COSTS_TEST_PROCESSES"
#: The signals the plugins handle, and Ctrl-C and ``kill`` send.
STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: How long a marked process gets to end after SIGTERM before it is killed.
GRACE_SECONDS = 3.0


def mark_children() -> str:
    """Give the processes this one starts from now on a mark of their own (the inherited
    mark, then a fresh token), and return it."""
    inherited = os.environ.get(MARK)
    mark = f"{inherited}:{secrets.token_hex(6)}" if inherited else secrets.token_hex(6)
    os.environ[MARK] = mark
    return mark


def marked_processes(mark: str) -> list[int]:
    """Running processes (zombies aside) that carry ``mark`` or a mark an inner pytest made
    from it; never this process."""
    wanted = f"{MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        try:
            variables = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or another user's
            continue
        if any(v == wanted or v.startswith(wanted + b":") for v in variables):
            found.append(pid)
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def end_marked_processes(mark: str, grace: float = GRACE_SECONDS) -> list[int]:
    """SIGTERM to every process carrying ``mark``, SIGKILL to those still running after
    ``grace`` seconds (a bounded wait, polled); returns the processes that were running."""
    running = marked_processes(mark)
    if not running:
        return []
    _signal_all(running, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (left := marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_all(left, signal.SIGKILL)
    return running


def interrupt_on_signals(mark: str) -> None:
    """From now on, SIGINT and SIGTERM to this process are Ctrl-C in a terminal: SIGTERM is
    passed on to the processes it started (as a terminal's Ctrl-C reaches the whole process
    group; an xdist worker would otherwise carry on with its test while the controller
    waits for it), then ``KeyboardInterrupt`` is raised here."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        _signal_all(marked_processes(mark), signal.SIGTERM)
        raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")

    for signum in STOPPING_SIGNALS:
        signal.signal(signum, interrupt)


@contextlib.contextmanager
def signal_handlers_kept() -> Iterator[None]:
    """Whatever the code inside installs for SIGINT and SIGTERM, the handlers in place
    before are back afterwards."""
    before = {signum: signal.getsignal(signum) for signum in STOPPING_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in before.items():
            if signal.getsignal(signum) is not handler:
                signal.signal(signum, handler)
