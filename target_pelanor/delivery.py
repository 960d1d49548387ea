"""Delivery: each sealed month checked, written out and uploaded, and what became of it.

The sinks hand records here; the target only wires settings in. A month leaves only when
the ledger passes it (sealed, matching, complete, every row checked) and it is not smaller
than the copy uploaded before, as the state and this machine remember it
(:mod:`target_pelanor.shrink_guard`, :mod:`target_pelanor.upload_records`; unless the
month is listed in ``allow_shrinking_months``). An upload holds the month's upload lock
from that check to Pelanor's answer (:mod:`target_pelanor.upload_lock`). A month another
run uploaded while this one was going (two runs of one organization at once, as an
orchestrator's ``meltano run --force`` allows) is not sent again when it is the same
file, and is withheld when it differs: this run's copy may be the older. A month counts as
delivered only when Pelanor accepted it (:mod:`target_pelanor.client`). Results are kept
for the end-of-run table, and any failure means the target confirms no state beyond what
Pelanor accepted.

Working files live in this process's working folder (:mod:`openai_costs.work_folder`),
removed when the run ends however it ends. A working file that cannot be written stops
the run (:class:`RunStopped`): a full or broken disk fails every month alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Protocol

from openai_costs.batches import BatchReaders
from openai_costs.contract import STREAMS, CostRow, MonthOpened, Seal, state_key
from openai_costs.export import format_decimal, today_utc
from openai_costs.month_status import CHECKED, FAILED, UNCHANGED, UPLOADED, WITHHELD, WRITTEN
from openai_costs.os_errors import advice, reason
from openai_costs.user_errors import meltano_name
from openai_costs.work_folder import WorkFolder, open_work_folder
from target_pelanor.client import PelanorClient, PelanorError
from target_pelanor.destination import Destination, pelanor_host
from target_pelanor.integration_binding import BindingProblem, IntegrationBindings
from target_pelanor.month_ledger import MonthLedger, ReadyMonth, Withheld
from target_pelanor.progress import WriteProgress
from target_pelanor.report import MonthResult, publish
from target_pelanor.settings import TargetSettings
from target_pelanor.shrink_guard import (
    Remembered,
    UnreadableRecord,
    Uploaded,
    UploadMemory,
    refusal,
)
from target_pelanor.stopping import Interrupted, RunStopped
from target_pelanor.upload_lock import LockTimeout, LockUnavailable, UploadLocks
from target_pelanor.upload_records import MachineRecords, normalised_endpoint

__all__ = ["PLUGIN", "Delivery", "TargetWithDelivery"]

PLUGIN = "target-pelanor"
#: A month whose rows came without a seal: the tap refused it on purpose (a day that
#: disagrees with check_against_api, an export saved before its day ended) or stopped
#: before finishing it; its rows cannot tell which, its log does.
NOT_SEALED = (
    "was not sealed by the tap: the tap refused it (its log says why, such as "
    "check_against_api) or stopped before finishing it; nothing uploaded, the next run "
    "sends it again"
)


class Delivery:
    """One run's months, from layout record to upload, and their results."""

    def __init__(self, settings: TargetSettings, logger: logging.Logger) -> None:
        self.settings = settings
        self.logger = logger
        #: The Pelanor this run uploads to, and the integration there (the shrink guard's
        #: key); None only in a dry run without a usable one.
        self.endpoint: str | None = None
        self.destination: Destination | None = None
        with contextlib.suppress(ValueError):
            base_url = settings.base_url()
            self.endpoint = normalised_endpoint(base_url)
            if host := pelanor_host(base_url):
                self.destination = Destination(host, settings.integration_id)
        self.records: MachineRecords | None = None
        self.bindings: IntegrationBindings | None = None
        folder = settings.upload_records_dir  # None: no home folder (refused unless dry run)
        if self.endpoint is not None and settings.integration_id and folder is not None:
            self.records = MachineRecords(folder, self.endpoint)
            self.bindings = IntegrationBindings(folder)
        #: Raises BindingProblem before anything is opened or read.
        self.check_integration()
        #: Raises WorkFolderError when work_dir cannot be used.
        self.work: WorkFolder = open_work_folder(settings.work_dir, PLUGIN)
        logger.info("Working files in %s", self.work.path)
        self.ledger = MonthLedger(
            settings.organization_id,
            settings.allow_partial_month,
            today_utc(),  # once, at start: the same day for every month of the run
            self.work.path,
        )
        self.memory = UploadMemory()
        self.locks = UploadLocks(self.work.root / "locks", settings.max_retry_seconds)
        #: When this run started, on the clock upload records' files are written by.
        self.started_ns = time.time_ns()
        #: The state keys of the months this run uploaded.
        self.sent: set[str] = set()
        self.results: list[MonthResult] = []
        self.progress = WriteProgress(logger)
        #: The runs of batch files being read (their leftovers go at the end).
        self.batches = BatchReaders()
        #: Streams whose SCHEMA arrived: the tap announces every selected one up front.
        self.streams: set[str] = set()

    @property
    def _integration_id(self) -> str:
        """The integration uploads go to and records name (set in every run that sends)."""
        return self.settings.integration_id or ""

    @property
    def failed(self) -> bool:
        return any(result.failed for result in self.results)

    def check_integration(self) -> None:
        """Raise :class:`BindingProblem` when the integration serves another organization
        (:mod:`target_pelanor.integration_binding`)."""
        if self.bindings is not None and self.settings.integration_id:
            self.bindings.check(
                self.settings.integration_id,
                self.settings.organization_id,
                meltano_name("loader", PLUGIN),
            )

    def missing_streams(self) -> list[str]:
        """The tap's streams that were not announced (deselected), in the tap's order."""
        return [stream for stream in STREAMS if stream not in self.streams]

    def open_month(self, opened: MonthOpened) -> None:
        try:
            self.ledger.open_month(opened)
        except OSError as error:
            raise self._disk_problem(opened.month, error) from None
        self.progress.start(opened.organization, opened.month)

    def add_row(self, row: CostRow) -> None:
        try:
            self.ledger.add_row(row)
        except OSError as error:
            raise self._disk_problem(row.month, error) from None
        self.progress.row()

    def deliver(self, seal: Seal) -> None:
        """Check a sealed month, then write and upload it; record what happened."""
        try:
            ready = self.ledger.seal(seal)
        except Withheld as withheld:
            self._withhold(
                seal.organization, seal.month, withheld.rows, withheld.total, str(withheld)
            )
            return
        except OSError as error:
            raise self._disk_problem(seal.month, error) from None
        dry_run = self.settings.dry_run
        self.logger.info(
            "%s %s: written and checked, %d rows, %s USD; %s",
            ready.organization,
            ready.month,
            ready.rows,
            format_decimal(ready.total),
            "dry run, not sending" if dry_run else "sending",
            extra=_fields(ready.organization, ready.month, ready.rows, ready.total, CHECKED),
        )
        try:
            self._record(self._send(ready))
        except Interrupted as interrupted:
            self._record(
                MonthResult(
                    ready.organization,
                    ready.month,
                    ready.rows,
                    ready.total,
                    FAILED,
                    f"interrupted ({interrupted.name}) during its upload: Pelanor may or may "
                    "not have it; the next run sends it again",
                )
            )
            raise
        finally:
            ready.path.unlink(missing_ok=True)

    def withhold_unsealed(self, reason: str | None = None) -> None:
        """The input ended (or the run stops): months that never got a seal are withheld
        (before any state is confirmed, so it never covers them)."""
        for month in self.ledger.unsealed():
            self._withhold(
                month.organization,
                month.month,
                month.rows,
                month.total,
                reason or NOT_SEALED,
            )

    def finish(self, no_month: str = "no month arrived from the tap: nothing to upload") -> None:
        """Clean up (working files included), and show the results table (``no_month``
        instead when there is no month to show)."""
        self.close()
        publish(self.results, self.logger, no_month)

    def close(self) -> None:
        """Clean up: the open month files, the connection, unread batch files and the
        working folder."""
        try:
            self.ledger.close()
            if "client" in self.__dict__:
                self.client.close()
            if removed := self.batches.finish():
                self.logger.info("Removed batch files never read: %s", ", ".join(removed))
        finally:
            self.work.cleanup()

    @cached_property
    def client(self) -> PelanorClient:
        settings = self.settings
        return PelanorClient(
            base_url=settings.base_url(),
            integration_id=settings.integration_id or "",
            api_token=settings.api_token or "",
            shape=settings.upload_shape,
            organization_id=settings.organization_id,
            request_timeout=settings.request_timeout,
            max_retry_seconds=settings.max_retry_seconds,
        )

    def _send(self, ready: ReadyMonth) -> MonthResult:
        key = state_key(ready.organization, ready.month)
        now = Uploaded(ready.rows, ready.days, ready.total, ready.rows_digest)
        result = MonthResult(ready.organization, ready.month, ready.rows, ready.total, WRITTEN)
        if self.settings.dry_run:
            if problem := self._shrinks(ready.month, key, now, ready.from_api):
                return replace(result, status=WITHHELD, reason=problem)
            return self._write_out(ready, result)
        try:
            with self.locks.hold(self._integration_id, ready.month):
                return self._upload(ready, key, now, result)
        except (LockTimeout, LockUnavailable) as problem:
            return replace(result, status=FAILED, reason=str(problem))

    def _upload(
        self, ready: ReadyMonth, key: str, now: Uploaded, result: MonthResult
    ) -> MonthResult:
        """Under the month's upload lock: the integration's organization, the shrink check,
        another run's upload of the month meanwhile, output_dir, the upload."""
        try:
            self.check_integration()
        except BindingProblem as taken:
            return replace(result, status=WITHHELD, reason=str(taken))
        if problem := self._shrinks(ready.month, key, now, ready.from_api):
            return replace(result, status=WITHHELD, reason=problem)
        if (other := self._uploaded_meanwhile(ready.month, key)) is not None:
            return self._already_there(ready, key, now, other, result)
        written = self._write_out(ready, result)
        if written.failed:
            return written
        try:
            receipt = self.client.upload(
                month=ready.month, filename=ready.filename, content=ready.path
            )
        except PelanorError as error:
            return replace(written, status=FAILED, reason=str(error))
        at = self.now()
        self.sent.add(key)
        noted = None if self.destination is None else self.destination.text
        self.memory.record(key, Remembered(now, "the state", self.endpoint, at, noted))
        if self.records is not None and self.bindings is not None:
            self._note_upload(self.records, self.bindings, ready, now, at)
        return replace(written, status=UPLOADED, response_id=receipt.response_id)

    def _note_upload(
        self,
        records: MachineRecords,
        bindings: IntegrationBindings,
        ready: ReadyMonth,
        now: Uploaded,
        at: datetime,
    ) -> None:
        """This machine's notes of an accepted upload: the integration's organization and
        the month's record. The upload stands when one cannot be written; the log says
        which."""
        integration = self._integration_id
        notes = (
            (
                bindings.path(integration),
                partial(bindings.bind, integration, ready.organization, at),
            ),
            (
                records.path(integration, ready.month),
                partial(records.record, integration, ready.month, now, at),
            ),
        )
        for path, write in notes:
            try:
                write()
            except OSError as error:
                self.logger.warning(
                    "Could not record the upload of %s on this machine (%s): %s",
                    ready.month,
                    path,
                    reason(error),
                )

    def now(self) -> datetime:
        """When an upload is recorded as accepted (UTC)."""
        return datetime.now(timezone.utc)

    def _uploaded_meanwhile(self, month: str, key: str) -> Remembered | None:
        """This machine's record of the month when another run wrote it after this run
        started (read under the month's lock), else None. The record file's time says
        when, to the nanosecond on most file systems (its ``uploaded_at`` keeps seconds)."""
        if self.records is None or key in self.sent:
            return None
        try:
            written = self.records.path(self._integration_id, month).stat()
            remembered = self.records.recall(self._integration_id, month)
        except (OSError, UnreadableRecord):  # none, or refused by the shrink check already
            return None
        if written.st_mtime_ns < self.started_ns or not remembered:
            return None
        return remembered[0]

    def _already_there(
        self, ready: ReadyMonth, key: str, now: Uploaded, other: Remembered, result: MonthResult
    ) -> MonthResult:
        """Another run uploaded the month during this one: the same file is not sent twice
        (the state takes that run's record); a different one is withheld."""
        at = other.at.strftime("%H:%M:%SZ") if other.at else "?"
        if other.uploaded != now:
            return replace(
                result,
                status=WITHHELD,
                reason=f"another target-pelanor run uploaded a different copy of {ready.month} "
                f"at {at}, while this run was going; this run's copy may be the older, so it is "
                "not sent: run again (one run per organization at a time)",
            )
        written = self._write_out(ready, result)
        if written.failed:
            return written
        noted = None if self.destination is None else self.destination.text
        self.memory.record(key, Remembered(now, "the state", self.endpoint, other.at, noted))
        return replace(
            written,
            status=UNCHANGED,
            reason=f"another target-pelanor run uploaded this very file at {at}, while this "
            "run was going; not sent again",
        )

    def _shrinks(self, month: str, key: str, now: Uploaded, from_api: bool) -> str | None:
        """Why the month must not replace the copy remembered (the state's, then this
        machine's), or None. A record that cannot be read refuses it too, unless the
        month is listed in allow_shrinking_months (then the refusal is only logged).
        ``from_api``: the month was read from OpenAI's Costs API (see :func:`refusal`)."""
        problem = None
        try:
            remembered = [self.memory.recall(key, month, self.destination)]
            if self.records is not None:
                remembered += self.records.recall(self._integration_id, month)
        except UnreadableRecord as unreadable:
            problem = str(unreadable)
        else:
            for before in remembered:
                if before is None:
                    continue
                if problem := refusal(before, now, month, from_api=from_api):
                    break
        if problem and month in self.settings.allow_shrinking_months:
            self.logger.warning(
                "%s is listed in allow_shrinking_months, so it goes although the shrink guard "
                "would refuse it: %s",
                month,
                problem,
            )
            return None
        return problem

    def _write_out(self, ready: ReadyMonth, result: MonthResult) -> MonthResult:
        """Copy the month to output_dir, if set: ``result`` with where it was written, or
        failed."""
        folder = self.settings.output_dir
        if folder is None:
            return result
        destination = folder / ready.filename
        try:
            _publish(ready.path, destination)
        except OSError as error:
            fix = advice(error, "free space in output_dir or fix its permissions")
            return replace(
                result,
                status=FAILED,
                reason=f"could not write {destination}: {reason(error)}; nothing uploaded; {fix}",
            )
        return replace(result, written_to=str(folder))

    def _withhold(
        self, organization: str, month: str, rows: int, total: Decimal, reason: str
    ) -> None:
        self._record(MonthResult(organization, month, rows, total, WITHHELD, reason))

    def _record(self, result: MonthResult) -> None:
        log = self.logger.error if result.failed else self.logger.info
        log("%s %s: %s", result.organization, result.month, result.action, extra=result.fields())
        self.results.append(result)

    def _disk_problem(self, month: str, error: OSError) -> RunStopped:
        fix = advice(error, "free space there, or set work_dir to a folder with room")
        return RunStopped(
            f"cannot write the upload file of {month} in {self.work.path}: {reason(error)}; {fix}"
        )


class TargetWithDelivery(Protocol):
    """What the sinks need of their target: its delivery."""

    delivery: Delivery


def _fields(
    organization: str, month: str, rows: int, total: Decimal, status: str
) -> dict[str, Any]:
    """A month's structured log fields (see :meth:`MonthResult.fields`) for an event on
    the way: its status, which is also its action, and no reason."""
    return MonthResult(organization, month, rows, total, status).fields() | {"action": status}


def _publish(source: Path, destination: Path) -> None:
    """Copy atomically, so a reader of output_dir never sees half a file (nor, when the
    copy fails, any part of it)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    try:
        shutil.copyfile(source, partial)
        partial.replace(destination)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
