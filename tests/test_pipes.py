"""The pipes the plugins' messages travel through: each plugin widens its own side to
1 MiB (openai_costs.pipes), and leaves anything that is not a pipe, or a pipe the system
will not widen, as it is."""

from __future__ import annotations

import fcntl
import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from openai_costs import pipes
from openai_costs.pipes import PIPE_BYTES, widen_pipe
from tests.singer import BIN, tap_output

SAMPLE = Path(__file__).parent.parent / "samples" / "acme" / "cost_2025-10-01_2025-10-31.csv"
LINUX_DEFAULT = 64 * 1024


def pipe_bytes(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        os.close(fd)


def test_a_pipe_is_widened_from_either_end(pipe: tuple[int, int]) -> None:
    read, write = pipe
    assert pipe_bytes(read) == LINUX_DEFAULT
    with os.fdopen(write, "wb", closefd=False) as stream:
        widen_pipe(stream)
    assert pipe_bytes(read) == PIPE_BYTES


def test_a_wider_pipe_is_never_narrowed(
    pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    read, _ = pipe
    monkeypatch.setattr(pipes, "PIPE_BYTES", 4096)
    with os.fdopen(read, "rb", closefd=False) as stream:
        widen_pipe(stream)
    assert pipe_bytes(read) == LINUX_DEFAULT


def test_a_refusal_leaves_the_pipe_as_it_is(
    pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    read, _ = pipe
    asking = fcntl.fcntl

    def refusing(fd: int, command: int, *args: int) -> int:
        if command == fcntl.F_SETPIPE_SZ:
            raise PermissionError(1, "Operation not permitted")
        return asking(fd, command, *args)

    monkeypatch.setattr(fcntl, "fcntl", refusing)
    with os.fdopen(read, "rb", closefd=False) as stream:
        widen_pipe(stream)
    monkeypatch.undo()
    assert pipe_bytes(read) == LINUX_DEFAULT


def test_files_and_streams_without_a_descriptor_are_left_alone(tmp_path: Path) -> None:
    with (tmp_path / "messages").open("w") as file:
        widen_pipe(file)
        file.write("kept")
    widen_pipe(io.StringIO())
    closed = (tmp_path / "messages").open()
    closed.close()
    widen_pipe(closed)
    assert (tmp_path / "messages").read_text() == "kept"


def test_the_tap_widens_the_pipe_it_writes_to(tmp_path: Path) -> None:
    config = tmp_path / "tap.json"
    config.write_text(json.dumps({"paths": [str(SAMPLE)], "organization_id": "org-acme"}))
    with subprocess.Popen(
        [str(BIN / "tap-openai-costs"), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as tap:
        assert tap.stdout is not None
        written = tap.stdout.read()
        assert tap.wait(timeout=120) == 0
        assert pipe_bytes(tap.stdout.fileno()) == PIPE_BYTES
    assert written.count(b'"type":"RECORD"') > 0


def test_the_target_widens_the_pipe_it_reads_from(tmp_path: Path) -> None:
    messages = tap_output(tmp_path, SAMPLE).encode()
    output = tmp_path / "out"
    config = tmp_path / "target.json"
    config.write_text(
        json.dumps({"organization_id": "org-acme", "dry_run": True, "output_dir": str(output)})
    )
    read, write = os.pipe()
    try:  # this end of the pipe stays open, to ask its size once the target is done
        with subprocess.Popen(
            [str(BIN / "target-pelanor"), "--config", str(config)],
            stdin=read,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as target:
            with os.fdopen(write, "wb") as stream:
                stream.write(messages)
            assert target.wait(timeout=120) == 0
        assert pipe_bytes(read) == PIPE_BYTES
    finally:
        os.close(read)
    assert (output / SAMPLE.name).read_bytes() == SAMPLE.read_bytes()
