"""How a run of the target ends early: a problem that stops it, or a signal.

Both unwind to the target (``TargetPelanor.invoke``), which then reports every month it
knows (the ones not done say why), confirms only the state Pelanor's answers cover, removes
its working files and exits with status 1. Neither is a user error in the input
(those are one line and the end, see :mod:`openai_costs.user_errors`).
"""

from __future__ import annotations

import signal

from singer_sdk.exceptions import RecordsWithoutSchemaException


class RunStopped(Exception):
    """A problem no month can get past (a full disk, unreadable input); ``str()`` is the
    one line for the user."""


class BeforeSchema(RunStopped, RecordsWithoutSchemaException):
    """A RECORD or BATCH message before its stream's SCHEMA message: the run stops as on
    any RunStopped (one line), and is still the SDK's own exception for it, which its
    target test suite expects."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived. A BaseException, so that no ``except Exception`` on the
    way (an upload's retries, a library) takes it for an ordinary failure."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name
