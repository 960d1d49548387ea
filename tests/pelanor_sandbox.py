"""The local Pelanor sandbox as the tests configure it: one token, two integrations."""

from __future__ import annotations

from typing import Any

#: The Pelanor token the sandbox accepts in tests.
TOKEN = "tok_8f3Kx2_s3cr3t_value"


def sandbox_config(**extra: Any) -> dict[str, Any]:
    """The sandbox's config: the test token, acme's and globex's integrations, and `extra`
    (such as ``faults``)."""
    return {
        "tokens": [TOKEN],
        "integrations": {"int-acme": "org-acme", "int-globex": "org-globex"},
    } | extra
