"""One source of truth for settings: the plugin classes, as `--about --format=json` reports them.

meltano.yml's two parent plugins, and the definitions docs/meltano-project.md gives to paste
into another Meltano project, must declare exactly the settings the plugins offer (name, kind,
label, default, sensitivity, option values, description) and exactly their capabilities.
Any drift fails here. Built-in SDK settings may carry a description of the project's own
(what they mean for these plugins); settings of a capability a plugin does not declare
(the flattening settings the SDK's Tap lists anyway) must not be declared.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.docs import REPO
from tests.plugin_settings import (
    about,
    declared_settings,
    documented_definitions,
    offered_settings,
)

PLUGINS = {"tap-openai-costs": "extractors", "target-pelanor": "loaders"}
#: What a definition to paste has that this project's meltano.yml does not: where to get
#: the package, and Hub metadata that points at the repository's home.
PASTE_ONLY = {"pip_url", "repo", "docs", "keywords"}


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
def test_documented_definition_is_the_one_meltano_yml_runs(
    abouts: dict[str, dict[str, Any]], name: str
) -> None:
    definition = documented_definitions()[name]
    assert_matches_about(definition, abouts[name])
    assert {k: v for k, v in definition.items() if k not in PASTE_ONLY} == {
        k: v for k, v in parent(name).items() if k not in PASTE_ONLY
    }
    hub_metadata = ("name", "namespace", "variant", "label", "description", "repo", "docs")
    assert all(definition[key] for key in (*hub_metadata, "keywords", "pip_url"))
    assert definition["pip_url"] != "-e ."


def test_every_setting_configured_in_meltano_yml_is_declared() -> None:
    """A misspelt setting in an organization's plugin or an environment fails here, not as
    a setting Meltano passes on and the plugin silently ignores."""
    config = meltano_yml()
    inherits = {
        plugin["name"]: plugin.get("inherit_from")
        for kind in PLUGINS.values()
        for plugin in config["plugins"][kind]
    }

    def root(name: str) -> str:  # an organization's --pelanor twin inherits from its plugin
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
