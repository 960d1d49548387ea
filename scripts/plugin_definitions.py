"""Writes the Meltano plugin definitions from what the plugins report, so they never drift.

    python scripts/plugin_definitions.py           # write the files (`make definitions`)
    python scripts/plugin_definitions.py --check   # exit 1, naming each stale file

The plugin classes are the source of truth for settings, capabilities and descriptions;
each plugin's ``--about --format=json`` reports them. What ``--about`` cannot say is kept
by hand below (Hub metadata, option labels, the project's own descriptions of the SDK's
built-in settings, the settings groups). From both this writes:

- ``plugins/<plugin>.yml``: the definition another Meltano project adds with
  ``meltano add --plugin-type extractor tap-openai-costs --from-ref plugins/tap-openai-costs.yml``
  (its ``pip_url`` is the wheel this version builds, in the project's ``wheels/`` folder);
- the two parent plugins in ``meltano.yml`` (the same definition, with ``pip_url: -e .``),
  between the ``generated`` marker comments.

(The settings tables of docs/settings.md are written by scripts/docs_settings.py.)

Run it with the project's venv (the plugins' console scripts next to its Python).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "openai-costs-to-pelanor"
WIDTH = 100

#: The SDK's settings of each capability: a plugin that does not declare the capability
#: does not offer them, even where ``--about`` lists them.
CAPABILITY_SETTINGS = {
    "stream-maps": ("stream_maps", "stream_map_config", "faker_config"),
    "schema-flattening": ("flattening_enabled", "flattening_max_depth"),
    "batch": ("batch_config",),
    "validate-records": ("validate_records",),
    "activate-version": ("process_activate_version_messages",),
}
KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
}
STREAM_MAPS = {
    "stream_map_config": "User-defined values for stream map expressions.",
    "faker_config": "Faker's seed and locale for stream map expressions (needs the faker "
    "package in the plugin's virtualenv).",
}


@dataclass(frozen=True)
class HandKept:
    """What a plugin's definition holds that its ``--about`` does not say."""

    plugin_type: str  # Meltano's: extractor or loader
    namespace: str
    label: str
    keywords: tuple[str, ...]
    settings_group_validation: tuple[tuple[str, ...], ...]
    option_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Meltano plugin commands (``meltano invoke <plugin>:<command>``): name -> args, description.
    commands: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: The SDK's built-in settings, described for what they mean for this plugin.
    sdk_descriptions: dict[str, str] = field(default_factory=dict)


PLUGINS = {
    "tap-openai-costs": HandKept(
        plugin_type="extractor",
        namespace="tap_openai_costs",
        label="OpenAI costs",
        keywords=("openai", "costs", "finops", "meltano_sdk"),
        settings_group_validation=(
            ("organization_id", "paths"),
            ("organization_id", "source", "admin_api_key", "organization_name"),
        ),
        option_labels={
            "source": {
                "files": "Dashboard CSV exports (paths)",
                "api": "OpenAI Costs API (admin_api_key)",
            },
            "api_layout": {
                "nine_columns": "The nine columns Pelanor lists",
                "wide": "The current export's 17 columns",
            },
        },
        sdk_descriptions={
            "stream_maps": "The SDK's stream maps. Don't map away csv_row or layout: the "
            "target would withhold every month.",
            **STREAM_MAPS,
            "batch_config": "Move rows in BATCH files (JSON lines, compression none or gzip) "
            "instead of one RECORD message each: about 1.25x faster end to end. The target "
            "reads and deletes the files, so the storage root must be a folder both reach.",
        },
    ),
    "target-pelanor": HandKept(
        plugin_type="loader",
        namespace="target_pelanor",
        label="Pelanor",
        keywords=("pelanor", "openai", "costs", "finops", "meltano_sdk"),
        settings_group_validation=(
            ("organization_id", "integration_id", "api_token"),
            ("organization_id", "integration_id", "api_token_id", "api_token_secret"),
            ("organization_id", "dry_run"),
        ),
        commands={
            "check": (
                "--config ENV --check",
                "Check the settings, that Pelanor answers, and with check_path that it takes "
                "the token; reads no input, uploads nothing.",
            ),
        },
        option_labels={
            "region": {
                "us": "US (https://api.pelanor.io)",
                "eu": "EU (https://api-eu.pelanor.io)",
            },
            "upload_method": {"POST": "POST", "PUT": "PUT"},
            "upload_body": {
                "multipart": "Multipart form (the CSV as one part)",
                "raw": "Raw (the CSV is the whole body)",
            },
            "load_method": {
                "append-only": "Append only",
                "upsert": "Upsert",
                "overwrite": "Overwrite",
            },
        },
        sdk_descriptions={
            "add_record_metadata": "The SDK's _sdc_ metadata columns; target-pelanor uploads "
            "the export's own rows, so this changes nothing in Pelanor.",
            "load_method": "The SDK's load method; target-pelanor always replaces whole "
            "months in Pelanor, whatever this says.",
            "batch_size_rows": "Rows per SDK batch; target-pelanor writes each month to disk "
            "as its rows arrive and uploads it at its seal, so this changes nothing in "
            "Pelanor.",
            "validate_records": "Validate records against the tap's schema (compiled with "
            "fastjsonschema).",
            "stream_maps": "The SDK's stream maps. Don't map away csv_row or layout: every "
            "month would be withheld.",
            **STREAM_MAPS,
        },
    ),
}
MELTANO_KIND = {"extractor": "extractors", "loader": "loaders"}
#: Marker comments around what this script writes into meltano.yml.
YML_BEGIN = "  # generated by `make definitions` (scripts/plugin_definitions.py): {name}"
YML_END = "  # end of generated {name}"


