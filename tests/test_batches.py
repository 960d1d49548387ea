"""BATCH files in process: what the tap writes (names, lines, exact decimals, whole files
only) and what the target reads back from them."""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig

from openai_costs.batches import (
    BatchFileError,
    BatchWriteError,
    check_encoding,
    process_alive,
    read_batch,
    remove_stale_partials,
    write_batches,
)
from openai_costs.contract import CostRow

OWNER = "tap-openai-costs-4242"
#: Above Linux's largest process id (2**22): never a running process.
NO_SUCH_PROCESS = 2**22 + 1
ROW = (
    "1759276800,1759363200,2025-10-01T00:00:00+00:00,2025-10-02T00:00:00+00:00,"
    '0.8958740000000000,usd,"gpt-4o-2024-08-06, input",proj_abc,org-acme,Acmé App,Acme'
)


def batch_config(
    root: Path, compression: str = "none", batch_size: int = 2, prefix: str | None = None
) -> BatchConfig:
    """As the tap takes it from its ``batch_config`` setting."""
    return BatchConfig.from_dict(
        {
            "encoding": {"format": "jsonl", "compression": compression},
            "storage": {"root": root.as_uri(), "prefix": prefix},
            "batch_size": batch_size,
        }
    )


def record(day: int, amount: str | None = "0.8958740000000000") -> dict[str, Any]:
    return {
        "organization": "org-acme",
        "month": "2025-10",
        "day": f"2025-10-{day:02d}",
        "csv_row": ROW,
        "amount_value": None if amount is None else Decimal(amount),
        "row": day,
    }


def line(day: int, amount: str = "0.8958740000000000") -> bytes:
    csv_row = ROW.replace('"', '\\"')
    return (
        f'{{"organization":"org-acme","month":"2025-10","day":"2025-10-{day:02d}",'
        f'"csv_row":"{csv_row}","amount_value":{amount},"row":{day}}}\n'
    ).encode()


def local(url: str) -> Path:
    assert url.startswith("file://")
    return Path(url.removeprefix("file://"))


# -- writing --------------------------------------------------------------------------------


def test_records_go_into_files_of_at_most_batch_size_lines_one_manifest_each(tmp_path):
    config = batch_config(tmp_path, batch_size=2, prefix="run7-")
    manifests = list(write_batches(map(record, [1, 2, 3]), config, "costs", OWNER))
    assert [len(files) for files in manifests] == [1, 1]
    names = [local(url).name for [url] in manifests]
    run = re.fullmatch(r"run7-costs-([0-9a-f]{32})-1\.jsonl", names[0])
    assert run is not None
    assert names[1] == f"run7-costs-{run[1]}-2.jsonl"
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert [local(url).read_bytes() for [url] in manifests] == [line(1) + line(2), line(3)]


def test_amounts_are_written_as_exact_json_numbers_and_none_as_null(tmp_path):
    records = [record(1, "0.10000000000000000555"), record(2, "-1E-7"), record(3, None)]
    [[url]] = write_batches(records, batch_config(tmp_path, batch_size=3), "costs", OWNER)
    lines = local(url).read_bytes().splitlines()
    assert [re.search(rb'"amount_value":([^,]*)', text)[1] for text in lines] == [
        b"0.10000000000000000555",
        b"-1E-7",
        b"null",
    ]


def test_gzip_files_hold_the_same_lines(tmp_path):
    config = batch_config(tmp_path, compression="gzip", batch_size=5)
    [[url]] = write_batches(map(record, [1, 2]), config, "costs", OWNER)
    assert url.endswith(".jsonl.gz")
    assert gzip.decompress(local(url).read_bytes()) == line(1) + line(2)


def test_no_records_write_no_file(tmp_path):
    assert list(write_batches(iter([]), batch_config(tmp_path), "costs", OWNER)) == []
    assert list(tmp_path.iterdir()) == []


def test_a_file_gets_its_name_only_once_it_is_whole(tmp_path):
    seen: list[list[str]] = []

    def records() -> Iterator[dict[str, Any]]:
        yield record(1)
        seen.append(sorted(p.name for p in tmp_path.iterdir()))  # while the file is written
        yield record(2)

    [[url]] = write_batches(records(), batch_config(tmp_path, batch_size=5), "costs", OWNER)
    (while_written,) = seen
    assert [name for name in while_written if not name.endswith(f".{OWNER}.partial")] == []
    assert [p.name for p in tmp_path.iterdir()] == [local(url).name]


