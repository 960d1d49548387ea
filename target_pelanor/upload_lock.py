"""One upload at a time per Pelanor integration and month, on this machine.

Meltano's own lock covers one pipeline; two pipelines of the same organization started by
hand would upload the same month side by side, and whichever lands last wins in Pelanor.
So an upload holds an exclusive ``flock`` on ``<locks>/<integration>_<month>.lock`` from
its shrink check to Pelanor's answer, and reads and writes this machine's record of the
month's last upload (:mod:`target_pelanor.upload_records`) only while it holds it: the
next holder checks its month against what the first uploaded, so an older file that would
land last is refused, even from a pipeline whose state has never seen the newer one.

The lock folder is ``<work root>/locks`` (see ``work_dir``): pipelines that should
exclude each other must share it, as they do with the default (one per user). A lock that
cannot be taken at all (a file in the way of the folder, no permission) is
:class:`LockUnavailable`, which fails the month without uploading it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from openai_costs.os_errors import advice

__all__ = ["LockTimeout", "LockUnavailable", "UploadLocks"]

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.2


class LockTimeout(Exception):
    """Another process kept the month's upload lock for longer than we may wait."""


class LockUnavailable(Exception):
    """The lock folder or file cannot be created or locked; ``str()`` says what to do."""


class UploadLocks:
    """The upload locks under one folder."""

    def __init__(self, folder: Path, wait_seconds: float) -> None:
        self.folder = folder
        self.wait_seconds = wait_seconds

    @contextlib.contextmanager
    def hold(self, integration_id: str, month: str) -> Iterator[None]:
        """Hold the lock of (integration, month) for the ``with`` block; wait for another
        process's upload to end, at most ``wait_seconds`` (then :class:`LockTimeout`).
        Raises :class:`LockUnavailable` when the lock cannot be taken at all."""
        # Quoted: no identifier makes a path outside the lock folder.
        name = f"{quote(integration_id, safe='')}_{quote(month, safe='')}"
        path = self.folder / f"{name}.lock"
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as error:
            raise self._unavailable(error) from None
        try:
            try:
                self._acquire(fd, path, integration_id, month)
            except OSError as error:  # not the wait (LockTimeout): locking itself failed
                raise self._unavailable(error) from None
            yield
        finally:
            os.close(fd)  # releases the lock

    def _unavailable(self, error: OSError) -> LockUnavailable:
        if isinstance(error, FileExistsError | NotADirectoryError):
            reason = "a file is in the way (it must be a folder)"
        else:
            reason = error.strerror or type(error).__name__
        fix = advice(
            error,
            "make it a folder this user can write to (or set work_dir to one), then run again",
        )
        return LockUnavailable(
            f"cannot take the upload lock in {self.folder}: {reason}; nothing uploaded: {fix}"
        )

    def _acquire(self, fd: int, path: Path, integration_id: str, month: str) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        logger.warning(
            "Another target-pelanor process is uploading %s of integration %s (lock %s); "
            "waiting up to %gs for it to finish",
            month,
            integration_id,
            path,
            self.wait_seconds,
        )
        deadline = time.monotonic() + self.wait_seconds
        while True:
            time.sleep(_POLL_SECONDS)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another target-pelanor process kept uploading {month} of integration "
                        f"{integration_id} for more than {self.wait_seconds:g}s (lock {path}); "
                        "run again once it has finished"
                    ) from None