def about(name: str) -> dict[str, Any]:
    """``<name> --about --format=json``, from the console script next to this Python."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / name), "--about", "--format=json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    info: dict[str, Any] = json.loads(done.stdout)
    return info


def selected_by_default(name: str) -> list[str]:
    """The streams an extractor selects by default (``--discover``), as Meltano ``select``
    rules: without any, Meltano selects every stream (``*.*``), even one the plugin leaves
    out by default (focus_costs, which target-pelanor does not take)."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / name), "--discover"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [
        f"{entry['tap_stream_id']}.*"
        for entry in json.loads(done.stdout)["streams"]
        for metadata in entry["metadata"]
        if metadata["breadcrumb"] == [] and metadata["metadata"].get("selected-by-default", True)
    ]


def wheel_name() -> str:
    return f"{PACKAGE.replace('-', '_')}-{version(PACKAGE)}-py3-none-any.whl"


#: The Hub's metadata that is true today: maintained, and not rated by the Hub (its quality
#: levels are the Hub's to give). Meltano does not copy these into a project's meltano.yml.
HUB_METADATA = {"maintenance_status": "active", "quality": "unknown"}


def definition(name: str, info: dict[str, Any], pip_url: str, hub: bool) -> dict[str, Any]:
    """The plugin's Meltano definition, in the order Meltano and the Hub show it; ``hub``:
    with the Hub's metadata (the shipped definitions, not meltano.yml's)."""
    hand = PLUGINS[name]
    result: dict[str, Any] = {
        "name": name,
        "namespace": hand.namespace,
        "variant": PACKAGE,
        "label": hand.label,
        "description": info["description"],
    }
    if hub:
        result |= HUB_METADATA | {"keywords": list(hand.keywords)}
    result |= {
        "pip_url": pip_url,
        "executable": name,
        "capabilities": info["capabilities"],
    }
    if hand.plugin_type == "extractor":
        result["select"] = selected_by_default(name)
    result |= {
        "settings_group_validation": [list(group) for group in hand.settings_group_validation],
        "settings": [_setting(hand, key, schema) for key, schema in _offered(info).items()],
    }
    if hand.commands:
        result["commands"] = {
            name: {"args": args, "description": text}
            for name, (args, text) in hand.commands.items()
        }
    return result