def test_an_error_while_records_are_read_removes_the_partial_file_and_passes_unchanged(
    tmp_path,
):
    def records() -> Iterator[dict[str, Any]]:
        yield from map(record, [1, 2, 3])
        raise ValueError("row 4 is bad")

    written: list[list[str]] = []
    with pytest.raises(ValueError, match=r"^row 4 is bad$"):
        written.extend(write_batches(records(), batch_config(tmp_path), "costs", OWNER))
    assert [p.name for p in tmp_path.iterdir()] == [local(written[0][0]).name]


def test_storage_that_cannot_be_written_is_a_batch_write_error_with_the_systems_reason(
    tmp_path,
):
    (tmp_path / "a-file").write_text("not a folder")
    config = batch_config(tmp_path / "a-file" / "batches")
    with pytest.raises(BatchWriteError) as failed:
        list(write_batches(map(record, [1]), config, "costs", OWNER))
    assert str(failed.value) == "Not a directory"


@pytest.mark.parametrize(
    ("encoding", "problem"),
    [
        ({"format": "parquet"}, "parquet / None"),
        ({"format": "jsonl", "compression": "bz2"}, "jsonl / bz2"),
    ],
)
def test_only_jsonl_plain_or_gzip_is_taken(encoding, problem):
    with pytest.raises(ValueError, match=r".") as refused:
        check_encoding(BaseBatchFileEncoding.from_dict(encoding))
    assert str(refused.value) == (
        f"batch_config.encoding must be format jsonl with compression gzip or none, not {problem}"
    )


# -- reading --------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_the_target_reads_back_exact_decimals_and_the_file_is_then_deleted(tmp_path, compression):
    config = batch_config(tmp_path, compression=compression, batch_size=3)
    records = [record(1), record(2, "-1E-7"), record(3, None)]
    [[url]] = write_batches(records, config, "costs", OWNER)
    rows = read_batch(config.encoding, url, CostRow)
    assert next(rows) == CostRow("org-acme", "2025-10", "2025-10-01", ROW, Decimal("0.895874"))
    assert local(url).exists()  # read one record at a time
    assert list(rows) == [
        CostRow("org-acme", "2025-10", "2025-10-02", ROW, Decimal("-1E-7")),
        CostRow("org-acme", "2025-10", "2025-10-03", ROW, None),
    ]
    assert not local(url).exists()  # deleted once read to the end


def test_the_decimal_read_back_keeps_its_digits(tmp_path):
    config = batch_config(tmp_path)
    [[url]] = write_batches([record(1)], config, "costs", OWNER)
    [row] = read_batch(config.encoding, url, CostRow)
    assert str(row.amount_value) == "0.8958740000000000"


def test_a_line_that_is_not_the_record_expected_names_the_file_and_line(tmp_path):
    path = tmp_path / "costs-1.jsonl"
    path.write_bytes(line(1) + line(2).replace(b'"month":"2025-10"', b'"month":202510'))
    url = path.as_uri()
    rows = read_batch(batch_config(tmp_path).encoding, url, CostRow)
    with pytest.raises(BatchFileError) as bad:
        list(rows)
    assert str(bad.value) == (f"batch file {url}, line 2: Expected `str`, got `int` - at `$.month`")


# -- partial files left behind --------------------------------------------------------------


def test_partial_files_of_processes_that_are_gone_are_removed_and_nothing_else(tmp_path):
    names = [
        f"costs-a-1.jsonl.tap-openai-costs-{NO_SUCH_PROCESS}.partial",  # a killed tap's
        f"costs-b-1.jsonl.tap-openai-costs-{os.getpid()}.partial",  # this process's own
        f"costs-c-1.jsonl.tap-openai-costs-{os.getppid()}.partial",  # a tap still running
        f"costs-d-1.jsonl.other-plugin-{NO_SUCH_PROCESS}.partial",  # not this plugin's
        "costs-e-1.jsonl",  # a whole file: the target's to read
    ]
    for name in names:
        (tmp_path / name).write_text("{}\n")
    removed = remove_stale_partials(batch_config(tmp_path), "tap-openai-costs")
    assert sorted(removed) == names[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


def test_storage_that_is_not_a_local_folder_is_left_alone(tmp_path):
    remote = BatchConfig.from_dict(
        {"encoding": {"format": "jsonl"}, "storage": {"root": "memory://batches"}}
    )
    assert remove_stale_partials(remote, "tap-openai-costs") == []
    assert remove_stale_partials(batch_config(tmp_path / "none-yet"), "tap-openai-costs") == []


def test_a_process_is_alive_while_it_runs():
    assert process_alive(os.getpid()) is True
    assert process_alive(NO_SUCH_PROCESS) is False
