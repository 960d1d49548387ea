"""The test suite itself stops on Ctrl-C and on SIGTERM, and leaves no process behind
(tests/stopping_tests.py, wired in tests/conftest.py): a developer must never need SIGKILL.

The process test runs an inner pytest with the suite's conftest on two tests: one builds the
target in process (which installs its signal handlers), the next starts target-pelanor as a
process that waits on an input nobody closes. The waits are bounded; nothing is timed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from target_pelanor.target import TargetPelanor
from tests.docs import REPO
from tests.stopping_tests import signal_handlers_kept

#: The inner session: serial, with the suite's conftest (its fixtures and hooks).
INNER_OPTIONS = ("-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "tests.conftest")
INNER_TESTS = """
import json
import os
import subprocess
from pathlib import Path

from target_pelanor.target import TargetPelanor
from tests.singer import BIN


def test_a_target_built_in_process(tmp_path):
    TargetPelanor(config={"organization_id": "org-acme", "dry_run": True}, parse_env_config=False)


def test_a_target_waiting_for_input(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"organization_id": "org-acme", "dry_run": True}))
    target = subprocess.Popen(
        [str(BIN / "target-pelanor"), "--config", str(config)],
        stdin=int(os.environ["HELD_INPUT"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    Path(os.environ["READY_FILE"]).write_text(str(target.pid))
    target.wait()
"""


def running(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition, seconds: float) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass (a bound, not a measure)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_signal_handlers_a_plugin_installs_in_process_are_put_back() -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    with signal_handlers_kept():
        target = TargetPelanor(
            config={"organization_id": "org-acme", "dry_run": True}, parse_env_config=False
        )
        installed = signal.getsignal(signal.SIGINT)
        assert getattr(installed, "__self__", None) is target  # what the fixture must undo
        assert signal.getsignal(signal.SIGTERM) == installed
    assert {signum: signal.getsignal(signum) for signum in before} == before


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_a_running_test_session_and_the_target_it_started(
    tmp_path: Path, signum: int
) -> None:
    inner = tmp_path / "inner_tests.py"
    inner.write_text(textwrap.dedent(INNER_TESTS))
    ready = tmp_path / "ready"
    held_input, keep_open = os.pipe()
    try:
        session = subprocess.Popen(
            [sys.executable, "-m", "pytest", *INNER_OPTIONS, str(inner)],
            cwd=REPO,
            env=os.environ | {"HELD_INPUT": str(held_input), "READY_FILE": str(ready)},
            pass_fds=(held_input,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        os.close(held_input)
        try:
            assert wait_until(ready.exists, 120), "the inner session never reached its test"
            target = int(ready.read_text())
            session.send_signal(signum)
            output, _ = session.communicate(timeout=30)
        finally:
            session.kill()
            session.wait()
        # Interrupted (2), not a test that failed (1) and the session going on.
        assert session.returncode == 2, output
        assert "KeyboardInterrupt" in output
        assert "1 passed" in output
        assert wait_until(lambda: not running(target), 10), "target-pelanor left running"
    finally:
        os.close(keep_open)
