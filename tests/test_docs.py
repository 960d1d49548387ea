"""The documentation holds together: every relative link and anchor resolves, and the
settings tables are what the plugins report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts.docs_settings import PAGE, PLUGINS, rendered
from tests.docs import REPO, pages
from tests.plugin_settings import about

#: Inline links and images, `[text](target)`; a target may be wrapped in <...>.
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^ *```.*?^ *```$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
_HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def anchors(page: Path) -> set[str]:
    """The anchors a renderer such as GitHub's gives the page's headings."""
    text = _FENCE.sub("", page.read_text("utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for heading in _HEADING.findall(text):
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", plain.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(page: Path) -> list[str]:
    """The relative link targets of a page, outside code."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", page.read_text("utf-8")))
    return [target for target in _LINK.findall(text) if not _EXTERNAL.match(target)]


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    """A line for each relative link of the page that leads nowhere, or out of `root`."""
    problems = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(root)}: ({target})"
        if not linked.is_relative_to(root):
            problems.append(f"{where} leaves the repository")
        elif not linked.exists():
            problems.append(f"{where} does not exist")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            problems.append(f"{where} has no heading #{anchor}")
    return problems


@pytest.mark.parametrize(
    "page",
    [*pages(), REPO / "bench" / "README.md"],
    ids=lambda page: str(page.relative_to(REPO)),
)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_names_each_link_that_leads_nowhere(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "b.md").write_text(
        "# B page\n\n## The `x` setting: why\n\n## Twice\n## Twice\n"
    )
    page = root / "README.md"
    page.write_text(
        "# Top\n\n[ok](docs/b.md#the-x-setting-why) [ok](docs/b.md#twice-1) [ok](#top)\n"
        "[ok](docs/) [web](https://example.com/x.md#nowhere) `[code](gone.md)`\n"
        "[gone](docs/gone.md) [anchor](docs/b.md#nowhere) [self](#nowhere)\n"
        "[out](../shared/reference.md)\n\n```\n[fenced](gone.md)\n```\n"
    )
    assert broken_links(page, root) == [
        "README.md: (docs/gone.md) does not exist",
        "README.md: (docs/b.md#nowhere) has no heading #nowhere",
        "README.md: (#nowhere) has no heading #nowhere",
        "README.md: (../shared/reference.md) leaves the repository",
    ]


def test_settings_tables_are_what_the_plugins_report() -> None:
    page = PAGE.read_text("utf-8")
    assert rendered(page, {name: about(name) for name in PLUGINS}) == page, (
        "docs/settings.md differs from the plugins' --about: run make docs-settings"
    )


def test_the_changelog_starts_with_the_version_the_package_declares() -> None:
    """A behaviour change bumps the version and says so in CHANGELOG.md, together."""
    pyproject = (REPO / "pyproject.toml").read_text("utf-8")
    (declared,) = re.findall(r'^version = "([^"]+)"$', pyproject, re.M)
    headings = re.findall(r"^## (\S+)$", (REPO / "CHANGELOG.md").read_text("utf-8"), re.M)
    assert headings[0] == declared
