"""The files both plugins read: regular files only, opened without blocking, read within a
bound on memory.

A named pipe (FIFO) opened for reading blocks until something writes to it, so a state
file, an upload record or a batch file that is one would hang a run until it is killed; a
device (``/dev/zero``) never ends; a compressed file can inflate to gigabytes in one line.
So every such file is opened here: ``O_NONBLOCK`` (opening a FIFO returns at once), then
``fstat`` on what was opened, refused unless it is a regular file; then read whole only up
to a size, or line by line only up to a line length. Each refusal is :class:`UnsafeFile`,
whose message is a phrase the caller puts after the file's name (``is a named pipe
(FIFO), not a regular file``), with what to do.

The target's input (stdin, or ``--input``) is no file opened here, a pipe being what it
usually is, but its lines are read within a bound too (:func:`bounded_lines`). The
plugins' ``--config`` and ``--catalog`` files are the SDK's to read.
"""

from __future__ import annotations

import functools
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "LineTooLong",
    "UnsafeFile",
    "bounded_lines",
    "file_kind",
    "open_regular",
    "read_regular",
    "size_text",
]


class UnsafeFile(OSError):
    """A file that is not read: not a regular file, or larger than the bound. The message
    (also its ``strerror``, for handlers of any OSError) follows the file's name:
    ``<file> <message>``."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)

    def __str__(self) -> str:
        return str(self.strerror)


class LineTooLong(UnsafeFile):
    """A line longer than the bound (a corrupt or hostile file); ``number`` is its line."""

    def __init__(self, number: int, limit: int) -> None:
        self.number = number
        super().__init__(f"line {number} is longer than {size_text(limit)}")


def size_text(size: int) -> str:
    """``64 MiB``, ``1 KiB``, ``10 bytes``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"


def file_kind(mode: int) -> str | None:
    """What a file of this ``st_mode`` is, as a user would say it; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


def open_regular(path: str | Path, *, follow_links: bool = True, buffering: int = -1) -> IO[bytes]:
    """``path`` opened for reading in binary (``buffering`` as for ``open``), if it is a
    regular file (with ``follow_links`` false, not a symbolic link either). Raises
    :class:`UnsafeFile` if it is anything else, OSError (FileNotFoundError, …) as ``open``
    does."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if not follow_links:
        flags |= os.O_NOFOLLOW
        info = os.lstat(path)
        if kind := file_kind(info.st_mode):
            raise UnsafeFile(f"is {kind}, not a regular file")
    fd = os.open(path, flags)
    try:
        opened = os.fstat(fd)
        if kind := file_kind(opened.st_mode):
            raise UnsafeFile(f"is {kind}, not a regular file")
        if not follow_links and (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            raise UnsafeFile("was replaced while it was being opened")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, limit: int, *, follow_links: bool = True) -> bytes:
    """The bytes of the regular file at ``path`` (:func:`open_regular`), refused
    (:class:`UnsafeFile`) beyond ``limit`` bytes: never more than ``limit + 1`` are read."""
    with open_regular(path, follow_links=follow_links) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFile(f"is larger than {size_text(limit)}")
    return data


def bounded_lines(stream: IO[Any] | io.IOBase, limit: int) -> Iterator[Any]:
    """The lines of ``stream`` (text or binary), each read up to ``limit + 1`` characters
    or bytes, so that no line is ever held past the bound.

    A longer line arrives cut, more than ``limit`` long (its rest as the next lines): the
    caller refuses the first such line (:class:`LineTooLong`). The loop is the stream's
    own ``readline`` (no Python code per line): a caller whose lines must parse can look
    at the length of a line only when it does not parse, as a cut line never does."""
    end: str | bytes = "" if isinstance(stream, io.TextIOBase) else b""
    return iter(functools.partial(stream.readline, limit + 1), end)
