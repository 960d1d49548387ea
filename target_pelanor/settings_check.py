"""The target's settings, checked at start: one line per problem, before any input is read.

A setting that could only fail later (at the first upload, after the tap has read every
export) fails here instead, with a message that says what to set. Secrets are never shown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from openai_costs.safe_http import check_durations, check_secret
from target_pelanor.client import resolve_base_url
from target_pelanor.upload_request import shape_problems

__all__ = ["TOKEN_PARTS", "api_token", "output_dir", "setting_errors"]


#: The token as Pelanor's UI shows it: an ID and a secret, sent as ``<id>:<secret>``.
TOKEN_PARTS = ("api_token_id", "api_token_secret")


def api_token(config: Mapping[str, Any]) -> str | None:
    """The API token: ``api_token`` (or the environment variable ``api_token_env`` names),
    else ``api_token_id`` and ``api_token_secret`` (or their ``_env`` forms) joined as
    ``<id>:<secret>``."""
    token = _setting(config, "api_token")
    if token is not None:
        return token
    token_id, secret = (_setting(config, name) for name in TOKEN_PARTS)
    return f"{token_id}:{secret}" if token_id and secret else None


def _setting(config: Mapping[str, Any], name: str) -> str | None:
    """A setting, or the environment variable its ``<name>_env`` form names."""
    variable = config.get(f"{name}_env")
    if variable:
        return os.environ.get(variable) or None
    return config.get(name) or None


def output_dir(config: Mapping[str, Any]) -> Path | None:
    """The ``output_dir`` folder, ``~`` expanded (as for ``work_dir``); None if unset."""
    value = config.get("output_dir")
    return Path(value).expanduser() if value else None


def setting_errors(config: Mapping[str, Any]) -> list[str]:
    """Every problem with the settings, one message each."""
    errors = _token_errors(config)
    try:
        check_durations(
            float(config.get("request_timeout", 60)), float(config.get("max_retry_seconds", 600))
        )
    except ValueError as problem:
        errors.append(str(problem))
    errors += shape_problems(config)
    if folder := output_dir(config):
        errors += _folder_errors(folder, "output_dir")
    if not config.get("dry_run"):
        if not config.get("integration_id"):
            errors.append("integration_id is required unless dry_run is true")
        try:
            resolve_base_url(config.get("region", "us"), config.get("api_url"))
        except ValueError as problem:
            errors.append(str(problem))
    return errors


def _token_errors(config: Mapping[str, Any]) -> list[str]:
    both = [
        f"set {name} or {name}_env, not both"
        for name in ("api_token", *TOKEN_PARTS)
        if config.get(name) and config.get(f"{name}_env")
    ]
    if both:
        return both
    if any(config.get(name) or config.get(f"{name}_env") for name in TOKEN_PARTS):
        if config.get("api_token") or config.get("api_token_env"):
            return ["set api_token, or api_token_id and api_token_secret, not both"]
        return _token_part_errors(config)
    name = config.get("api_token_env")
    token = api_token(config)
    if token is None:
        if config.get("dry_run"):  # a dry run sends nothing: no token needed
            return []
        if name:
            return [f"api_token_env names {name}, which is not set in the environment"]
        return ["api_token is required unless dry_run is true"]
    try:
        check_secret(token, "api_token")
    except ValueError as problem:
        return [str(problem)]
    return []


def _token_part_errors(config: Mapping[str, Any]) -> list[str]:
    """The token as an ID and a secret: both needed, each sendable, the ID without ':'."""
    errors: list[str] = []
    for name, other in (TOKEN_PARTS, TOKEN_PARTS[::-1]):
        value = _setting(config, name)
        variable = config.get(f"{name}_env")
        if value is None:
            if config.get("dry_run"):  # a dry run sends nothing: no token needed
                continue
            if variable:
                errors.append(f"{name}_env names {variable}, which is not set in the environment")
            elif config.get(other) or config.get(f"{other}_env"):
                errors.append(
                    f"{other} is set but {name} is not: set both (Pelanor shows the token ID "
                    "and the token secret together), or the whole token as api_token"
                )
            continue
        try:
            check_secret(value, name)
        except ValueError as problem:
            errors.append(str(problem))
            continue
        if name == "api_token_id" and ":" in value:
            errors.append(
                "api_token_id contains ':'; set the token ID alone (the part before ':') with "
                "api_token_secret, or the whole '<id>:<secret>' as api_token"
            )
    return errors


def _folder_errors(folder: Path, setting: str) -> list[str]:
    """A folder the target will write to: tried now if it exists, else the folder it will
    be created in must be a writable folder (nothing is created before a month is)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem: str | None = None
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    elif existing == folder:
        probe = folder / f".target-pelanor.{os.getpid()}.probe"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            problem = error.strerror or type(error).__name__
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"cannot create it in {existing}"
    return [] if problem is None else [f"{setting} {folder} is not a writable folder: {problem}"]
