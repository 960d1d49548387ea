"""The shipped plugin definitions (plugins/*.yml) are valid by Meltano Hub's own JSON schemas.

The schemas are the ``schemas/`` folder of the public meltano/hub repository, which this
repository does not carry: point ``MELTANO_HUB_SCHEMAS`` at that folder of a clone to run
these tests (CONTRIBUTING.md, "Checks that need a download"); without it they are skipped.
They validate as the Hub's own ``utility_scripts/plugin_definitions/plugin_schema_validate.py``
does: Draft 7, with the ``common`` and ``plugin_definitions`` schemas as one registry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = os.environ.get("MELTANO_HUB_SCHEMAS", "")

pytestmark = pytest.mark.skipif(
    not SCHEMAS, reason="set MELTANO_HUB_SCHEMAS to the schemas/ folder of a meltano/hub clone"
)


def hub_validator(kind: str) -> Draft7Validator:
    """The Hub's validator of a plugin definition of ``kind`` (extractors, loaders)."""
    folder = Path(SCHEMAS)
    resources = []
    for subfolder in ("common", "plugin_definitions"):
        for path in sorted((folder / subfolder).glob("*.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            resources.append((schema["$id"], Resource.from_contents(schema, DRAFT7)))
    schema = json.loads((folder / "plugin_definitions" / f"{kind}.schema.json").read_text())
    return Draft7Validator(schema, registry=Registry().with_resources(resources))


def definition(plugin: str) -> dict[str, Any]:
    text = (REPO / "plugins" / f"{plugin}.yml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def problems(kind: str, plugin_definition: dict[str, Any]) -> list[str]:
    errors = hub_validator(kind).iter_errors(plugin_definition)
    return sorted(f"{list(error.absolute_path)}: {error.message}" for error in errors)


@pytest.mark.parametrize(
    ("kind", "plugin"), [("extractors", "tap-openai-costs"), ("loaders", "target-pelanor")]
)
def test_the_shipped_definition_is_valid_by_the_hubs_schema(kind: str, plugin: str) -> None:
    assert problems(kind, definition(plugin)) == []


def test_the_hubs_schema_refuses_what_a_definition_may_not_carry() -> None:
    """What the definitions carried before 0.2.0: an ``env:`` block; and a quality the Hub
    does not know."""
    broken = definition("target-pelanor") | {"env": {"TARGET_PELANOR_API_TOKEN": ""}}
    broken["quality"] = "excellent"
    assert problems("loaders", broken) == [
        "['quality']: 'excellent' is not one of ['gold', 'silver', 'bronze', 'unknown']",
        "[]: Additional properties are not allowed ('env' was unexpected)",
    ]
