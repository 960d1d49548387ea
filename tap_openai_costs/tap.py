"""tap-openai-costs: OpenAI cost data as exact, month-sealed Singer records."""

from __future__ import annotations

import sys
from functools import cached_property
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter

from tap_openai_costs.cost_export import ExportError
from tap_openai_costs.planner import MonthPlan, expand_paths, plan_months, scan_all
from tap_openai_costs.streams import CostsStream, MonthSealsStream


class TapOpenAICosts(Tap):
    """Reads OpenAI's Cost data exports, validates all of them, then emits changed months."""

    name = "tap-openai-costs"
    message_writer_class = MsgSpecWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "paths",
            th.ArrayType(th.StringType),
            required=True,
            title="Export paths",
            description=(
                "Files, folders (every *.csv inside) or glob patterns of OpenAI Cost data "
                "exports (Usage > Export > Cost data, group by Line Item, 1 day, CSV)."
            ),
        ),
        th.Property(
            "organization_id",
            th.StringType,
            required=True,
            title="OpenAI organization ID",
            description=(
                "The organization (org-...) this connector serves; "
                "a row of any other fails the run."
            ),
        ),
        th.Property(
            "start_month",
            th.StringType,
            title="Start month",
            description="YYYY-MM: ignore earlier months.",
            pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        return [CostsStream(self), MonthSealsStream(self)]

    @cached_property
    def months_to_emit(self) -> list[MonthPlan]:
        """Every input is validated here, before the first record, so one bad file means
        no records at all: one line per problem on stderr and exit status 1."""
        try:
            return self._changed_months()
        except ExportErrors as errors:
            for error in errors.problems:
                print(f"{self.name}: error: {error}", file=sys.stderr)
            sys.exit(1)

    def _changed_months(self) -> list[MonthPlan]:
        organization_id = self.config["organization_id"]
        start_month = self.config.get("start_month")
        try:
            scans, problems = scan_all(expand_paths(self.config["paths"]), organization_id)
            if problems:
                raise ExportErrors(problems)
            plans = plan_months(scans, organization_id, start_month)
        except ExportError as problem:
            raise ExportErrors([problem]) from None
        done = self._emitted_digests()
        changed = [plan for plan in plans if done.get(plan.key) != plan.input_digest]
        self.logger.info(
            "%d month(s) found, %d changed since the last run: %s",
            len(plans),
            len(changed),
            ", ".join(plan.month for plan in changed) or "none",
        )
        return changed

    def _emitted_digests(self) -> dict[str, Any]:
        bookmarks = self.state.get("bookmarks", {}).get(CostsStream.name, {})
        return dict(bookmarks.get("months", {}))


class ExportErrors(Exception):
    """Every problem found in the inputs, reported together before anything is emitted."""

    def __init__(self, problems: list[ExportError]) -> None:
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


if __name__ == "__main__":
    TapOpenAICosts.cli()
