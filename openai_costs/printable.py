"""Names from outside (file names, line items, settings) made safe to show in one log line.

A file named ``a\\n2026-01-01 | INFO | uploaded 2025-10`` would print a forged log line,
and one holding ``ESC[2J`` would clear the operator's terminal. :func:`printable` writes
every control character as Python's ``repr`` does (``\\n``, ``\\x1b``, ``\\u2028``) and
leaves everything else as it is, so an ordinary name reads unchanged.

It is applied in one place for each way text reaches the user: the plugins' log records
(:func:`escape_log_arguments`: every text argument of every log line), the one-line errors
(:mod:`openai_costs.user_errors`) and an export's problems
(:class:`openai_costs.export.ExportError`). A log line built beforehand is logged as an
argument (``logger.warning("%s", line)``) so that it is escaped too.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

__all__ = ["escape_log_arguments", "printable"]

#: C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the bidi
#: controls that can make a line read in another order than it is written.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    return repr(match[0])[1:-1]


def printable(text: object) -> str:
    """``str(text)`` with its control characters written as ``repr`` writes them."""
    shown = str(text)
    return _CONTROL.sub(_escaped, shown) if _CONTROL.search(shown) else shown


def _escape(argument: Any) -> Any:
    if isinstance(argument, str | os.PathLike):
        text = os.fspath(argument)
        if isinstance(text, str) and _CONTROL.search(text):
            return printable(text)
    return argument


class _EscapingRecord(logging.LogRecord):
    """A log record whose text arguments are shown printable (the format is the code's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        arguments = self.args
        if isinstance(arguments, tuple):
            self.args = tuple(_escape(argument) for argument in arguments)
        elif isinstance(arguments, dict):
            self.args = {key: _escape(value) for key, value in arguments.items()}


def escape_log_arguments() -> None:
    """Make every log record of this process show its text arguments printable; calling
    it again changes nothing, and a record factory someone else installed is left alone."""
    if logging.getLogRecordFactory() is logging.LogRecord:
        logging.setLogRecordFactory(_EscapingRecord)
