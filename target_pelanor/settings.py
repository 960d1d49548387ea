"""The target's settings: each one's name, type, default, description and check, in one place.

:data:`SCHEMA` declares them (the plugin's ``config_jsonschema``, what ``--about`` shows);
:meth:`TargetSettings.from_config` reads the SDK's validated config into one typed, frozen
object, once per run, after checking every setting: a setting that could only fail later (at
the first upload, after the tap has read every export) fails here instead, with a message
that says what to set. Every problem is collected, one line each, and raised together as
the SDK's ``ConfigValidationError``. The rest of the target reads this object, never the
config's keys. Secrets are never shown (not in messages, not in the object's ``repr``).

The ``upload_*`` settings are read into one :class:`UploadShape` by
:mod:`target_pelanor.upload_request`, which knows the request's format (its defaults are
that module's :data:`DEFAULT_SHAPE`); this module declares them and asks it for the shape.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from openai_costs.contract import MONTH_PATTERN
from openai_costs.safe_http import check_durations, check_secret
from openai_costs.user_errors import organization_required
from target_pelanor.client import REGION_URLS, resolve_base_url
from target_pelanor.connection_check import check_path_problems
from target_pelanor.upload_records import records_dir
from target_pelanor.upload_request import (
    BODIES,
    DEFAULT_SHAPE,
    METHODS,
    UploadShape,
    shape_problems,
    upload_shape,
)

__all__ = [
    "ALLOW_SHRINKING_IS_A_LIST",
    "DEFAULT_MAX_RETRY_SECONDS",
    "DEFAULT_REGION",
    "DEFAULT_REQUEST_TIMEOUT",
    "RECORDS_NOT_MOUNTED",
    "SCHEMA",
    "TOKEN_PARTS",
    "TargetSettings",
    "before_type_check",
]

DEFAULT_REGION: Final = "us"
DEFAULT_DRY_RUN: Final = False
DEFAULT_ALLOW_PARTIAL_MONTH: Final = False
#: Seconds: each whole HTTP request to Pelanor.
DEFAULT_REQUEST_TIMEOUT: Final = 60
#: Seconds: one month's whole upload, and the wait for another run uploading it.
DEFAULT_MAX_RETRY_SECONDS: Final = 600

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

SCHEMA: Final[dict[str, Any]] = th.PropertiesList(
    th.Property(
        "organization_id",
        th.StringType,
        title="OpenAI organization ID",
        description="The organization this Pelanor integration belongs to (org-...). Required.",
    ),
    th.Property(
        "integration_id",
        th.StringType,
        title="Pelanor integration ID",
        description="The Pelanor OpenAI integration for this organization. "
        "Required unless dry_run.",
    ),
    th.Property(
        "api_token",
        th.StringType,
        secret=True,
        title="Pelanor API token",
        description="Sent as 'Authorization: Bearer <api_token>' (Pelanor issues "
        "'<token_id>:<token_secret>'). Required unless dry_run (or api_token_env, or "
        "api_token_id and api_token_secret).",
    ),
    th.Property(
        "api_token_env",
        th.StringType,
        title="API token variable",
        description="Instead of api_token: the name of an environment variable that "
        "holds the token, read at start, so the token itself is in no config file "
        "(Meltano writes plugin configs to .meltano/run/ during a run).",
    ),
    th.Property(
        "api_token_id",
        th.StringType,
        title="Pelanor token ID",
        description="Instead of api_token: the token ID Pelanor shows, with "
        "api_token_secret; sent as 'Bearer <api_token_id>:<api_token_secret>'.",
    ),
    th.Property(
        "api_token_id_env",
        th.StringType,
        title="Token ID variable",
        description="Instead of api_token_id: the name of an environment variable that "
        "holds it, read at start.",
    ),
    th.Property(
        "api_token_secret",
        th.StringType,
        secret=True,
        title="Pelanor token secret",
        description="The token secret Pelanor shows with the token ID (api_token_id).",
    ),
    th.Property(
        "api_token_secret_env",
        th.StringType,
        title="Token secret variable",
        description="Instead of api_token_secret: the name of an environment variable "
        "that holds it, read at start, so the secret is in no config file.",
    ),
    th.Property(
        "region",
        th.StringType,
        default=DEFAULT_REGION,
        allowed_values=list(REGION_URLS),
        title="Pelanor region",
        description="us: https://api.pelanor.io, eu: https://api-eu.pelanor.io.",
    ),
    th.Property(
        "api_url",
        th.StringType,
        title="API base URL override",
        description="Replaces the region's URL. https only; http only for loopback "
        "addresses (a local sandbox).",
    ),
    th.Property(
        "upload_path",
        th.StringType,
        default=DEFAULT_SHAPE.path,
        title="Upload path",
        description="Path of the upload endpoint; Pelanor does not publish it, so it is "
        "configurable. Starts with '/'; a template (see upload_fields).",
    ),
    th.Property(
        "upload_method",
        th.StringType,
        default=DEFAULT_SHAPE.method,
        allowed_values=list(METHODS),
        title="Upload method",
        description="The upload request's HTTP method.",
    ),
    th.Property(
        "upload_body",
        th.StringType,
        default=DEFAULT_SHAPE.body,
        allowed_values=list(BODIES),
        title="Upload body",
        description="multipart: a multipart form, the CSV as one part "
        "(upload_file_field) beside upload_fields. raw: the CSV is the whole body.",
    ),
    th.Property(
        "upload_file_field",
        th.StringType,
        default=DEFAULT_SHAPE.file_field,
        title="Upload file part",
        description="The multipart part that holds the CSV (upload_body multipart only).",
    ),
    th.Property(
        "upload_fields",
        th.ObjectType(additional_properties=th.StringType),
        title="Upload form fields",
        description="Multipart form fields besides the CSV, name -> template. Unset: "
        '{"month": "{month}"}; {} sends none. Not with upload_body raw. Templates may use '
        "{month} (YYYY-MM), {first_day}, {last_day} (YYYY-MM-DD), {organization_id}, "
        "{integration_id}, {file_name}.",
    ),
    th.Property(
        "upload_query",
        th.ObjectType(additional_properties=th.StringType),
        title="Upload query parameters",
        description="Query parameters of the upload request, name -> template (as in "
        'upload_fields), e.g. {"month": "{month}"}. Default: none.',
    ),
    th.Property(
        "upload_content_type",
        th.StringType,
        default=DEFAULT_SHAPE.content_type,
        title="Upload content type",
        description="The CSV's content type: of its part (multipart), or of the whole body (raw).",
    ),
    th.Property(
        "check_path",
        th.StringType,
        title="Check path",
        description="For the checks (meltano invoke target-pelanor:check, meltano config "
        "test): a path to send one authenticated GET to (a 2xx passes), checking the token "
        "and integration without uploading; Pelanor publishes none, so unset sends none. A "
        "template: {integration_id}, {organization_id}.",
    ),
    th.Property(
        "output_dir",
        th.StringType,
        title="Output directory",
        description="Also write each month's file here, named as OpenAI names most "
        "one-month exports: cost_<first day>_<last day>.csv (the end date inclusive, as "
        "in most real downloads).",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=DEFAULT_DRY_RUN,
        title="Dry run",
        description="Check and write files, upload nothing, confirm no state.",
    ),
    th.Property(
        "allow_partial_month",
        th.BooleanType,
        default=DEFAULT_ALLOW_PARTIAL_MONTH,
        title="Allow partial month",
        description="Upload months with missing days. An upload replaces the whole "
        "month in Pelanor: only for a month that really has no more data.",
    ),
    th.Property(
        "allow_shrinking_months",
        th.ArrayType(th.StringType),
        title="Allow shrinking months",
        description='Months (YYYY-MM, such as ["2025-10"]) to upload even if they '
        "have fewer days or rows, or a total more than 0.5% (at least $0.01) lower, than "
        "the copy this target uploaded before, or if that copy's record cannot be read. "
        "Only months known to be right (OpenAI corrected them); other months stay "
        "guarded.",
    ),
    th.Property(
        "upload_records_dir",
        th.StringType,
        title="Upload records folder",
        description="Where this machine keeps its record of each month's last upload, "
        "per Pelanor URL, integration and month, which the shrink guard checks besides "
        "the state (it outlives the state and reboots). Default: "
        "$XDG_STATE_HOME/target-pelanor/uploads, else "
        "~/.local/state/target-pelanor/uploads.",
    ),
    th.Property(
        "request_timeout",
        th.IntegerType,
        default=DEFAULT_REQUEST_TIMEOUT,
        title="Request timeout (seconds)",
        description="Bounds each whole HTTP request: connecting, sending the file and "
        "receiving the whole answer. Must be positive.",
    ),
    th.Property(
        "max_retry_seconds",
        th.IntegerType,
        default=DEFAULT_MAX_RETRY_SECONDS,
        title="Upload budget (seconds)",
        description="Bounds one month's whole upload: every attempt, every wait between "
        "attempts and an answer still arriving (the first attempt always gets its full "
        "request_timeout). Also how long to wait for another target-pelanor process "
        "uploading the same month. 0 or more.",
    ),
    th.Property(
        "work_dir",
        th.StringType,
        title="Working folder",
        description="Where the target keeps each month's file until it is uploaded "
        "(cost rows, e-mail addresses), in a private folder per run removed when the "
        "run ends; leftovers of killed runs are removed at the next start. Also holds "
        "the upload locks. Default: <system temp>/target-pelanor-<uid>.",
    ),
).to_dict()


@dataclass(frozen=True)
class TargetSettings:
    """The target's settings, checked and typed; built once per run by :meth:`from_config`."""

    organization_id: str
    integration_id: str | None = None
    #: The token as it is sent (``api_token``, or its ID and secret joined, from the
    #: settings or the variables their ``_env`` forms name); None only in a dry run.
    api_token: str | None = field(default=None, repr=False)
    region: str = DEFAULT_REGION
    api_url: str | None = None
    #: The upload request the ``upload_*`` settings describe.
    upload_shape: UploadShape = DEFAULT_SHAPE
    check_path: str | None = None
    #: ``output_dir``, ``~`` expanded; None if unset.
    output_dir: Path | None = None
    dry_run: bool = DEFAULT_DRY_RUN
    allow_partial_month: bool = DEFAULT_ALLOW_PARTIAL_MONTH
    #: The months that may replace a larger copy.
    allow_shrinking_months: frozenset[str] = frozenset()
    #: This machine's upload records folder (``upload_records_dir`` or the default); None
    #: only in a dry run on a machine without a home folder.
    upload_records_dir: Path | None = None
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_retry_seconds: float = DEFAULT_MAX_RETRY_SECONDS
    work_dir: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TargetSettings:
        """The settings of ``config`` (the SDK's, defaults filled in or not); raises
        ``ConfigValidationError`` listing every problem, one line each, in a fixed order."""
        problems = _problems(config)
        if problems:
            raise ConfigValidationError("Config validation failed", errors=problems)
        try:
            records: Path | None = records_dir(config.get("upload_records_dir"))
        except RuntimeError:  # no home folder: refused above unless a dry run
            records = None
        return cls(
            organization_id=str(config["organization_id"]),
            integration_id=config.get("integration_id") or None,
            api_token=_api_token(config),
            region=config.get("region", DEFAULT_REGION),
            api_url=config.get("api_url"),
            upload_shape=upload_shape(config),
            check_path=config.get("check_path") or None,
            output_dir=_output_dir(config),
            dry_run=bool(config.get("dry_run", DEFAULT_DRY_RUN)),
            allow_partial_month=bool(
                config.get("allow_partial_month", DEFAULT_ALLOW_PARTIAL_MONTH)
            ),
            allow_shrinking_months=frozenset(_allowed_to_shrink(config)),
            upload_records_dir=records,
            request_timeout=float(config.get("request_timeout", DEFAULT_REQUEST_TIMEOUT)),
            max_retry_seconds=float(config.get("max_retry_seconds", DEFAULT_MAX_RETRY_SECONDS)),
            work_dir=config.get("work_dir") or None,
        )

    def base_url(self) -> str:
        """Pelanor's base URL (``api_url``, else the region's); ValueError saying what to
        set when it cannot be used (only a dry run gets this far with such a one)."""
        return resolve_base_url(self.region, self.api_url)


