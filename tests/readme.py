"""The README's shell commands, taken from its code blocks as a user pastes them."""

from __future__ import annotations

import re
import shlex
import textwrap

from tests.plugin_settings import REPO

_ASSIGNMENT = re.compile(r"[A-Z_][A-Z0-9_]*=")


def sh_block(containing: str) -> str:
    """The one ```sh block of the README that contains `containing`."""
    text = (REPO / "README.md").read_text("utf-8")
    pattern = re.compile(r"^( *)```sh\n(.*?)^\1```$", re.M | re.S)
    blocks = [textwrap.dedent(match.group(2)) for match in pattern.finditer(text)]
    found = [block for block in blocks if containing in block]
    assert len(found) == 1, f"{len(found)} README sh blocks contain {containing!r}"
    return found[0]


def commands(block: str) -> list[tuple[dict[str, str], list[str]]]:
    """Each command line of a block: its leading VAR=value assignments and its words."""
    parsed = []
    for line in block.replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = shlex.split(line)
        env = {}
        while _ASSIGNMENT.match(words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        parsed.append((env, words))
    return parsed
