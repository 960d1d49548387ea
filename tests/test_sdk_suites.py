"""The singer-sdk's own tap and target test suites, as far as they apply.

The tap runs the full standard suite on the bundled samples. The target loads only the
tap's two streams, so the generic ``.singer`` files of the SDK's target suite (other
streams and schemas) do not apply; as MeltanoLabs target-postgres does, a chosen subset
runs, plus a file test fed with the tap's real output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from singer_sdk.testing import get_tap_test_class, get_target_test_class
from singer_sdk.testing.config import SuiteConfig
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.target_tests import (
    TargetCliPrintsTest,
    TargetRecordBeforeSchemaTest,
)
from singer_sdk.testing.templates import TargetFileTestTemplate

from tap_openai_costs.tap import TapOpenAICosts
from target_pelanor.target import TargetPelanor
from tests.exports import SAMPLES
from tests.singer import BIN

TAP_CONFIG = {"paths": [str(SAMPLES / "acme")], "organization_id": "org-acme"}
#: One folder per xdist worker (the suites' config names it when this module is imported).
DATA = Path(__file__).parent / "data" / os.environ.get("PYTEST_XDIST_WORKER", "main")
ACME_SINGER = DATA / "acme.singer"
OUTPUT = DATA / "target-output"


def every_stream_selected() -> dict:
    """The tap's catalog with every stream selected, focus_costs too: the suite selects the
    streams only after the tap built its stream maps, which leaves a stream not selected by
    default without properties in them."""
    catalog = TapOpenAICosts(config=TAP_CONFIG, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = True
    return catalog


# Enough records for the seals: a month's seal comes only after its last row.
TestTapOpenAICosts = get_tap_test_class(
    TapOpenAICosts,
    config=TAP_CONFIG,
    suite_config=SuiteConfig(max_records_limit=1000),
    catalog=every_stream_selected(),
)


class TargetLoadsTapOutput(TargetFileTestTemplate):
    """The tap's real output for the acme samples loads and writes both months exactly."""

    name = "acme_samples"

    @property
    def singer_filepath(self) -> Path:  # type: ignore[override]
        return ACME_SINGER

    def validate(self) -> None:
        for sample in sorted((SAMPLES / "acme").glob("*.csv")):
            assert (OUTPUT / sample.name).read_bytes() == sample.read_bytes()


@pytest.fixture(scope="session", autouse=True)
def acme_singer_file() -> None:
    """Produce the target's input with the tap itself, so the two cannot drift apart."""
    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True)
    config = DATA / "acme.tap.json"
    config.write_text(json.dumps(TAP_CONFIG))
    with ACME_SINGER.open("w") as out:
        subprocess.run(
            [str(BIN / "tap-openai-costs"), "--config", str(config)],
            stdout=out,
            stderr=subprocess.DEVNULL,
            check=True,
        )


TestTargetPelanor = get_target_test_class(
    TargetPelanor,
    config={"organization_id": "org-acme", "dry_run": True, "output_dir": str(OUTPUT)},
    include_target_tests=False,
    custom_suites=[
        SingerTestSuite(
            kind="target",
            tests=[TargetCliPrintsTest, TargetRecordBeforeSchemaTest, TargetLoadsTapOutput],
        )
    ],
)
