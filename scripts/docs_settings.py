"""Write the settings tables of docs/settings.md from what each plugin reports.

`make docs-settings` runs this; it is the only writer of those tables, and running it again
changes nothing. tests/test_docs.py renders the tables again and fails when the page differs,
so a setting added to a plugin without `make docs-settings` fails the tests.

The tables are rendered from `<plugin> --about --format=json`, with the rows and columns of
the SDK's own `--about --format=markdown` (every setting and each nested one: setting,
required, default, description), not copied from that markdown: singer-sdk 0.54 prints a
Python object there for some defaults (`TargetLoadMethods.APPEND_ONLY` for load_method's
`append-only`) and leaves text such as `<system temp>` unescaped, which a Markdown renderer
takes for an HTML tag and hides.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "settings.md"
PLUGINS = ("tap-openai-costs", "target-pelanor")
BEGIN = (
    "<!-- settings of {name}: written by `make docs-settings` from "
    "`{name} --about --format=json`; do not edit -->"
)
END = "<!-- end of the settings of {name} -->"
_CODE = re.compile(r"(`+)(.+?)\1")


def about(name: str, bin_dir: Path | None = None) -> dict[str, Any]:
    """`<name> --about --format=json`, run from `bin_dir` (default: this Python's)."""
    executable = (bin_dir or Path(sys.executable).parent) / name
    done = subprocess.run(
        [str(executable), "--about", "--format=json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    info: dict[str, Any] = json.loads(done.stdout)
    return info


def settings_table(info: dict[str, Any]) -> str:
    """The plugin's settings as a Markdown table, one row per setting and nested setting."""
    lines = [
        "| Setting | Required | Default | Description |",
        "|:--|:--:|:--|:--|",
        *_rows(info["settings"]),
    ]
    return "\n".join(lines) + "\n"


def _rows(schema: dict[str, Any], parent: str = "") -> list[str]:
    required = set(schema.get("required", []))
    rows = []
    for name, setting in schema.get("properties", {}).items():
        path = f"{parent}.{name}" if parent else name
        default = f"`{_json_text(setting['default'])}`" if "default" in setting else ""
        description = _escape(" ".join(str(setting.get("description", "")).split()))
        yes = "yes" if name in required else ""
        rows.append(f"| `{path}` | {yes} | {default} | {description} |")
        rows.extend(_rows(setting, path))
    return rows


def _json_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|")


def _escape(text: str) -> str:
    """Text for a table cell: code spans kept, and outside them the characters a Markdown
    renderer would take for HTML or emphasis escaped; `|` escaped everywhere."""
    parts = []
    position = 0
    for code in _CODE.finditer(text):
        parts.append(_escape_plain(text[position : code.start()]))
        parts.append(code.group(0))
        position = code.end()
    parts.append(_escape_plain(text[position:]))
    return "".join(parts).replace("|", "\\|")


def _escape_plain(text: str) -> str:
    return text.replace("<", "\\<").replace("*", "\\*")


def rendered(page: str, abouts: dict[str, dict[str, Any]]) -> str:
    """The page with each plugin's table between its markers replaced by a fresh one."""
    for name in PLUGINS:
        begin, end = BEGIN.format(name=name), END.format(name=name)
        if page.count(begin) != 1 or page.count(end) != 1:
            raise ValueError(f"{PAGE}: needs the lines {begin!r} and {end!r} once each")
        head, rest = page.split(begin + "\n", 1)
        _, tail = rest.split(end, 1)
        page = f"{head}{begin}\n\n{settings_table(abouts[name])}\n{end}{tail}"
    return page


def main(argv: list[str]) -> int:
    """Write the tables; with --check, only say whether they are current (exit status 1 if
    not)."""
    check = argv == ["--check"]
    if argv and not check:
        print("usage: docs_settings.py [--check]", file=sys.stderr)
        return 2
    page = PAGE.read_text("utf-8")
    fresh = rendered(page, {name: about(name) for name in PLUGINS})
    if check:
        if fresh != page:
            print(f"{PAGE} is out of date: run make docs-settings", file=sys.stderr)
            return 1
        return 0
    if fresh != page:
        PAGE.write_text(fresh, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
