"""The tap's settings, checked at start: one line per problem, before any input is read.

What the settings schema cannot say (a setting required by another's value, a URL, a
secret that could not be sent, durations, BATCH and flattening options) is checked here,
so a run fails before it reads an export or the Costs API, with a message that says what
to set. Secrets are never shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from singer_sdk.helpers._batch import BatchConfig

from openai_costs.batches import check_encoding
from openai_costs.safe_http import check_durations, check_secret
from openai_costs.user_errors import organization_required
from tap_openai_costs.costs_api import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RETRY_SECONDS,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SETTLE_DAYS,
    check_api_base_url,
)

__all__ = ["setting_errors"]


def setting_errors(config: Mapping[str, Any]) -> list[str]:
    """Every problem with the settings, one message each."""
    return (
        _organization_errors(config)
        + _source_errors(config)
        + _batch_config_errors(config)
        + _flattening_errors(config)
    )


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
    if config.get("source", "files") != "api":
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
