"""``openai-sandbox``: OpenAI's Costs API on 127.0.0.1, answering with the costs of export
files, for trying the tap's API source (``source: api``) by hand.

Run: ``openai-sandbox [--exports PATH ...] [--admin-key KEY] [--port N]``.

Each row of the OpenAI cost exports given (CSV files, or folders: every ``*.csv`` inside;
by default the checkout's ``samples/acme``) becomes one CostsResult of its day, as the
published spec has it: the amount as the export's number text, currency, line item,
project, quantity, API key. Each project becomes one Project with the export's name for
it. The fake of :mod:`local_sandboxes.openai_costs_api` then serves them, paginated as
OpenAI does, to requests bearing the admin key, until SIGINT or SIGTERM.

The exports are read with the standard library, never with the plugins' code: what the
sandbox serves does not depend on the tap that reads it.
"""

from __future__ import annotations

import argparse
import csv
import errno
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from local_sandboxes.openai_costs_api import FakeOpenAI, number, project, result
from local_sandboxes.serving import serve_until_signalled

#: The admin key the sandbox accepts unless ``--admin-key`` says otherwise (not a secret).
DEFAULT_ADMIN_KEY: Final = "sk-admin-sandbox-not-secret"
#: The checkout's sample exports of organization acme (the package is installed editable).
SAMPLES: Final = Path(__file__).resolve().parents[2] / "samples" / "acme"
#: The columns a cost export always has that a CostsResult needs.
NEEDED_COLUMNS: Final = ("start_time", "amount_value", "amount_currency", "line_item", "project_id")
#: A number as JSON writes it (what the fake sends as raw number text).
_JSON_NUMBER: Final = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")


class ExportProblem(ValueError):
    """An export the sandbox cannot serve: the file, the row and what is wrong."""


def export_files(paths: Sequence[Path]) -> list[Path]:
    """The CSV files ``paths`` name: files as given, folders' ``*.csv`` sorted; a file
    named twice is read once."""
    files: dict[Path, Path] = {}
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.csv"))
            if not found:
                raise ExportProblem(f"{path}: no *.csv file in this folder")
        elif path.is_file():
            found = [path]
        else:
            raise ExportProblem(f"{path}: no such file or folder")
        for file in found:
            files.setdefault(file.resolve(), file)
    return list(files.values())


def _optional(text: str | None) -> str | None:
    return text if text else None


def _json_number(text: str, file: Path, row: int, column: str) -> Any:
    if not _JSON_NUMBER.fullmatch(text):
        raise ExportProblem(f"{file}, row {row}: {column} {text!r} is not a number")
    return number(text)


def read_exports(
    files: Sequence[Path],
) -> tuple[dict[int, list[dict[str, Any]]], list[dict[str, Any]]]:
    """The costs per day start (CostsResults) and the projects that ``files`` hold; a day
    in two files is refused (which one would OpenAI have sent?)."""
    costs: dict[int, list[dict[str, Any]]] = {}
    names: dict[str, str] = {}
    day_file: dict[int, Path] = {}
    for file in files:
        try:
            _read_export(file, costs, names, day_file)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ExportProblem(f"{file}: not a UTF-8 CSV file ({exc})") from None
    return costs, [project(project_id, name) for project_id, name in names.items()]


def _read_export(
    file: Path,
    costs: dict[int, list[dict[str, Any]]],
    names: dict[str, str],
    day_file: dict[int, Path],
) -> None:
    """Add one export's results to ``costs``, its project names to ``names``."""
    with file.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in NEEDED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ExportProblem(
                f"{file}: not an OpenAI cost export (no column {', '.join(missing)})"
            )
        for row, fields in enumerate(reader, start=2):
            start_text = fields["start_time"] or ""
            if not start_text.isdigit():
                raise ExportProblem(
                    f"{file}, row {row}: start_time {start_text!r} is not a Unix time"
                )
            day = int(start_text)
            if day_file.setdefault(day, file) != file:
                raise ExportProblem(
                    f"{file}, row {row}: day {day} is also in {day_file[day]}; give each day once"
                )
            costs.setdefault(day, [])
            amount = fields["amount_value"]
            if not amount:  # an idle day: the day's bucket has no results
                continue
            project_id = _optional(fields["project_id"])
            if project_id is not None:
                names.setdefault(project_id, fields.get("project_name") or project_id)
            quantity = _optional(fields.get("quantity"))
            costs[day].append(
                result(
                    _json_number(amount, file, row, "amount_value"),
                    _optional(fields["line_item"]),
                    project_id,
                    _optional(fields["amount_currency"]),
                    quantity=None
                    if quantity is None
                    else _json_number(quantity, file, row, "quantity"),
                    quantity_unit=_optional(fields.get("quantity_unit")),
                    api_key_id=_optional(fields.get("api_key_id")),
                )
            )


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="openai-sandbox",
        description="OpenAI's Costs API on 127.0.0.1, answering with the costs of exports.",
    )
    parser.add_argument(
        "--exports",
        nargs="+",
        type=Path,
        help=f"cost export CSV files or folders of them (default: {SAMPLES})",
    )
    parser.add_argument(
        "--admin-key",
        default=DEFAULT_ADMIN_KEY,
        help=f"the bearer key requests must carry (default: {DEFAULT_ADMIN_KEY})",
    )
    parser.add_argument("--port", default=0, type=int, help="port (0 picks a free one)")
    args = parser.parse_args(argv)

    try:
        costs, projects = read_exports(export_files(args.exports or [SAMPLES]))
        fake = FakeOpenAI(costs, projects, args.admin_key, port=args.port).start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"port {args.port} on 127.0.0.1 is already in use; choose another with "
            message += "--port (--port 0 picks a free one)"
        else:
            message = str(exc)
        print(f"openai sandbox: {message}", file=sys.stderr)
        return 2
    except (ExportProblem, UnicodeDecodeError, csv.Error) as exc:
        print(f"openai sandbox: {exc}", file=sys.stderr)
        return 2

    print(f"OpenAI sandbox listening on {fake.url}", flush=True)
    rows = sum(len(results) for results in costs.values())
    print(
        f"openai sandbox: {len(costs)} day(s), {rows} cost result(s), {len(projects)} project(s)",
        file=sys.stderr,
        flush=True,
    )
    serve_until_signalled(fake.stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
