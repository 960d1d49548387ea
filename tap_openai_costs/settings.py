"""The tap's settings: each one's name, type, default, description and check, in one place.

:data:`SCHEMA` declares them (the plugin's ``config_jsonschema``, what ``--about`` shows);
:meth:`TapSettings.from_config` reads the SDK's validated config into one typed, frozen
object, once per run, after checking what the schema cannot say (a setting required by
another's value, a URL, a secret that could not be sent, durations, BATCH and flattening
options): every problem is collected, one line each, and raised together as the SDK's
``ConfigValidationError``, so a run fails before it reads an export or the Costs API, with
a message that says what to set. The rest of the tap reads this object, never the config's
keys. Secrets are never shown (not in messages, not in the object's ``repr``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers._batch import BatchConfig

from openai_costs.batches import check_encoding
from openai_costs.contract import MONTH_PATTERN
from openai_costs.export import Layout
from openai_costs.safe_http import check_durations, check_secret
from openai_costs.user_errors import organization_required
from tap_openai_costs.costs_api import (
    API_LAYOUTS,
    DEFAULT_BASE_URL,
    OpenAICostsClient,
    check_api_base_url,
)

__all__ = [
    "DEFAULT_API_LAYOUT",
    "DEFAULT_MAX_RETRY_SECONDS",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_SETTLE_DAYS",
    "DEFAULT_SOURCE",
    "SCHEMA",
    "Source",
    "TapSettings",
]


class Source(str, Enum):
    """Where the cost data comes from (the ``source`` setting)."""

    FILES = "files"  # the dashboard's CSV exports (``paths``)
    API = "api"  # OpenAI's Costs API (``admin_api_key``)


DEFAULT_SOURCE: Final = Source.FILES
#: The layout API months are sent in: the nine columns Pelanor lists (:data:`API_LAYOUTS`).
DEFAULT_API_LAYOUT: Final = "nine_columns"
DEFAULT_CHECK_AGAINST_API: Final = False
#: Seconds: each whole request to OpenAI, and all attempts of one together.
DEFAULT_REQUEST_TIMEOUT: Final = 60
DEFAULT_MAX_RETRY_SECONDS: Final = 300
#: Days after a month ends that it is still read again from the Costs API.
DEFAULT_SETTLE_DAYS: Final = 3
DEFAULT_FOCUS_USER_EMAIL: Final = False

SCHEMA: Final[dict[str, Any]] = th.PropertiesList(
    th.Property(
        "source",
        th.StringType,
        default=DEFAULT_SOURCE.value,
        allowed_values=[source.value for source in Source],
        title="Source",
        description="files: dashboard CSV exports (paths). api: OpenAI's Costs API "
        "(admin_api_key).",
    ),
    th.Property(
        "paths",
        th.ArrayType(th.StringType),
        title="Export paths",
        description="Files, folders (every *.csv inside) or glob patterns of OpenAI Cost "
        "data exports (Usage > Export > Cost data, group by Line Item, 1 day, CSV). "
        "Required when source is files.",
    ),
    th.Property(
        "organization_id",
        th.StringType,
        title="OpenAI organization ID",
        description="The organization (org-...) this connector serves; "
        "a row of any other fails the run. Required.",
    ),
    th.Property(
        "start_month",
        th.StringType,
        title="Start month",
        description="YYYY-MM: ignore earlier months. With source api, the backfill start "
        "(default: the previous month).",
        pattern=MONTH_PATTERN,
    ),
    th.Property(
        "admin_api_key",
        th.StringType,
        secret=True,
        title="OpenAI admin API key",
        description="An organization admin key (sk-admin-...), for source api.",
    ),
    th.Property(
        "organization_name",
        th.StringType,
        title="OpenAI organization name",
        description="For source api: written in the organization_name column of rows "
        "whose API result does not name the organization (the live API's results may). "
        "Use the name the dashboard's exports show.",
    ),
    th.Property(
        "api_base_url",
        th.StringType,
        default=DEFAULT_BASE_URL,
        title="OpenAI API base URL",
        description="https only; http only for loopback addresses (a local fake).",
    ),
    th.Property(
        "api_layout",
        th.StringType,
        default=DEFAULT_API_LAYOUT,
        allowed_values=list(API_LAYOUTS),
        title="Layout of API months",
        description="For source api: the columns of each month's file. nine_columns: "
        "the nine Pelanor lists, as in most real downloads. wide: the current export's "
        "17 (quantity, user and API key columns too). Records carry every value either "
        "way.",
    ),
    th.Property(
        "check_against_api",
        th.BooleanType,
        default=DEFAULT_CHECK_AGAINST_API,
        title="Check exports against the API",
        description="For source files: before sealing an export month, compare each "
        "day's total with OpenAI's Costs API (admin_api_key; one request a month). A day "
        "more than 0.5% (at least $0.01) apart leaves the month unsealed.",
    ),
    th.Property(
        "request_timeout",
        th.IntegerType,
        default=DEFAULT_REQUEST_TIMEOUT,
        title="Request timeout (seconds)",
        description="Bounds each whole request to OpenAI's API: connecting, sending and "
        "receiving the whole answer. Must be positive.",
    ),
    th.Property(
        "max_retry_seconds",
        th.IntegerType,
        default=DEFAULT_MAX_RETRY_SECONDS,
        title="Retry budget (seconds)",
        description="Bounds all attempts of one request to OpenAI's API, waits between "
        "them included (the first attempt always gets its full request_timeout). 0 or "
        "more.",
    ),
    th.Property(
        "settle_days",
        th.IntegerType,
        default=DEFAULT_SETTLE_DAYS,
        title="Settle days",
        description="For source api: how many days after a month ends it is still "
        "re-read, since OpenAI restates recent days.",
    ),
    th.Property(
        "work_dir",
        th.StringType,
        title="Working folder",
        description="Where the tap keeps its working files (the months read from the "
        "Costs API, with cost rows and e-mail addresses), in a private folder per run, "
        "removed when the run ends; those of killed runs are removed at the next start. "
        "Default: <system temp>/tap-openai-costs-<uid>.",
    ),
    th.Property(
        "focus_user_email",
        th.BooleanType,
        default=DEFAULT_FOCUS_USER_EMAIL,
        title="FOCUS: user e-mail",
        description="Fill x_UserEmail in focus_costs records with the row's user_email "
        "(personal data). Off: x_UserEmail is null. The costs stream is not affected.",
    ),
).to_dict()


@dataclass(frozen=True)
class TapSettings:
    """The tap's settings, checked and typed; built once per run by :meth:`from_config`."""

    organization_id: str
    source: Source = DEFAULT_SOURCE
    #: The ``paths`` entries as given (expanded when read: :mod:`tap_openai_costs.paths`).
    paths: tuple[str, ...] = ()
    start_month: str | None = None
    admin_api_key: str = field(default="", repr=False)
    organization_name: str = ""
    api_base_url: str = DEFAULT_BASE_URL
    api_layout: str = DEFAULT_API_LAYOUT
    check_against_api: bool = DEFAULT_CHECK_AGAINST_API
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_retry_seconds: float = DEFAULT_MAX_RETRY_SECONDS
    settle_days: int = DEFAULT_SETTLE_DAYS
    work_dir: str | None = None
    focus_user_email: bool = DEFAULT_FOCUS_USER_EMAIL

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TapSettings:
        """The settings of ``config`` (the SDK's, defaults filled in or not); raises
        ``ConfigValidationError`` listing every problem, one line each, in a fixed order."""
        problems = (
            _organization_errors(config)
            + _source_errors(config)
            + _batch_config_errors(config)
            + _flattening_errors(config)
        )
        if problems:
            raise ConfigValidationError("Config validation failed", errors=problems)
        return cls(
            organization_id=str(config["organization_id"]),
            source=Source.API if _source(config) == Source.API.value else Source.FILES,
            paths=tuple(config.get("paths") or ()),
            start_month=config.get("start_month") or None,
            admin_api_key=config.get("admin_api_key") or "",
            organization_name=config.get("organization_name") or "",
            api_base_url=config.get("api_base_url", DEFAULT_BASE_URL),
            api_layout=config.get("api_layout") or DEFAULT_API_LAYOUT,
            check_against_api=bool(config.get("check_against_api", DEFAULT_CHECK_AGAINST_API)),
            request_timeout=float(config.get("request_timeout", DEFAULT_REQUEST_TIMEOUT)),
            max_retry_seconds=float(config.get("max_retry_seconds", DEFAULT_MAX_RETRY_SECONDS)),
            settle_days=int(config.get("settle_days", DEFAULT_SETTLE_DAYS)),
            work_dir=config.get("work_dir") or None,
            focus_user_email=bool(config.get("focus_user_email", DEFAULT_FOCUS_USER_EMAIL)),
        )

    @classmethod
    def of(cls, tap: object) -> TapSettings:
        """The settings the running tap built (its ``settings``), for its streams."""
        settings = getattr(tap, "settings", None)
        if not isinstance(settings, cls):
            raise TypeError(f"{type(tap).__name__} has no TapSettings")
        return settings

    @property
    def layout(self) -> Layout:
        """The layout API months are sent in (``api_layout``)."""
        return API_LAYOUTS[self.api_layout]

    @property
    def witness_wanted(self) -> bool:
        """Export months are compared with the Costs API before their seal."""
        return self.check_against_api and self.source is Source.FILES

    def costs_api_client(self) -> OpenAICostsClient:
        """A Costs API client as these settings describe it."""
        return OpenAICostsClient(
            admin_api_key=self.admin_api_key,
            base_url=self.api_base_url,
            request_timeout=self.request_timeout,
            max_retry_seconds=self.max_retry_seconds,
        )


