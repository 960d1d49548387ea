"""The Meltano settings each plugin should declare, read from the plugin's own `--about`.

The plugin classes are the one source of truth; `meltano.yml` and the plugin definitions in
plugins/ are checked against them (tests/test_plugin_definitions.py).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml
from singer_sdk.helpers import capabilities as sdk

from scripts.docs_settings import about as run_about
from tests.docs import REPO

#: The page that tells how to add the plugins to another Meltano project.
DEFINITIONS_PAGE = "docs/meltano-project.md"

#: The SDK's settings of each capability. `--about` can list some of a capability the
#: plugin does not declare (the SDK's Tap adds the flattening settings whatever its
#: capabilities say); a plugin does not offer those, so Meltano must not declare them.
CAPABILITY_SETTINGS: dict[str, dict[str, Any]] = {
    "stream-maps": sdk.STREAM_MAPS_CONFIG,
    "schema-flattening": sdk.FLATTENING_CONFIG,
    "batch": sdk.BATCH_CONFIG,
    "validate-records": sdk.TARGET_VALIDATE_RECORDS_CONFIG,
    "activate-version": sdk.ACTIVATE_VERSION_CONFIG,
}
#: Every setting the SDK adds by itself. Their descriptions in meltano.yml are the project's
#: own (what the setting means for these plugins); everything else must match.
SDK_SETTINGS = frozenset(
    name
    for schema in (
        *CAPABILITY_SETTINGS.values(),
        sdk.ADD_RECORD_METADATA_CONFIG,
        sdk.TARGET_LOAD_METHOD_CONFIG,
        sdk.TARGET_BATCH_SIZE_ROWS_CONFIG,
        sdk.TARGET_SCHEMA_CONFIG,
        sdk.TARGET_HARD_DELETE_CONFIG,
        sdk.EMIT_ACTIVATE_VERSION_CONFIG,
    )
    for name in schema["properties"]
)
#: JSON schema type -> Meltano setting kind (an `enum` makes it `options`).
KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
}


@cache
def about(executable: str) -> dict[str, Any]:
    """`<executable> --about --format=json`, as Meltano's Hub tooling reads it (run once per
    test session; don't change what it returns)."""
    return run_about(executable)


def offered_settings(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings of `--about` that the plugin offers, each as Meltano should declare it."""
    not_offered = {
        name
        for capability, schema in CAPABILITY_SETTINGS.items()
        if capability not in info["capabilities"]
        for name in schema["properties"]
    }
    return {
        name: _from_schema(name, schema)
        for name, schema in info["settings"]["properties"].items()
        if name not in not_offered
    }


def declared_settings(plugin: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A Meltano plugin definition's settings, in the shape of `offered_settings`."""
    return {setting["name"]: _from_meltano(setting) for setting in plugin.get("settings", [])}


def _from_schema(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    assert len(types) == 1, f"{name}: no single JSON type in {schema}"
    return {
        "kind": "options" if "enum" in schema else KINDS[types[0]],
        "label": schema.get("title"),
        "value": schema.get("default"),
        "sensitive": bool(schema.get("secret")),
        "options": schema.get("enum"),
        "description": None if name in SDK_SETTINGS else schema.get("description"),
    }


def _from_meltano(setting: dict[str, Any]) -> dict[str, Any]:
    options = setting.get("options")
    return {
        "kind": setting.get("kind"),
        "label": setting.get("label"),
        "value": setting.get("value"),
        "sensitive": bool(setting.get("sensitive")),
        "options": None if options is None else [option["value"] for option in options],
        "description": None if setting["name"] in SDK_SETTINGS else setting.get("description"),
    }


def shipped_definitions() -> dict[str, dict[str, Any]]:
    """The plugin definitions shipped in plugins/ for `meltano add --from-ref`, by name."""
    return {name: yaml.safe_load(text) for name, text in shipped_definition_texts().items()}


def shipped_definition_texts() -> dict[str, str]:
    """The same definitions as files hold them, to copy into another project unchanged."""
    return {path.stem: path.read_text("utf-8") for path in sorted((REPO / "plugins").glob("*.yml"))}
