"""The documentation's code blocks, as a user copies them from the page.

One reader for every test that runs what the documentation says: shell commands, the plugin
definitions to paste, SQL. Pages are README.md, CONTRIBUTING.md and docs/*.md, named by
their path in the repository.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_ASSIGNMENT = re.compile(r"[A-Z_][A-Z0-9_]*=")
#: A fenced block, indented as a whole when it sits in a list item.
_BLOCK = re.compile(r"^( *)```([a-z]*)\n(.*?)^\1```$", re.M | re.S)
_DEFINITION = re.compile(r"# ([a-z-]+)\.yml\n")


def pages() -> list[Path]:
    """Every page of the documentation."""
    return [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(lang: str, page: str) -> list[str]:
    """Every ```lang block of a page, dedented, in the page's order."""
    text = (REPO / page).read_text("utf-8")
    return [
        textwrap.dedent(match.group(3)) for match in _BLOCK.finditer(text) if match.group(2) == lang
    ]


def block(lang: str, containing: str, page: str) -> str:
    """The one ```lang block of the page that contains `containing`."""
    found = [text for text in blocks(lang, page) if containing in text]
    assert len(found) == 1, f"{len(found)} {lang} blocks of {page} contain {containing!r}"
    return found[0]


def commands(block: str) -> list[tuple[dict[str, str], list[str]]]:
    """Each command line of a shell block: its leading VAR=value assignments and its words."""
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


def definition_texts(page: str) -> dict[str, str]:
    """The plugin definitions a page gives to save as files, by plugin name: each is a
    ```yaml block whose first line names the file, such as `# tap-openai-costs.yml`."""
    definitions = {}
    for text in blocks("yaml", page):
        named = _DEFINITION.match(text)
        if named:
            definitions[named.group(1)] = text
    return definitions
