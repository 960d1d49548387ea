"""Fixtures that start local fakes of the remote services (never the network)."""

from __future__ import annotations

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
