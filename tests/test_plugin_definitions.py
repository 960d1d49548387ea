"""One source of truth for settings: the plugin classes, as `--about --format=json` reports them.

meltano.yml's two parent plugins, and the definitions shipped in plugins/ for another
Meltano project, must declare exactly the settings the plugins offer (name, kind, label,
default, sensitivity, option values, description) and exactly their capabilities. Any
drift fails here: `make definitions` (scripts/plugin_definitions.py) writes them from
`--about`. Built-in SDK settings may carry a description of the project's own (what they
mean for these plugins); settings of a capability a plugin does not declare (the
flattening settings the SDK's Tap lists anyway) must not be declared.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from scripts import plugin_definitions
from tests.docs import REPO
from tests.meltano_cli import project_config
from tests.plugin_settings import (
    about,
    declared_settings,
    offered_settings,
    shipped_definitions,
)

PLUGINS = {"tap-openai-costs": "extractors", "target-pelanor": "loaders"}
#: What a shipped definition has that this project's meltano.yml does not: where to get
#: the package (the wheel), and the Hub's metadata (keywords, maintenance status, quality);
#: and what only this project's has: the first organization's settings.
SHIPPED_ONLY = {"pip_url", "keywords", "maintenance_status", "quality"}
PROJECT_ONLY = {"config"}
#: What only a made-up address contains.
PLACEHOLDERS = ("example.com", "example.org", "example.net", "git.example", "your-org")


@pytest.fixture(scope="module")
def abouts() -> dict[str, dict[str, Any]]:
    return {name: about(name) for name in PLUGINS}


def meltano_yml() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((REPO / "meltano.yml").read_text("utf-8"))
    return config


def parent(name: str) -> dict[str, Any]:
    plugins = meltano_yml()["plugins"][PLUGINS[name]]
    plugin: dict[str, Any] = next(p for p in plugins if p["name"] == name)
    return plugin


def assert_matches_about(plugin: dict[str, Any], info: dict[str, Any]) -> None:
    assert sorted(plugin["capabilities"]) == sorted(info["capabilities"])
    assert declared_settings(plugin) == offered_settings(info)
    assert plugin["description"] == info["description"]
    settings = set(declared_settings(plugin))
    required = set(info["settings"].get("required", []))
    for group in plugin["settings_group_validation"]:
        assert required <= set(group) <= settings, group


@pytest.mark.parametrize("name", PLUGINS)
def test_meltano_yml_declares_what_the_plugin_reports(
    abouts: dict[str, dict[str, Any]], name: str
) -> None:
    assert_matches_about(parent(name), abouts[name])


@pytest.mark.parametrize("name", PLUGINS)
def test_shipped_definition_is_the_one_meltano_yml_runs(
    abouts: dict[str, dict[str, Any]], name: str
) -> None:
    definition = shipped_definitions()[name]
    assert_matches_about(definition, abouts[name])
    assert {k: v for k, v in definition.items() if k not in SHIPPED_ONLY} == {
        k: v for k, v in parent(name).items() if k not in SHIPPED_ONLY | PROJECT_ONLY
    }
    hub_metadata = ("name", "namespace", "variant", "label", "description", "keywords")
    assert all(definition[key] for key in hub_metadata)
    # What the Hub's schema allows, and true today: maintained, not rated by the Hub yet.
    assert (definition["maintenance_status"], definition["quality"]) == ("active", "unknown")
    assert definition["pip_url"] == (
        "$MELTANO_PROJECT_ROOT/wheels/openai_costs_to_pelanor-0.3.0-py3-none-any.whl"
    )
    # No home yet: no repository or documentation address rather than a made-up one.
    assert "repo" not in definition
    assert "docs" not in definition


def test_definitions_and_settings_tables_are_what_make_definitions_writes() -> None:
    """plugins/*.yml, meltano.yml's parent plugins and the README's settings tables are
    generated from `--about`: after a setting changes, `make definitions` rewrites them."""
    assert [str(path.relative_to(REPO)) for path in plugin_definitions.stale()] == []
    assert sorted(path.name for path in (REPO / "plugins").glob("*.yml")) == [
        "tap-openai-costs.yml",
        "target-pelanor.yml",
    ]


def test_no_placeholder_address_anywhere_a_user_reads() -> None:
    texts = {
        path.relative_to(REPO): path.read_text("utf-8")
        for path in (REPO / "README.md", REPO / "meltano.yml", REPO / "pyproject.toml")
    } | {path.relative_to(REPO): path.read_text("utf-8") for path in REPO.glob("plugins/*.yml")}
    found = [
        (str(path), placeholder)
        for path, text in texts.items()
        for placeholder in PLACEHOLDERS
        if placeholder in text
    ]
    assert found == []


def test_every_setting_configured_in_meltano_yml_is_declared() -> None:
    """A misspelt setting in an organization's plugin (in meltano.yml or its file in orgs/)
    or an environment fails here, not as a setting Meltano passes on and the plugin
    silently ignores."""
    config = project_config()
    inherits = {
        plugin["name"]: plugin.get("inherit_from")
        for kind in PLUGINS.values()
        for plugin in config["plugins"][kind]
    }

    def root(name: str) -> str:  # the parent an organization's plugin inherits from
        while inherits[name]:
            name = inherits[name]
        return name

    declared = {name: set(declared_settings(parent(root(name)))) for name in inherits}
    configured = [
        (plugin["name"], key)
        for kind in PLUGINS.values()
        for plugin in config["plugins"][kind]
        for key in plugin.get("config", {})
    ] + [
        (plugin["name"], key)
        for environment in config["environments"]
        for kind, plugins in environment.get("config", {}).get("plugins", {}).items()
        for plugin in plugins
        for key in plugin.get("config", {})
    ]
    assert configured
    assert [(name, key) for name, key in configured if key not in declared[name]] == []