def before_type_check(config: dict[str, Any]) -> list[str]:
    """Settings the SDK's type check would refuse with a misleading line, set right in
    ``config`` before it runs; our lines for those that cannot be: ``allow_shrinking_months``
    as a boolean (earlier versions' ``true`` let every month through; ``false`` lets none
    through, as an empty list does) and a duration that is not whole seconds (``60.0`` is
    taken as 60)."""
    ours: list[str] = []
    shrinking = config.get("allow_shrinking_months")
    if isinstance(shrinking, bool):
        del config["allow_shrinking_months"]
        if shrinking:
            ours.append(ALLOW_SHRINKING_IS_A_LIST)
    for key in ("request_timeout", "max_retry_seconds"):
        value = config.get(key)
        if isinstance(value, float | Decimal) and not isinstance(value, bool):
            if math.isfinite(value) and value == int(value):
                config[key] = int(value)
            else:
                del config[key]
                ours.append(f"{key} must be a whole number of seconds (got {value})")
    return ours


def _api_token(config: Mapping[str, Any]) -> str | None:
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


def _allowed_to_shrink(config: Mapping[str, Any]) -> list[str]:
    """The months ``allow_shrinking_months`` lets replace a larger copy (``false``, which
    earlier versions wrote, lets none)."""
    value = config.get("allow_shrinking_months")
    return [month for month in value if isinstance(month, str)] if isinstance(value, list) else []