def _source(config: Mapping[str, Any]) -> str:
    return str(config.get("source", DEFAULT_SOURCE.value))


def _batch_config_errors(config: Mapping[str, Any]) -> list[str]:
    batch_config = config.get("batch_config")
    if not batch_config:
        return []
    try:
        check_encoding(BatchConfig.from_dict(batch_config).encoding)
    except ValueError as problem:
        return [str(problem)]
    except (TypeError, KeyError, AttributeError):
        return [
            'batch_config must be {"encoding": {"format": "jsonl", "compression": '
            '"none"}, "storage": {"root": "file:///a/folder"}} (compression none or gzip)'
        ]
    return []


def _organization_errors(config: Mapping[str, Any]) -> list[str]:
    if not str(config.get("organization_id") or "").strip():
        return [organization_required("extractor", "tap-openai-costs", "tap reads")]
    return []


def _flattening_errors(config: Mapping[str, Any]) -> list[str]:
    """Flattening breaks the records (the SDK's flattened schema still requires the
    nested ``layout``, and target-pelanor needs it whole), so it is refused up front."""
    if not config.get("flattening_enabled"):
        return []
    return [
        "flattening_enabled is not supported: the layout and seal records must reach "
        "the loader whole (a warehouse stores layout as a JSON column); remove "
        "flattening_enabled"
    ]


