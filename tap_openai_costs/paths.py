"""The ``paths`` setting expanded to the export files a run reads.

Each entry is a file, a folder (its ``*.csv`` files, not those of its subfolders) or a
glob pattern, ``~`` expanded. Every entry must lead to readable files: a missing path, a
folder that cannot be listed, a broken symbolic link or a link loop is an error naming the
entry and what to do (all of them reported together: :class:`ExportErrors`), never
skipped in silence.
"""

from __future__ import annotations

import errno
import glob
import itertools
import os
import stat
from pathlib import Path

from openai_costs.export import ExportError
from openai_costs.os_errors import advice
from openai_costs.safe_files import file_kind

__all__ = ["ExportErrors", "cannot_read", "expand_paths"]


def expand_paths(patterns: list[str]) -> list[Path]:
    """Files, directories (their ``*.csv``) and glob patterns, each required to match.

    Every entry and every file found must be readable: a missing path, a broken symbolic
    link or a link loop is an error (one each, all reported), never skipped in silence.
    """
    found: dict[Path, None] = {}
    problems: list[ExportError] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        folder = path.is_dir()
        if folder:
            try:
                os.scandir(path).close()  # Path.glob skips a folder it cannot list
            except OSError as exc:
                problems.append(ExportError(pattern, cannot_read(exc)))
                continue
            matches = sorted(path.glob("*.csv"))
        elif os.path.lexists(path):
            matches = [path]  # a file, or a link that leads nowhere (reported below)
        else:
            # Path.glob cannot take an absolute pattern; glob.glob can.
            matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]  # noqa: PTH207
        if not matches:
            problems.append(_nothing_in(pattern, path, folder))
        files = 0
        for match in matches:
            try:
                regular = stat.S_ISREG(match.stat().st_mode)  # follows links
            except OSError as exc:
                problems.append(ExportError(str(match), _unreachable(match, exc)))
                continue
            if regular:
                found[match] = None
                files += 1
            elif match == path and (kind := _not_a_file(match)):  # named, not found by a glob
                problems.append(ExportError(pattern, kind))
        folders = [match for match in matches if match.is_dir()]
        if matches and files == 0 and len(folders) == len(matches):
            problems.append(_only_folders(pattern, folders))
    if problems:
        raise ExportErrors(problems)
    return list(found)


def _not_a_file(path: Path) -> str | None:
    """Why a path named in ``paths`` that is neither a file nor a folder is not read (a
    FIFO would hang the run); None for a folder."""
    kind = file_kind(path.stat().st_mode)
    if kind in (None, "a folder"):
        return None
    return f"is {kind}, not a regular file; list export files, or the folders that hold them"


def _nothing_in(pattern: str, path: Path, folder: bool) -> ExportError:
    """A paths entry that matches nothing; a folder whose exports sit in its subfolders
    says so (a folder is read without them)."""
    nested = sorted(itertools.islice(path.rglob("*.csv"), 4)) if folder else []
    if nested:
        shown = ", ".join(str(n.relative_to(path)) for n in nested[:3])
        more = ", …" if len(nested) > 3 else ""
        return ExportError(
            pattern,
            f"holds no *.csv file of its own, only in subfolders ({shown}{more}); a folder is "
            "read without its subfolders: list those folders, or a glob such as "
            f"{str(path / '**' / '*.csv')!r}",
        )
    return ExportError(
        pattern, "matches no export file; check the paths setting (files, folders, globs)"
    )


def _only_folders(pattern: str, folders: list[Path]) -> ExportError:
    """A paths entry whose only ``*.csv`` matches are folders (``exports.csv/``)."""
    named = ", ".join(str(f) for f in folders[:3]) + (", …" if len(folders) > 3 else "")
    return ExportError(
        pattern,
        f"matches only folders, no export file ({named}); list the export files, or the "
        "folders that hold them",
    )


def _unreachable(path: Path, exc: OSError) -> str:
    """Why a path that exists by name cannot be opened, and what to do."""
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop; fix the link or take it out of paths"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return (
            f"is a broken symbolic link (to {str(path.readlink())!r}, which does not exist); "
            "fix the link or take it out of paths"
        )
    return cannot_read(exc)


def cannot_read(exc: OSError) -> str:
    fix = advice(exc, "let the tap's user read it, or take it out of paths")
    return f"cannot be read ({exc.strerror}); {fix}"


class ExportErrors(Exception):
    """Every problem found in the inputs, reported together before any month is sealed."""

    def __init__(self, problems: list[ExportError]) -> None:
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))
