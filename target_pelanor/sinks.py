"""One sink per tap stream; each hands its records to the run's delivery.

Before a sink's first record, the run checks that the tap announced all three streams: a
deselected stream would otherwise look like a tap that stopped halfway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, cast

import msgspec
from singer_sdk.sinks import RecordSink, Sink

from openai_costs import contract
from openai_costs.batches import BatchFile, BatchFileError, BatchFileRefused
from openai_costs.contract import CostRow, MonthOpened, Seal
from openai_costs.os_errors import advice, reason
from openai_costs.record_route import Route, choose_route, map_changes
from target_pelanor.delivery import TargetWithDelivery
from target_pelanor.stopping import RunStopped
from target_pelanor.typed_rows import cost_row_reader, record_type_of
from target_pelanor.validation import CompiledValidator

#: Why the quick route is taken on the target.
QUICK = "no map or setting changes a record"

if TYPE_CHECKING:
    from collections.abc import Sequence

    from singer_sdk import Target
    from singer_sdk.helpers._batch import BaseBatchFileEncoding
    from singer_sdk.sinks.core import BaseJSONSchemaValidator


class _PelanorSink(RecordSink):
    """Records are handled as they arrive, so drains never split a month."""

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict[str, Any],
        key_properties: Sequence[str] | None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.delivery = cast("TargetWithDelivery", target).delivery
        self.streams_checked = False

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        return CompiledValidator(self.schema, self._invalid) if self.validate_schema else None

    def _parse_timestamps_in_record(
        self, record: dict[str, Any], schema: dict[str, Any], treatment: Any
    ) -> None:
        """Skip the SDK's per-field date parsing: the target uses the exact text (``day``
        as ``YYYY-MM-DD``, the file's ISO times inside ``csv_row``), and on every record
        the scan costs more than validation itself. Named as the SDK passes them: no
        keyword dictionary per record."""

    def _check_streams(self) -> None:
        """Once, before the first record: every stream the target needs was announced."""
        self.streams_checked = True
        if missing := self.delivery.missing_streams():
            named = " or ".join(missing)
            self._stop(
                f"the tap sends no {named} records: deselected (meltano select, or the "
                "catalog); target-pelanor needs all three streams, "
                f"{', '.join(contract.STREAMS)}: select them all"
            )

    def _invalid(self, problem: str) -> NoReturn:
        self._stop(
            f"a {self.stream_name} record does not match the tap's schema ({problem}); pair "
            "target-pelanor with tap-openai-costs, without flattening or stream maps that "
            "change its records"
        )

    def _convert(self, record: dict[str, Any], record_type: type[Any]) -> Any:
        """The record as its contract type; a malformed one (reachable with
        validate_records off) is one clear error."""
        try:
            return msgspec.convert(record, record_type)
        except msgspec.ValidationError as error:
            self._stop(
                f"a {self.stream_name} record: {error}; pair target-pelanor with tap-openai-costs"
            )

    def _stop(self, message: str) -> NoReturn:
        """Stop the run: the target reports what it has done and exits with status 1."""
        raise RunStopped(message)


class MonthLayoutSink(_PelanorSink):
    """``cost_month_layouts``: a month starts; its upload file is opened in its layout."""

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        if not self.streams_checked:
            self._check_streams()
        self.delivery.open_month(self._convert(record, MonthOpened))


class CostRowsSink(_PelanorSink):
    """``costs``: each row is checked and written to its month's upload file.

    On the quick route (:meth:`record_route`, decided and logged once per sink) the
    validator converts each record into its row while checking it
    (:mod:`target_pelanor.validation`), and :meth:`process_record` keeps that row: one
    conversion per row. Otherwise the record is validated, then converted."""

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict[str, Any],
        key_properties: Sequence[str] | None,
    ) -> None:
        self.compiled: CompiledValidator | None = None
        super().__init__(target, stream_name, schema, key_properties)
        record_type = record_type_of(self.schema, self.key_properties)
        read = None if record_type is None else cost_row_reader(record_type)
        self.route = self.record_route(target, record_type is not None, read is not None)
        self.logger.info("%s", self.route.line)
        if self.route.quick and self.compiled is not None:
            self.compiled.read = read

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        self.compiled = cast("CompiledValidator | None", super().get_validator())
        return self.compiled

    def record_route(self, target: Target, typed: bool, row_typed: bool) -> Route:
        """Whether the validator converts records into rows (the quick route), and why:
        ``typed`` says the schema has a record type (typed_rows.record_type_of),
        ``row_typed`` that it types a cost row's fields as the row needs them."""
        maps = target.mapper.stream_maps.get(self.stream_name) or []
        return choose_route(
            self.stream_name,
            [
                *map_changes(self.stream_name, maps),
                (self.compiled is None, "validate_records is off"),
                (
                    self.include_sdc_metadata_properties,
                    "add_record_metadata is on",
                ),
                (
                    type(self).preprocess_record is not Sink.preprocess_record,
                    "the sink changes records before it keeps them",
                ),
                (not typed, "the schema says more than types, required fields and patterns"),
                (typed and not row_typed, "the schema does not type a cost row's fields as text"),
            ],
            quick=QUICK,
        )

    def _remove_sdc_metadata_from_record(self, record: dict[str, Any]) -> None:
        """The SDK's, except on the quick route: there a row takes only the schema's
        fields, none of which is ``_sdc_`` metadata (typed_rows), and a record the
        validator refuses is refused whatever else it holds (the schema allows other
        properties), so the seven lookups per record change nothing."""
        if not self.route.quick:
            super()._remove_sdc_metadata_from_record(record)

    def _singer_validate_message(self, record: dict[str, Any]) -> None:
        """The SDK's check of the key properties, except for a record the validator
        converted: its type requires them (typed_rows.record_type_of)."""
        compiled = self.compiled
        if compiled is None or compiled.converted(record) is None:
            super()._singer_validate_message(record)

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        if not self.streams_checked:
            self._check_streams()
        compiled = self.compiled
        row = None if compiled is None else compiled.converted(record)
        self.delivery.add_row(row if row is not None else self._convert(record, CostRow))

    def process_batch_files(self, encoding: BaseBatchFileEncoding, files: Sequence[str]) -> None:
        """BATCH messages (the tap's fast path): stream each file's rows into the months.

        The seal that follows still checks count, total and digest of every row."""
        if not self.streams_checked:
            self._check_streams()
        for url in files:
            rows = 0
            try:
                batch = BatchFile(encoding, url, self.stream_name)  # the tap's, or refused
                self.delivery.batches.reading(url)
                for row in batch.records(CostRow):
                    self.delivery.add_row(row)
                    rows += 1
            except FileNotFoundError:
                self._stop(
                    f"batch file {url} is gone (loaded and removed by an earlier run?); "
                    "run the tap again"
                )
            except BatchFileRefused as refused:
                self._stop(str(refused))
            except BatchFileError as error:
                self._stop(f"{error}; pair target-pelanor with tap-openai-costs")
            except OSError as error:
                fix = advice(
                    error,
                    "target-pelanor reads each batch file and then deletes it: check the "
                    "batch folder's permissions and free space",
                )
                self._stop(f"batch file {url}: {reason(error)}; {fix}")
            self.record_counter_metric.increment(rows)


class MonthSealSink(_PelanorSink):
    """``cost_months``: a seal means the month is finished: check it, then deliver it."""

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        if not self.streams_checked:
            self._check_streams()
        self.delivery.deliver(self._convert(record, Seal))


class IgnoredSink(RecordSink):
    """A stream whose records target-pelanor takes and drops: Meltano's ``config test``
    stream (the target then checks what it can without uploading), and ``focus_costs``
    (the same costs as FOCUS rows; Pelanor takes the export's own rows)."""

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """No record of it is kept, so none is validated."""
        return None

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        """Nothing to write."""