def _offered(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    not_offered = {
        key
        for capability, keys in CAPABILITY_SETTINGS.items()
        if capability not in info["capabilities"]
        for key in keys
    }
    properties: dict[str, dict[str, Any]] = info["settings"]["properties"]
    return {key: schema for key, schema in properties.items() if key not in not_offered}


def _setting(hand: HandKept, key: str, schema: dict[str, Any]) -> dict[str, Any]:
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    if len(types) != 1:
        raise SystemExit(f"{key}: no single JSON type in its schema; describe it by hand")
    setting: dict[str, Any] = {"name": key}
    if "title" in schema:
        setting["label"] = schema["title"]
    setting["kind"] = "options" if "enum" in schema else KINDS[types[0]]
    if schema.get("default") is not None:
        setting["value"] = schema["default"]
    if "enum" in schema:
        labels = hand.option_labels.get(key, {})
        setting["options"] = [
            {"label": labels.get(value, str(value)), "value": value} for value in schema["enum"]
        ]
    if schema.get("secret"):
        setting["sensitive"] = True
    description = hand.sdk_descriptions.get(key) or schema.get("description")
    if description:
        setting["description"] = description
    return setting


# Rendering: a fixed YAML style (flow lists, folded descriptions), checked by parsing it back.


def render(plugin: dict[str, Any], width: int) -> list[str]:
    """The definition as YAML lines, at most ``width`` columns where text can wrap."""
    lines: list[str] = []
    for key, value in plugin.items():
        if key == "settings":
            lines.append("settings:")
            for setting in value:
                lines.extend(_render_setting(setting, width))
        elif key == "commands":
            lines.append("commands:")
            for name, command in value.items():
                lines.append(f"  {name}:")
                lines.append(f"    args: {_scalar(command['args'])}")
                lines.append("    description: >-")
                lines.extend(
                    f"      {line}" for line in _wrapped(command["description"], width - 6)
                )
        elif key == "settings_group_validation":
            lines.append(f"{key}:")
            lines.extend(f"- {_flow(group)}" for group in value)
        elif isinstance(value, list):
            lines.append(f"{key}: {_flow(value)}")
        else:
            lines.append(f"{key}: {_scalar(value)}")
    return lines


def _render_setting(setting: dict[str, Any], width: int) -> list[str]:
    lines: list[str] = []
    for key, value in setting.items():
        lead = "- " if not lines else "  "
        if key == "options":
            lines.append("  options:")
            for option in value:
                lines.append(f"  - label: {_scalar(option['label'])}")
                lines.append(f"    value: {_scalar(option['value'])}")
        elif key == "description":
            lines.append("  description: >-")
            lines.extend(f"    {line}" for line in _wrapped(value, width - 4))
        else:
            lines.append(f"{lead}{key}: {_scalar(value)}")
    return lines


def _wrapped(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)


def _scalar(value: Any) -> str:
    if isinstance(value, str) and value and value == value.strip():
        try:
            if yaml.safe_load(f"k: {value}") == {"k": value}:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)


def _flow(values: list[Any]) -> str:
    return "[" + ", ".join(_scalar(value) for value in values) + "]"


def _parsed(lines: list[str], expected: Any) -> str:
    text = "\n".join(lines) + "\n"
    if yaml.safe_load(text) != expected:
        raise SystemExit("the rendered YAML does not parse back to the definition")
    return text


def _replace_between(text: str, begin: str, end: str, body: list[str], where: str) -> str:
    start, stop = text.find(begin + "\n"), text.find(end + "\n")
    if start < 0 or stop < start:
        raise SystemExit(f"{where}: the markers {begin!r} and {end!r} are missing")
    return text[: start + len(begin) + 1] + "".join(f"{line}\n" for line in body) + text[stop:]


def generated() -> dict[Path, str]:
    """Every file this script writes, with the content it should have."""
    files: dict[Path, str] = {}
    meltano_yml = (REPO / "meltano.yml").read_text("utf-8")
    wheel = f"$MELTANO_PROJECT_ROOT/wheels/{wheel_name()}"
    for name in PLUGINS:
        info = about(name)
        shipped = definition(name, info, wheel, hub=True)
        lines = [
            f"# {name}.yml: written by `make definitions`; see docs/meltano-project.md",
            *render(shipped, WIDTH),
        ]
        files[REPO / "plugins" / f"{name}.yml"] = _parsed(lines, shipped)

        parent = definition(name, info, "-e .", hub=False)
        body = render(parent, WIDTH - 4)
        indented = [f"  - {body[0]}", *(f"    {line}" for line in body[1:])]
        parsed = yaml.safe_load("\n".join(indented))
        if parsed != [parent]:
            raise SystemExit("the rendered meltano.yml block does not parse back")
        meltano_yml = _replace_between(
            meltano_yml,
            YML_BEGIN.format(name=name),
            YML_END.format(name=name),
            indented,
            "meltano.yml",
        )
    files[REPO / "meltano.yml"] = meltano_yml
    return files


def stale() -> list[Path]:
    """The files whose content is not what this script would write."""
    return [
        path
        for path, text in generated().items()
        if not path.exists() or path.read_text("utf-8") != text
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say which files are stale")
    if parser.parse_args().check:
        outdated = stale()
        for path in outdated:
            print(
                f"{path.relative_to(REPO)} is not what `make definitions` writes: run it",
                file=sys.stderr,
            )
        return 1 if outdated else 0
    for path, text in generated().items():
        path.parent.mkdir(exist_ok=True)
        if not path.exists() or path.read_text("utf-8") != text:
            path.write_text(text, "utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
