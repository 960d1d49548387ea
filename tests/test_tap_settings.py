"""The tap's settings and inputs checked before anything runs: one line each, no traceback."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_openai_costs.settings import TapSettings
from tap_openai_costs.streams import TapStopped
from tap_openai_costs.tap import TapOpenAICosts
from tests.exports import ORG, cost, export, times, write
from tests.singer import run_tap

OCT1 = date(2025, 10, 1)
API = {
    "source": "api",
    "organization_id": ORG,
    "organization_name": "Acme, Inc.",
    "admin_api_key": "sk-admin-abc",
    "api_base_url": "http://127.0.0.1:9",
}


def setting_errors(config: dict) -> list[str]:
    """The problems the settings object finds, in its order (none: it was built)."""
    try:
        TapSettings.from_config(config)
    except ConfigValidationError as invalid:
        return list(invalid.errors)
    return []


def config_errors(config: dict) -> list[str]:
    with pytest.raises(ConfigValidationError) as raised:
        TapOpenAICosts(config=config, parse_env_config=False)
    return list(raised.value.errors)


@pytest.mark.parametrize(
    ("config", "errors"),
    [
        (
            API | {"admin_api_key": "sk-admin abc\n"},
            [
                "admin_api_key contains whitespace or a line break; set it without spaces or "
                "newlines (copy it again, or strip the file or variable it comes from)"
            ],
        ),
        (
            API | {"settle_days": -1},
            ["settle_days must be 0 or more (days after a month ends that it is still re-read)"],
        ),
        (
            {"paths": ["x.csv"], "organization_id": "  "},
            ["organization_id is required: the OpenAI organization (org-...) this tap reads"],
        ),
        (
            {"paths": ["x.csv"], "organization_id": ORG, "batch_config": {"encoding": {}}},
            [
                'batch_config must be {"encoding": {"format": "jsonl", "compression": '
                '"none"}, "storage": {"root": "file:///a/folder"}} (compression none or gzip)'
            ],
        ),
    ],
    ids=["admin key with a line break", "negative settle_days", "blank organization", "batch"],
)
def test_bad_settings_are_one_line_each(config, errors) -> None:
    assert config_errors(config) == errors
    assert "sk-admin abc" not in json.dumps(errors)


def test_every_bad_setting_is_said_at_once_in_a_fixed_order() -> None:
    config = {
        "organization_id": " ",
        "source": "api",
        "check_against_api": True,
        "request_timeout": 0,
        "api_base_url": "http://example.com",
        "flattening_enabled": True,
    }
    assert setting_errors(config) == [
        "organization_id is required: the OpenAI organization (org-...) this tap reads",
        "request_timeout must be a positive number of seconds (got 0)",
        "check_against_api compares export files with the Costs API, but source is api (the "
        "months come from the API already): unset check_against_api",
        "admin_api_key is required when source is api",
        "organization_name is required when source is api",
        "api_base_url must use https; plain http is only allowed for loopback hosts "
        "(127.0.0.0/8, ::1, localhost), got http://example.com",
        "flattening_enabled is not supported: the layout and seal records must reach the "
        "loader whole (a warehouse stores layout as a JSON column); remove flattening_enabled",
    ]


@pytest.mark.parametrize(
    "amount",
    ["1e1000", "1.5E-1000", "0." + "0" * 70 + "1"],
    ids=["exponent of four digits", "negative exponent of four digits", "65 characters"],
)
def test_amounts_no_export_writes_are_refused(tmp_path, amount) -> None:
    path = write(tmp_path / "oct.csv", export([cost(OCT1, amount)]))
    result = run_tap(tmp_path, {"paths": [str(path)], "organization_id": ORG})
    assert result.returncode == 1
    assert result.errors == [
        f"tap-openai-costs: error: {path}: row 2: amount_value {amount!r} is not a decimal "
        "number; use the export unmodified"
    ]


def test_totals_stay_exact_beyond_the_default_decimal_precision(tmp_path) -> None:
    amounts = ["123456.7812345678", "1.2345678901234567e-10", "5.5e-05"]
    rows = [cost(OCT1, a, item=str(n)) for n, a in enumerate(amounts)]
    result = run_tap(
        tmp_path, {"paths": [str(write(tmp_path / "o.csv", export(rows)))], "organization_id": ORG}
    )
    assert result.returncode == 0, result.stderr
    (seal,) = result.records("cost_months")
    with localcontext() as exact:
        exact.prec = 100
        total = sum((Decimal(a) for a in amounts), Decimal(0))
    assert (
        seal["total_usd"] == f"{total:f}" == "123456.78128956792345678901234567"
    )  # 32 digits: beyond the default 28


def test_an_iso_time_ending_in_z_is_utc_on_every_python(tmp_path) -> None:
    row = cost(OCT1) | {
        "start_time_iso": "2025-10-01T00:00:00Z",
        "end_time_iso": "2025-10-02T00:00:00Z",
    }
    path = write(tmp_path / "oct.csv", export([row]))
    result = run_tap(tmp_path, {"paths": [str(path)], "organization_id": ORG})
    assert result.returncode == 0, result.stderr
    assert times(OCT1)["start_time"] == str(result.records("costs")[0]["start_time"])


def test_a_work_folder_that_cannot_hold_the_api_months_is_one_line(
    tmp_path, monkeypatch, capsys, start_openai
) -> None:
    from local_sandboxes.openai_costs_api import project, result
    from tap_openai_costs.streams import CostsStream

    day = 1_759_276_800  # 2025-10-01
    fake = start_openai(
        {day + n * 86_400: [result("0.5")] for n in range(31)},
        [project("proj_abc", "Acme App")],
        "sk-admin-abc",
    )
    real_open = Path.open

    def full_disk(path: Path, mode: str = "r", *args, **kwargs):
        if mode == "wb" and path.name.startswith("cost_"):
            raise OSError(28, "No space left on device", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", full_disk)
    monkeypatch.setattr(CostsStream, "today", lambda self: date(2025, 11, 1))
    work = tmp_path / "work"
    tap = TapOpenAICosts(
        config=API | {"api_base_url": fake.url, "start_month": "2025-10", "work_dir": str(work)},
        parse_env_config=False,
    )
    with pytest.raises(TapStopped) as exited:
        tap.sync_all()
    assert exited.value.code == 1
    errors = [f"tap-openai-costs: error: {problem}" for problem in exited.value.problems]
    assert len(errors) == 1
    assert errors[0].startswith(f"tap-openai-costs: error: {work}/tap-openai-costs.")
    assert errors[0].endswith(
        ": cannot hold the months read from the Costs API (No space left on device); free "
        "space there or set work_dir to a writable folder"
    )


@pytest.mark.parametrize(
    ("meltano_name", "advice"),
    [
        (None, ""),
        (
            "tap-openai-costs--globex--pelanor",
            "; set it (meltano config set tap-openai-costs--globex--pelanor organization_id "
            "org-...)",
        ),
        (
            "tap-openai-costs",
            "; set it (meltano config set tap-openai-costs organization_id org-...), or, where "
            "each organization has plugins of its own, test or run those instead (meltano "
            "config test tap-openai-costs--<org>, meltano run openai-costs-<org>)",
        ),
    ],
    ids=["run by hand", "an organization's plugin in Meltano", "the parent plugin in Meltano"],
)
def test_a_missing_organization_says_how_to_set_it_where_the_tap_runs(
    monkeypatch: pytest.MonkeyPatch, meltano_name: str | None, advice: str
) -> None:
    monkeypatch.delenv("MELTANO_EXTRACTOR_NAME", raising=False)
    if meltano_name is not None:
        monkeypatch.setenv("MELTANO_EXTRACTOR_NAME", meltano_name)
    assert setting_errors({"paths": ["x.csv"]}) == [
        "organization_id is required: the OpenAI organization (org-...) this tap reads" + advice
    ]
