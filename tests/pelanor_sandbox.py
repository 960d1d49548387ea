"""The local Pelanor sandbox as the tests configure it and start it: one token, two
integrations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from local_sandboxes.pelanor import PelanorSandbox

#: The Pelanor token the sandbox accepts in tests.
TOKEN = "tok_8f3Kx2_s3cr3t_value"


def sandbox_config(**extra: Any) -> dict[str, Any]:
    """The sandbox's config: the test token, acme's and globex's integrations, and `extra`
    (such as ``faults``)."""
    return {
        "tokens": [TOKEN],
        "integrations": {"int-acme": "org-acme", "int-globex": "org-globex"},
    } | extra


@contextlib.contextmanager
def running_sandbox(data_dir: Path, **config: Any) -> Iterator[PelanorSandbox]:
    """The one way tests start a sandbox: on 127.0.0.1 with ``sandbox_config(**config)``
    (which ``config`` may override, ``tokens`` and ``integrations`` included), its uploads
    kept in ``data_dir``; stopped on leaving, once the uploads in flight are stored."""
    with PelanorSandbox(sandbox_config(**config), data_dir) as sandbox:
        yield sandbox
