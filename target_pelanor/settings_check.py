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
from target_pelanor.client import DEFAULT_UPLOAD_PATH, check_upload_path, resolve_base_url

__all__ = ["api_token", "output_dir", "setting_errors"]


def api_token(config: Mapping[str, Any]) -> str | None:
    """The API token: ``api_token``, or the environment variable ``api_token_env`` names."""
    name = config.get("api_token_env")
    if name:
        return os.environ.get(name) or None
    return config.get("api_token") or None


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
    try:
        check_upload_path(config.get("upload_path", DEFAULT_UPLOAD_PATH))
    except ValueError as problem:
        errors.append(str(problem))
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
    name = config.get("api_token_env")
    if name and config.get("api_token"):
        return ["set api_token or api_token_env, not both"]
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
