"""Every private singer-sdk name the product code uses is listed, with why, in one place:
CONTRIBUTING.md's "Private SDK names we use". A use not listed fails here, as does a listed
name no longer used, so the table stays true.

A private SDK name is a ``_``-prefixed (not dunder) method or attribute of a singer-sdk
class, used by the plugins as an attribute, defined by them as an override, or a private
singer-sdk module they import from. The scan reads the code (ast): no plugin runs.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import singer_sdk

REPO = Path(__file__).resolve().parent.parent
PRODUCT = ("openai_costs", "tap_openai_costs", "target_pelanor")

#: Attributes of our own classes that happen to share a name with a private SDK one.
OWN_NAMES = frozenset({"_inner", "_logger", "_state", "_value"})


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _sdk_private_names() -> set[str]:
    """The private methods and attributes of singer-sdk's classes."""
    names: set[str] = set()
    for source in Path(singer_sdk.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in ast.walk(node):
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(item.name)
                elif isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name):
                    if item.value.id in {"self", "cls"}:
                        names.add(item.attr)
                elif isinstance(item, ast.Assign | ast.AnnAssign):
                    targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                    names.update(t.id for t in targets if isinstance(t, ast.Name))
    return {name for name in names if _private(name)} - OWN_NAMES


def _used_in(code: str, sdk_names: set[str]) -> set[str]:
    """The private SDK names a module's code uses."""
    used: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Attribute) and node.attr in sdk_names:
            used.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in sdk_names:
            used.add(node.name)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
            assert node.module is not None
            if any(_private(part) for part in node.module.split(".")):
                used.add(node.module)
            used.update(f"{node.module}.{a.name}" for a in node.names if _private(a.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "singer_sdk" and any(_private(part) for part in parts):
                    used.add(alias.name)
    return used


def _uses(sdk_names: set[str]) -> dict[str, set[str]]:
    """Each private SDK name the product code uses, and the modules that use it."""
    uses: dict[str, set[str]] = defaultdict(set)
    for package in PRODUCT:
        for source in sorted((REPO / package).rglob("*.py")):
            for name in _used_in(source.read_text(encoding="utf-8"), sdk_names):
                uses[name].add(str(source.relative_to(REPO)))
    return uses


def _listed() -> dict[str, str]:
    """The table's private names (a method as its last part) and the modules it names."""
    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.split("## Private SDK names we use", 1)[1].split("\n## ", 1)[0]
    listed = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([^`]+)` \| (.+?) \| .+ \|", line)
        if match:
            name = match[1]
            key = name if name.startswith("singer_sdk.") else name.rsplit(".", 1)[1]
            listed[key] = match[2]
    return listed


def test_every_private_sdk_name_the_plugins_use_is_listed_with_why() -> None:
    uses = _uses(_sdk_private_names())
    listed = _listed()
    assert sorted(uses) == sorted(listed)
    for name, modules in uses.items():  # each module named where the table says
        named = set(re.findall(r"`([^`]+\.py)`", listed[name]))
        assert named == modules, name


def test_the_scan_sees_overrides_attributes_and_private_modules() -> None:
    code = (
        "from singer_sdk.helpers._util import utc_now\n"
        "import singer_sdk.helpers._typing\n"
        "class S:\n"
        "    def _sync_records(self):\n"
        "        return self._tap, self.name, self._own\n"
    )
    assert _used_in(code, _sdk_private_names()) == {
        "singer_sdk.helpers._util",
        "singer_sdk.helpers._typing",
        "_sync_records",
        "_tap",
    }
