"""Record validation compiled once per schema (fastjsonschema), as the SDK suggests; for
``costs``, checking a record and converting it into its row in one step.

The SDK's default ``jsonschema`` validator is the main cost of a plain SDK target. A record
that fails is handed to ``reject``, which stops the run with one line: the SDK's own path
logs a traceback first.

Given ``read`` (a conversion that refuses what the schema refuses: target_pelanor.typed_rows),
:meth:`CompiledValidator.validate` converts the record with it instead, and keeps the result
for the sink's ``process_record`` (:meth:`CompiledValidator.converted`): one conversion per
row, in C. A record ``read`` refuses is validated as before, so a bad record gets the same
message whichever way it went, and the sink converts a good one itself.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import InvalidOperation
from typing import Any, NoReturn

import fastjsonschema
import msgspec
from singer_sdk.exceptions import InvalidJSONSchema
from singer_sdk.sinks.core import BaseJSONSchemaValidator


class CompiledValidator(BaseJSONSchemaValidator):
    def __init__(
        self,
        schema: dict[str, Any],
        reject: Callable[[str], NoReturn],
        read: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        super().__init__(schema)
        self.reject = reject
        #: Checks and converts a record in one step (None: validation only).
        self.read = read
        #: The last record validated and what ``read`` made of it.
        self._last: tuple[dict[str, Any], Any] | None = None
        try:
            self.validator = fastjsonschema.compile(schema, use_formats=False)
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            raise InvalidJSONSchema("Schema Validation Error") from exc

    def validate(self, record: dict[str, Any]) -> None:
        read = self.read
        if read is not None:
            try:
                self._last = (record, read(record))
            except (msgspec.ValidationError, InvalidOperation):
                self._last = None  # validated below: refused with the validator's message
            else:
                return
        try:
            self.validator(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            self.reject(exc.message)

    def converted(self, record: dict[str, Any]) -> Any | None:
        """What ``read`` made of ``record`` when it was validated (the same object), or
        None."""
        last = self._last
        if last is not None and last[0] is record:
            return last[1]
        return None
