"""The target's settings, checked at start: one line per problem, before any input is read.

A setting that could only fail later (at the first upload, after the tap has read every
export) fails here instead, with a message that says what to set. Secrets are never shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from openai_costs.contract import MONTH_PATTERN
from openai_costs.safe_http import check_durations, check_secret
from openai_costs.user_errors import organization_required
from target_pelanor.client import resolve_base_url
from target_pelanor.connection_check import check_path_problems
from target_pelanor.upload_records import records_dir
from target_pelanor.upload_request import shape_problems

__all__ = [
    "ALLOW_SHRINKING_IS_A_LIST",
    "TOKEN_PARTS",
    "allowed_to_shrink",
    "api_token",
    "output_dir",
    "setting_errors",
]

#: The token as Pelanor's UI shows it: an ID and a secret, sent as ``<id>:<secret>``.
TOKEN_PARTS = ("api_token_id", "api_token_secret")
#: The one line for ``allow_shrinking_months: true``, which let every month through.
ALLOW_SHRINKING_IS_A_LIST = (
    "allow_shrinking_months is a list of months now, not true: list the months that may "
    'replace a larger copy, such as ["2025-10"] (true let every month through)'
)
#: A variable name as shells write them; anything else in an ``_env`` setting is never shown.
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The usual spelling of one (upper case): only such a name is repeated in a message, as
#: a token pasted by mistake can look like a name too.
_SHOWN_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


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


def allowed_to_shrink(config: Mapping[str, Any]) -> list[str]:
    """The months ``allow_shrinking_months`` lets replace a larger copy (``false``, which
    earlier versions wrote, lets none)."""
    value = config.get("allow_shrinking_months")
    return [month for month in value if isinstance(month, str)] if isinstance(value, list) else []


def output_dir(config: Mapping[str, Any]) -> Path | None:
    """The ``output_dir`` folder, ``~`` expanded (as for ``work_dir``); None if unset."""
    value = config.get("output_dir")
    return Path(value).expanduser() if value else None


#: A set upload_records_dir must exist: on a worker whose kept volume was not mounted, a
#: new empty folder would forget every upload, and with it the shrink guard's memory.
RECORDS_NOT_MOUNTED = (
    "upload_records_dir {folder} does not exist: mount the volume that keeps this "
    "machine's upload records there (on a new volume, create the folder once)"
)


def setting_errors(config: Mapping[str, Any]) -> list[str]:
    """Every problem with the settings, one message each."""
    errors = []
    if not str(config.get("organization_id") or "").strip():
        errors.append(organization_required("loader", "target-pelanor", "loader uploads"))
    errors += _token_errors(config)
    try:
        check_durations(
            float(config.get("request_timeout", 60)), float(config.get("max_retry_seconds", 600))
        )
    except ValueError as problem:
        errors.append(str(problem))
    errors += shape_problems(config) + check_path_problems(config)
    if folder := output_dir(config):
        errors += _folder_errors(folder, "output_dir")
    errors += _shrinking_errors(config.get("allow_shrinking_months"))
    if not config.get("dry_run"):
        try:
            records = records_dir(config.get("upload_records_dir"))
        except RuntimeError:
            errors.append(
                "upload_records_dir is needed: this user has no home folder to keep the "
                "record of uploads in; set it to a folder that outlives the run"
            )
        else:
            if config.get("upload_records_dir") and not records.exists():
                errors.append(RECORDS_NOT_MOUNTED.format(folder=records))
            else:
                errors += _folder_errors(records, "upload_records_dir")
        if not config.get("integration_id"):
            errors.append("integration_id is required unless dry_run is true")
        try:
            resolve_base_url(config.get("region", "us"), config.get("api_url"))
        except ValueError as problem:
            errors.append(str(problem))
    return errors


def _shrinking_errors(value: object) -> list[str]:
    if value is None or value is False:
        return []
    if value is True:
        return [ALLOW_SHRINKING_IS_A_LIST]
    if not isinstance(value, list):
        return ['allow_shrinking_months must be a list of months, such as ["2025-10"]']
    wrong = [
        month
        for month in value
        if not (isinstance(month, str) and re.fullmatch(MONTH_PATTERN, month))
    ]
    if wrong:
        shown = ", ".join(repr(month) for month in wrong)
        return [
            f"allow_shrinking_months must list months as YYYY-MM, such as 2025-10 (got {shown})"
        ]
    return []


def _token_errors(config: Mapping[str, Any]) -> list[str]:
    both = [
        f"set {name} or {name}_env, not both"
        for name in ("api_token", *TOKEN_PARTS)
        if config.get(name) and config.get(f"{name}_env")
    ]
    if both:
        return both
    not_names = [
        f"{name}_env must be the name of an environment variable (letters, digits and _), "
        f"not the {what} itself: put the {what} in a variable such as {example} and set "
        f"{name}_env to that name (the value is not shown here)"
        for name, what, example in _ENV_SETTINGS
        if (variable := config.get(f"{name}_env")) and not _VARIABLE_NAME.fullmatch(variable)
    ]
    if not_names:
        return not_names
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
            return [_unset_variable("api_token", name)]
        return ["api_token is required unless dry_run is true"]
    try:
        check_secret(token, "api_token")
    except ValueError as problem:
        return [str(problem)]
    return []


#: The settings that may name a variable instead: what the variable holds, an example name.
_ENV_SETTINGS = (
    ("api_token", "token", "PELANOR_API_TOKEN_ACME"),
    ("api_token_id", "token ID", "PELANOR_TOKEN_ID_ACME"),
    ("api_token_secret", "token secret", "PELANOR_TOKEN_SECRET_ACME"),
)


def _unset_variable(setting: str, variable: str) -> str:
    """The variable ``<setting>_env`` names is not set; its name is repeated only when it is
    spelled as names usually are (capitals), as a token pasted there can look like one."""
    if _SHOWN_NAME.fullmatch(variable):
        return f"{setting}_env names {variable}, which is not set in the environment"
    return (
        f"the variable {setting}_env names is not set in the environment (its name is not "
        "shown: it is not in capitals, so it may be a token pasted there)"
    )


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
                errors.append(_unset_variable(name, variable))
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
