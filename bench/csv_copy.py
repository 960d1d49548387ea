"""The floor: copy a CSV with Python's csv module alone, row by row.

    python bench/csv_copy.py SRC DST

Reads every row with ``csv.reader`` and writes it back with ``csv.writer`` (QUOTE_MINIMAL,
``\\n`` terminators): the least any Python tap | target pair that parses each row must do.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def copy(source: Path, destination: Path) -> int:
    with (
        source.open(encoding="utf-8", newline="") as src,
        destination.open("w", encoding="utf-8", newline="") as dst,
    ):
        writer = csv.writer(dst, lineterminator="\n")
        rows = -1  # the header is not a data row
        for row in csv.reader(src):
            writer.writerow(row)
            rows += 1
    return rows


if __name__ == "__main__":
    copy(Path(sys.argv[1]), Path(sys.argv[2]))
