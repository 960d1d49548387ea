"""What to tell a user about an error of the operating system: its reason, and advice that
fits it. A full disk and too many open files both stop a write, but the fix differs."""

from __future__ import annotations

import errno

__all__ = ["OPEN_FILES_ADVICE", "advice", "reason"]

#: For EMFILE (this process) and ENFILE (the whole system).
OPEN_FILES_ADVICE = (
    "too many files are open: raise the open-files limit (ulimit -n) of the user running "
    "the pipeline, or run fewer pipelines at once"
)
_OPEN_FILES = frozenset({errno.EMFILE, errno.ENFILE})


def reason(error: OSError) -> str:
    """The system's words (``No space left on device``), without the path."""
    return error.strerror or str(error) or type(error).__name__


def advice(error: OSError | int | None, otherwise: str) -> str:
    """What to do about ``error`` (an OSError or its errno): the open-files advice for too
    many open files, ``otherwise`` (free space, permissions) for anything else."""
    number = error.errno if isinstance(error, OSError) else error
    return OPEN_FILES_ADVICE if number in _OPEN_FILES else otherwise
