"""Record validation compiled once per schema (fastjsonschema), as the SDK suggests.

The SDK's default ``jsonschema`` validator is the main cost of a plain SDK target. A record
that fails is handed to ``reject``, which stops the run with one line: the SDK's own path
logs a traceback first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import fastjsonschema
from singer_sdk.exceptions import InvalidJSONSchema
from singer_sdk.sinks.core import BaseJSONSchemaValidator


class CompiledValidator(BaseJSONSchemaValidator):
    def __init__(self, schema: dict[str, Any], reject: Callable[[str], NoReturn]) -> None:
        super().__init__(schema)
        self.reject = reject
        try:
            self.validator = fastjsonschema.compile(schema, use_formats=False)
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            raise InvalidJSONSchema("Schema Validation Error") from exc

    def validate(self, record: dict[str, Any]) -> None:
        try:
            self.validator(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            self.reject(exc.message)
