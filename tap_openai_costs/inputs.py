"""This run's inputs, and which months changed: what the ``costs`` stream reads and seals.

Inputs are the export files of ``paths``, or for source api the months OpenAI's Costs API
may still change, fetched into export files first; from there both are validated and
planned alike. A problem the user must fix is raised as :class:`InputProblems`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from openai_costs.export import ExportError, Layout
from openai_costs.os_errors import advice
from tap_openai_costs.costs_api import FieldNotes, OpenAIAPIError, fetch_exports, months_due
from tap_openai_costs.known_exports import KnownExports
from tap_openai_costs.paths import ExportErrors, expand_paths
from tap_openai_costs.planner import ExportReading, MonthPlan, unfinished, which_copy_wins
from tap_openai_costs.progress import ReadProgress
from tap_openai_costs.settings import Source, TapSettings


class InputProblems(Exception):
    """Every problem found in the inputs; nothing is sealed."""

    def __init__(self, problems: list[Exception]) -> None:
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


def read_exports(
    settings: TapSettings,
    bookmark: Mapping[str, Any],
    today: date,
    api_dir: Path,
    logger: logging.Logger,
) -> ExportReading:
    """This run's exports (fetched into api_dir first for source api), ready to validate.

    ``bookmark`` is the ``costs`` stream's state: ``months`` maps state keys to the input
    digest of what was sealed before, ``files`` what each export file held (source files).
    """
    delivered = dict(bookmark.get("months", {}))
    known = None
    layout: Layout | None = None
    api_source: str | None = None
    try:
        if settings.source is Source.API:
            # Fetched afresh into new files every run: nothing to remember them by.
            paths, api_source = _api_exports(settings, delivered, today, api_dir, logger)
            layout = settings.layout
        else:
            paths = expand_paths(list(settings.paths))
            known = _known_exports(bookmark, settings.organization_id, today, logger)
    except (ExportError, OpenAIAPIError) as problem:
        raise InputProblems([problem]) from None
    except ExportErrors as errors:
        raise InputProblems(list(errors.problems)) from None
    return ExportReading(
        paths,
        settings.organization_id,
        settings.start_month,
        delivered,
        today,
        known=known,
        progress=ReadProgress(logger),
        layout=layout,
        api_source=api_source,
    )


def _known_exports(
    bookmark: Mapping[str, Any], organization_id: str, today: date, logger: logging.Logger
) -> KnownExports:
    records = bookmark.get("files")
    if not isinstance(records, Mapping):
        if bookmark.get("months"):
            logger.info(
                "the state has no record of the export files (it was written by an earlier "
                "version): every file is validated once to record it; later runs read only "
                "the files that changed"
            )
        records = {}
    return KnownExports(records, organization_id, today, logger)


def changed_months(
    reading: ExportReading, logger: logging.Logger
) -> tuple[list[MonthPlan], dict[str, ExportError]]:
    """The months to seal, once every input was validated (one bad file means no seal),
    and why the changed months that must not be sealed are withheld, by month: a day of
    theirs comes from an export saved before that day ended (:func:`unfinished`)."""
    try:
        plans = reading.plans()
    except ExportErrors as errors:
        raise InputProblems(list(errors.problems)) from None
    changed = reading.changed(plans)
    for line in which_copy_wins(lost for plan in changed for lost in plan.overruled):
        logger.warning("%s", line)  # an argument, so that the names in it are escaped
    withheld = {plan.month: problem for plan in changed if (problem := unfinished(plan))}
    logger.info(
        "%d month(s) found, %d changed since the last run: %s",
        len(plans),
        len(changed),
        ", ".join(plan.month for plan in changed) or "none",
    )
    return [plan for plan in changed if plan.month not in withheld], withheld


def _api_exports(
    settings: TapSettings,
    delivered: Mapping[str, str],
    today: date,
    directory: Path,
    logger: logging.Logger,
) -> tuple[list[Path], str]:
    """The months to read, fetched into export files; and the endpoint they came from."""
    organization_id = settings.organization_id
    months = months_due(
        organization_id,
        settings.start_month,
        settings.settle_days,
        delivered,
        today,
    )
    notes = FieldNotes()
    try:
        with settings.costs_api_client() as client:
            paths = fetch_exports(
                client,
                months,
                today,
                organization_id,
                settings.organization_name,
                directory,
                logger.info,
                notes,
            )
            notes.say(logger)
            return paths, client.costs_url
    except OSError as exc:  # writing the months into the work folder
        fix = advice(exc, "free space there or set work_dir to a writable folder")
        raise ExportError(
            str(directory),
            f"cannot hold the months read from the Costs API ({exc.strerror}); {fix}",
        ) from None