def _output_dir(config: Mapping[str, Any]) -> Path | None:
    """The ``output_dir`` folder, ``~`` expanded (as for ``work_dir``); None if unset."""
    value = config.get("output_dir")
    return Path(value).expanduser() if value else None


#: A set upload_records_dir must exist: on a worker whose kept volume was not mounted, a
#: new empty folder would forget every upload, and with it the shrink guard's memory.
RECORDS_NOT_MOUNTED = (
    "upload_records_dir {folder} does not exist: mount the volume that keeps this "
    "machine's upload records there (on a new volume, create the folder once)"
)


def _problems(config: Mapping[str, Any]) -> list[str]:
    """Every problem with the settings, one message each, in a fixed order."""
    errors = []
    if not str(config.get("organization_id") or "").strip():
        errors.append(organization_required("loader", "target-pelanor", "loader uploads"))
    errors += _token_errors(config)
    try:
        check_durations(
            float(config.get("request_timeout", DEFAULT_REQUEST_TIMEOUT)),
            float(config.get("max_retry_seconds", DEFAULT_MAX_RETRY_SECONDS)),
        )
    except ValueError as problem:
        errors.append(str(problem))
    errors += shape_problems(config) + check_path_problems(config.get("check_path"))
    if folder := _output_dir(config):
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
            resolve_base_url(config.get("region", DEFAULT_REGION), config.get("api_url"))
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
    token = _api_token(config)
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
