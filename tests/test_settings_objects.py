"""Each plugin's settings object, in process: built once from a config, typed, with the
schema's defaults, every problem found at once (the exact lines), and no secret in its
``repr``. What a user sees of these lines end to end is in test_tap_settings.py,
test_target_checks.py and test_upload_request.py."""

from __future__ import annotations

import logging
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.exceptions import ConfigValidationError

from openai_costs.user_errors import settings_not_usable
from tap_openai_costs.costs_api import API_LAYOUTS
from tap_openai_costs.settings import SCHEMA as TAP_SCHEMA
from tap_openai_costs.settings import Source, TapSettings
from target_pelanor.settings import ALLOW_SHRINKING_IS_A_LIST, TargetSettings
from target_pelanor.settings import SCHEMA as TARGET_SCHEMA
from target_pelanor.upload_request import DEFAULT_SHAPE

ORG = "org-acme"
ADMIN_KEY = "sk-admin-SECRETVALUE123"
TOKEN = "tokid:SECRETVALUE456"
TOKEN_SECRET = "SECRETVALUE789"


@pytest.fixture(autouse=True)
def not_run_by_meltano(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lines as a user running the plugin by hand sees them."""
    for variable in ("MELTANO_EXTRACTOR_NAME", "MELTANO_LOADER_NAME"):
        monkeypatch.delenv(variable, raising=False)


def problems(settings_type: type[TapSettings] | type[TargetSettings], config: Any) -> list[str]:
    with pytest.raises(ConfigValidationError) as raised:
        settings_type.from_config(config)
    assert str(raised.value) == "Config validation failed"
    return list(raised.value.errors)


def schema_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        name: spec["default"] for name, spec in schema["properties"].items() if "default" in spec
    }


# -- the tap ------------------------------------------------------------------------------


def test_the_tap_settings_without_optional_ones_take_the_schemas_defaults() -> None:
    settings = TapSettings.from_config({"organization_id": ORG, "paths": ["exports/"]})
    assert settings == TapSettings(
        organization_id=ORG,
        source=Source.FILES,
        paths=("exports/",),
        api_base_url="https://api.openai.com",
        api_layout="nine_columns",
        check_against_api=False,
        request_timeout=60,
        max_retry_seconds=300,
        settle_days=3,
        focus_user_email=False,
    )
    defaults = schema_defaults(TAP_SCHEMA)
    assert defaults == {
        "source": "files",
        "api_base_url": "https://api.openai.com",
        "api_layout": "nine_columns",
        "check_against_api": False,
        "request_timeout": 60,
        "max_retry_seconds": 300,
        "settle_days": 3,
        "focus_user_email": False,
    }
    for name, default in defaults.items():
        assert getattr(settings, name) == default, name


def test_the_tap_settings_are_typed() -> None:
    settings = TapSettings.from_config(
        {
            "organization_id": ORG,
            "source": "api",
            "admin_api_key": ADMIN_KEY,
            "organization_name": "Acme, Inc.",
            "api_layout": "wide",
            "request_timeout": 5,
            "max_retry_seconds": Decimal(30),
            "start_month": "2025-09",
        }
    )
    assert settings.source is Source.API
    assert settings.paths == ()
    assert settings.layout is API_LAYOUTS["wide"]
    assert isinstance(settings.request_timeout, float)
    assert isinstance(settings.max_retry_seconds, float)
    assert (settings.request_timeout, settings.max_retry_seconds) == (5.0, 30.0)
    assert settings.start_month == "2025-09"
    assert not settings.witness_wanted


def test_the_tap_settings_never_show_the_admin_key() -> None:
    settings = TapSettings.from_config(
        {"organization_id": ORG, "paths": ["x.csv"], "check_against_api": True}
        | {"admin_api_key": ADMIN_KEY}
    )
    assert settings.admin_api_key == ADMIN_KEY
    assert settings.witness_wanted
    assert ADMIN_KEY not in repr(settings)
    assert ADMIN_KEY not in str(settings)
    assert "admin_api_key" not in repr(settings)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"organization_id": ORG}, ["paths is required when source is files"]),
        (
            {"organization_id": ORG, "paths": ["x.csv"], "check_against_api": True},
            ["admin_api_key is required when check_against_api is true"],
        ),
        (
            {"organization_id": ORG, "source": "api", "admin_api_key": ADMIN_KEY},
            ["organization_name is required when source is api"],
        ),
        (
            {"organization_id": ORG, "paths": ["x.csv"], "max_retry_seconds": -1},
            ["max_retry_seconds must be 0 or a positive number of seconds (got -1)"],
        ),
        (
            {"organization_id": ORG, "paths": ["x.csv"], "flattening_enabled": True},
            [
                "flattening_enabled is not supported: the layout and seal records must reach "
                "the loader whole (a warehouse stores layout as a JSON column); remove "
                "flattening_enabled"
            ],
        ),
    ],
    ids=["no paths", "a witness without a key", "api without a name", "budget", "flattening"],
)
def test_each_tap_setting_check_is_one_exact_line(
    config: dict[str, Any], expected: list[str]
) -> None:
    assert problems(TapSettings, config) == expected


def test_every_tap_problem_is_collected_in_a_fixed_order() -> None:
    config = {
        "source": "api",
        "request_timeout": 0,
        "max_retry_seconds": -5,
        "settle_days": -1,
        "admin_api_key": "sk-admin a",
        "batch_config": {"encoding": {}},
    }
    assert problems(TapSettings, config) == [
        "organization_id is required: the OpenAI organization (org-...) this tap reads",
        "request_timeout must be a positive number of seconds (got 0)",
        "max_retry_seconds must be 0 or a positive number of seconds (got -5)",
        "organization_name is required when source is api",
        "admin_api_key contains whitespace or a line break; set it without spaces or "
        "newlines (copy it again, or strip the file or variable it comes from)",
        "settle_days must be 0 or more (days after a month ends that it is still re-read)",
        'batch_config must be {"encoding": {"format": "jsonl", "compression": '
        '"none"}, "storage": {"root": "file:///a/folder"}} (compression none or gzip)',
    ]


# -- the target ---------------------------------------------------------------------------


def test_the_target_settings_without_optional_ones_take_the_schemas_defaults() -> None:
    settings = TargetSettings.from_config(
        {"organization_id": ORG, "integration_id": "int-acme", "api_token": TOKEN}
    )
    assert settings == TargetSettings(
        organization_id=ORG,
        integration_id="int-acme",
        api_token=TOKEN,
        region="us",
        upload_shape=DEFAULT_SHAPE,
        dry_run=False,
        allow_partial_month=False,
        upload_records_dir=settings.upload_records_dir,
        request_timeout=60,
        max_retry_seconds=600,
    )
    assert settings.base_url() == "https://api.pelanor.io"
    # The default folder, under the XDG_STATE_HOME each test gets.
    assert settings.upload_records_dir == Path(
        os.environ["XDG_STATE_HOME"], "target-pelanor", "uploads"
    )
    defaults = schema_defaults(TARGET_SCHEMA)
    assert defaults == {
        "region": "us",
        "upload_path": "/v1/integrations/openai/{integration_id}/upload",
        "upload_method": "POST",
        "upload_body": "multipart",
        "upload_file_field": "file",
        "upload_content_type": "text/csv",
        "dry_run": False,
        "allow_partial_month": False,
        "request_timeout": 60,
        "max_retry_seconds": 600,
    }
    shape = settings.upload_shape
    read = {
        "upload_path": shape.path,
        "upload_method": shape.method,
        "upload_body": shape.body,
        "upload_file_field": shape.file_field,
        "upload_content_type": shape.content_type,
    }
    for name, default in defaults.items():
        assert read.get(name, getattr(settings, name, None)) == default, name


def test_the_target_settings_are_typed(tmp_path: Path) -> None:
    settings = TargetSettings.from_config(
        {
            "organization_id": ORG,
            "dry_run": True,
            "region": "eu",
            "output_dir": str(tmp_path / "out"),
            "allow_shrinking_months": ["2025-10", "2025-09"],
            "upload_method": "PUT",
            "upload_body": "raw",
            "check_path": "/v1/{integration_id}",
        }
    )
    assert settings.api_token is None
    assert settings.integration_id is None
    assert settings.base_url() == "https://api-eu.pelanor.io"
    assert settings.output_dir == tmp_path / "out"
    assert settings.allow_shrinking_months == frozenset({"2025-09", "2025-10"})
    assert (settings.upload_shape.method, settings.upload_shape.body) == ("PUT", "raw")
    assert settings.check_path == "/v1/{integration_id}"
    assert isinstance(settings.request_timeout, float)


def test_the_target_settings_never_show_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PELANOR_SECRET_FOR_THIS_TEST", TOKEN_SECRET)
    whole = TargetSettings.from_config(
        {"organization_id": ORG, "dry_run": True, "api_token": TOKEN}
    )
    parts = TargetSettings.from_config(
        {
            "organization_id": ORG,
            "dry_run": True,
            "api_token_id": "tokid",
            "api_token_secret_env": "PELANOR_SECRET_FOR_THIS_TEST",
        }
    )
    assert (whole.api_token, parts.api_token) == (TOKEN, f"tokid:{TOKEN_SECRET}")
    for settings in (whole, parts):
        for text in (repr(settings), str(settings)):
            assert "SECRETVALUE" not in text
            assert "api_token" not in text


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"organization_id": ORG, "api_token": TOKEN},
            ["integration_id is required unless dry_run is true"],
        ),
        (
            {"organization_id": ORG, "integration_id": "int-acme"},
            ["api_token is required unless dry_run is true"],
        ),
        (
            {"organization_id": ORG, "dry_run": True, "allow_shrinking_months": True},
            [ALLOW_SHRINKING_IS_A_LIST],
        ),
        (
            {"organization_id": ORG, "dry_run": True, "allow_shrinking_months": ["2025-1"]},
            ["allow_shrinking_months must list months as YYYY-MM, such as 2025-10 (got '2025-1')"],
        ),
        (
            {"organization_id": ORG, "integration_id": "i", "api_token": TOKEN, "region": "mars"},
            ["region must be one of: us, eu (got 'mars'); or set api_url"],
        ),
        (
            {"organization_id": ORG, "dry_run": True, "check_path": "v1"},
            [
                "check_path must be a path starting with '/', such as "
                "/v1/integrations/openai/{integration_id} (got 'v1')"
            ],
        ),
    ],
    ids=["no integration", "no token", "shrinking true", "a month", "region", "check_path"],
)
def test_each_target_setting_check_is_one_exact_line(
    config: dict[str, Any], expected: list[str]
) -> None:
    assert problems(TargetSettings, config) == expected


def test_every_target_problem_is_collected_in_a_fixed_order_and_named_in_one_last_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = {
        "request_timeout": 0,
        "upload_method": "GET",
        "allow_shrinking_months": "2025-10",
        "region": "mars",
    }
    found = problems(TargetSettings, config)
    assert found == [
        "organization_id is required: the OpenAI organization (org-...) this loader uploads",
        "api_token is required unless dry_run is true",
        "request_timeout must be a positive number of seconds (got 0)",
        "upload_method must be one of POST, PUT (got 'GET')",
        'allow_shrinking_months must be a list of months, such as ["2025-10"]',
        "integration_id is required unless dry_run is true",
        "region must be one of: us, eu (got 'mars'); or set api_url",
    ]
    caplog.set_level(logging.ERROR)
    with pytest.raises(SystemExit):
        settings_not_usable("target-pelanor", found)
    numbered = " ".join(f"({number}) {line}" for number, line in enumerate(found, 1))
    assert caplog.messages[-1] == f"Config validation failed, 7 problems: {numbered}"
