"""Record validation compiled once per schema (fastjsonschema), as the SDK suggests.

The SDK's default ``jsonschema`` validator is the main cost of a plain SDK target.
"""

from __future__ import annotations

from typing import Any

import fastjsonschema
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.sinks.core import BaseJSONSchemaValidator


class CompiledValidator(BaseJSONSchemaValidator):
    def __init__(self, schema: dict[str, Any]) -> None:
        super().__init__(schema)
        try:
            self.validator = fastjsonschema.compile(schema, use_formats=False)
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            raise InvalidJSONSchema("Schema Validation Error") from exc

    def validate(self, record: dict[str, Any]) -> None:
        try:
            self.validator(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise InvalidRecord(exc.message, record) from exc