def _source_errors(config: Mapping[str, Any]) -> list[str]:
    errors = _duration_errors(config)
    if _source(config) != Source.API.value:
        if not config.get("paths"):
            errors.append("paths is required when source is files")
        if config.get("check_against_api"):
            errors += _api_access_errors(config, "check_against_api is true")
        return errors
    if config.get("check_against_api"):
        errors.append(
            "check_against_api compares export files with the Costs API, but source is "
            "api (the months come from the API already): unset check_against_api"
        )
    errors += _api_access_errors(config, "source is api", "organization_name")
    if int(config.get("settle_days", DEFAULT_SETTLE_DAYS)) < 0:
        errors.append(
            "settle_days must be 0 or more (days after a month ends that it is still re-read)"
        )
    return errors


def _duration_errors(config: Mapping[str, Any]) -> list[str]:
    errors = []
    timeout = config.get("request_timeout", DEFAULT_REQUEST_TIMEOUT)
    budget = config.get("max_retry_seconds", DEFAULT_MAX_RETRY_SECONDS)
    for request_timeout, max_retry_seconds in ((timeout, 0), (1, budget)):
        try:
            check_durations(request_timeout, max_retry_seconds)
        except ValueError as problem:
            errors.append(str(problem))
    return errors


def _api_access_errors(config: Mapping[str, Any], when: str, *required: str) -> list[str]:
    """The settings reaching the Costs API needs."""
    errors = [
        f"{key} is required when {when}"
        for key in ("admin_api_key", *required)
        if not config.get(key)
    ]
    try:
        check_api_base_url(config.get("api_base_url", DEFAULT_BASE_URL))
    except ValueError as problem:
        errors.append(str(problem))
    try:
        check_secret(config.get("admin_api_key") or "", "admin_api_key")
    except ValueError as problem:
        errors.append(str(problem))
    return errors
