"""BATCH files in process: what the tap writes (names, lines, exact decimals, whole files
only, private modes, the run's lock), what the target reads back from them (then deletes),
and which leftovers a later tap removes."""

from __future__ import annotations

import errno
import fcntl
import gzip
import io
import os
import re
import stat
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
from upath import UPath

from openai_costs import batches
from openai_costs.batches import (
    STALE_SECONDS,
    BatchFileError,
    BatchFileRefused,
    BatchReaders,
    BatchRun,
    BatchWriteError,
    check_encoding,
    process_alive,
    read_batch,
    remove_stale_batches,
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


def written(records: Any, config: BatchConfig, stream: str = "costs") -> list[list[str]]:
    """The manifests of one whole tap run writing ``records``."""
    with BatchRun(config, stream) as run:
        return list(write_batches(records, config, run, OWNER))


def lock_of(url: str) -> Path:
    """The lock file of the run that wrote the batch file at ``url``."""
    path = local(url)
    return path.with_name("." + path.name.rsplit("-", 1)[0] + ".lock")


def held(lock: Path) -> bool:
    """Whether someone holds ``lock`` (an exclusive lock cannot be had then)."""
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def names_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


# -- writing --------------------------------------------------------------------------------


def test_records_go_into_files_of_at_most_batch_size_lines_one_manifest_each(tmp_path):
    config = batch_config(tmp_path, batch_size=2, prefix="run7-")
    manifests = written(map(record, [1, 2, 3]), config)
    assert [len(files) for files in manifests] == [1, 1]
    names = [local(url).name for [url] in manifests]
    run = re.fullmatch(r"run7-costs-([0-9a-f]{32})-1\.jsonl", names[0])
    assert run is not None
    assert names[1] == f"run7-costs-{run[1]}-2.jsonl"
    # the run's lock stays with its files: they are not read yet
    assert names_in(tmp_path) == [f".run7-costs-{run[1]}.lock", *names]
    assert [local(url).read_bytes() for [url] in manifests] == [line(1) + line(2), line(3)]


def test_amounts_are_written_as_exact_json_numbers_and_none_as_null(tmp_path):
    records = [record(1, "0.10000000000000000555"), record(2, "-1E-7"), record(3, None)]
    [[url]] = written(records, batch_config(tmp_path, batch_size=3))
    lines = local(url).read_bytes().splitlines()
    assert [re.search(rb'"amount_value":([^,]*)', text)[1] for text in lines] == [
        b"0.10000000000000000555",
        b"-1E-7",
        b"null",
    ]


def test_gzip_files_hold_the_same_lines(tmp_path):
    config = batch_config(tmp_path, compression="gzip", batch_size=5)
    [[url]] = written(map(record, [1, 2]), config)
    assert url.endswith(".jsonl.gz")
    assert gzip.decompress(local(url).read_bytes()) == line(1) + line(2)


def test_no_records_write_no_file(tmp_path):
    assert written(iter([]), batch_config(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []  # not even the run's lock, once the run is over


def test_a_file_gets_its_name_only_once_it_is_whole(tmp_path):
    seen: list[list[str]] = []

    def records() -> Iterator[dict[str, Any]]:
        yield record(1)
        seen.append(sorted(p.name for p in tmp_path.iterdir()))  # while the file is written
        yield record(2)

    [[url]] = written(records(), batch_config(tmp_path, batch_size=5))
    (while_written,) = seen
    name = local(url).name
    assert while_written == [lock_of(url).name, f"{name}.{OWNER}.partial"]
    assert names_in(tmp_path) == [lock_of(url).name, name]


def test_an_error_while_records_are_read_removes_the_partial_file_and_passes_unchanged(
    tmp_path,
):
    def records() -> Iterator[dict[str, Any]]:
        yield from map(record, [1, 2, 3])
        raise ValueError("row 4 is bad")

    config = batch_config(tmp_path)
    manifests: list[list[str]] = []
    with pytest.raises(ValueError, match=r"^row 4 is bad$"), BatchRun(config, "costs") as run:
        manifests.extend(write_batches(records(), config, run, OWNER))
    [[url]] = manifests  # the first file was whole; the second, partial, is gone
    assert names_in(tmp_path) == [lock_of(url).name, local(url).name]


def test_storage_that_fails_while_a_file_is_written_removes_the_partial_file(tmp_path, monkeypatch):
    class FullDisk(io.FileIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    opened: list[str] = []

    def open_new(config: BatchConfig, run: BatchRun, name: str) -> io.FileIO:
        opened.append(name)
        return FullDisk(tmp_path / name, "xb")

    monkeypatch.setattr(batches, "_open_new", open_new)
    config = batch_config(tmp_path)
    with pytest.raises(BatchWriteError) as failed, BatchRun(config, "costs") as run:
        list(write_batches(map(record, [1]), config, run, OWNER))
    assert (str(failed.value), failed.value.errno) == ("No space left on device", errno.ENOSPC)
    assert opened == [f"{run.name}-1.jsonl.{OWNER}.partial"]
    assert list(tmp_path.iterdir()) == []  # the partial file, and the lock of a run with none


def test_storage_that_cannot_be_written_is_a_batch_write_error_with_the_systems_reason(
    tmp_path,
):
    (tmp_path / "a-file").write_text("not a folder")
    config = batch_config(tmp_path / "a-file" / "batches")
    with pytest.raises(BatchWriteError) as failed, BatchRun(config, "costs"):
        pytest.fail("the run started in storage that cannot be written")
    assert (str(failed.value), failed.value.errno) == ("Not a directory", errno.ENOTDIR)


def test_batch_files_and_the_runs_lock_are_readable_by_their_owner_only(tmp_path):
    root = tmp_path / "batches"
    [[plain]] = written([record(1)], batch_config(root))
    [[gzipped]] = written([record(1)], batch_config(root, compression="gzip"))
    modes = {path.name: mode(path) for path in root.iterdir()}
    assert modes == {
        local(plain).name: "0o600",
        lock_of(plain).name: "0o600",
        local(gzipped).name: "0o600",
        lock_of(gzipped).name: "0o600",
    }
    assert mode(root) == "0o700"  # the storage root the tap created


def test_a_run_holds_its_lock_while_it_runs_and_lets_it_go_when_over(tmp_path):
    config = batch_config(tmp_path)
    with BatchRun(config, "costs") as run:
        lock = tmp_path / f".{run.name}.lock"
        assert names_in(tmp_path) == [lock.name]
        assert held(lock)
        [[url]] = write_batches([record(1)], config, run, OWNER)
    assert names_in(tmp_path) == [lock.name, local(url).name]  # the file is not read yet
    assert not held(lock)


def test_the_lock_of_a_run_that_left_no_file_is_removed_when_the_run_ends(tmp_path):
    config = batch_config(tmp_path)
    with BatchRun(config, "costs") as run:
        [[url]] = write_batches([record(1)], config, run, OWNER)
        rows = read_batch(config.encoding, url, CostRow, "costs")
        assert [row.day for row in rows] == ["2025-10-01"]  # read while the run goes on
        assert names_in(tmp_path) == [f".{run.name}.lock"]
    assert list(tmp_path.iterdir()) == []


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
    [[url]] = written(records, config)
    rows = read_batch(config.encoding, url, CostRow, "costs")
    assert next(rows) == CostRow("org-acme", "2025-10", "2025-10-01", ROW, Decimal("0.895874"))
    assert local(url).exists()  # read one record at a time
    assert list(rows) == [
        CostRow("org-acme", "2025-10", "2025-10-02", ROW, Decimal("-1E-7")),
        CostRow("org-acme", "2025-10", "2025-10-03", ROW, None),
    ]
    assert not local(url).exists()  # deleted once read to the end


def test_the_decimal_read_back_keeps_its_digits(tmp_path):
    config = batch_config(tmp_path)
    [[url]] = written([record(1)], config)
    [row] = read_batch(config.encoding, url, CostRow, "costs")
    assert str(row.amount_value) == "0.8958740000000000"


def test_a_line_that_is_not_the_record_expected_names_the_file_and_line(tmp_path):
    config = batch_config(tmp_path)
    [[url]] = written([record(1)], config)
    path = local(url)
    path.write_bytes(line(1) + line(2).replace(b'"month":"2025-10"', b'"month":202510'))
    rows = read_batch(config.encoding, url, CostRow, "costs")
    with pytest.raises(BatchFileError) as bad:
        list(rows)
    assert str(bad.value) == (f"batch file {url}, line 2: Expected `str`, got `int` - at `$.month`")
    assert not path.exists()  # deleted too: the month is only sent again in new files


def gzip_of_zeros(path: Path, size: int) -> None:
    """A gzip file of ``size`` zero bytes (no line break), written a piece at a time."""
    piece = bytes(1 << 24)
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as out:
        for _ in range(size // len(piece)):
            out.write(piece)


def test_a_compressed_file_that_inflates_to_one_huge_line_stops_at_the_bound(tmp_path):
    """64 MiB inflated in one line: refused at the bound, never held whole."""
    config = batch_config(tmp_path, compression="gzip")
    [[url]] = written([record(1)], config)
    gzip_of_zeros(local(url), 64 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(BatchFileError) as bad:
            list(read_batch(config.encoding, url, CostRow, "costs"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(bad.value) == f"batch file {url}, line 1 is longer than 16 MiB"
    assert peak < 48 << 20, f"{peak / 1024 / 1024:.1f} MiB held"
    assert not local(url).exists()  # the tap's file: deleted as any file whose reading failed


def test_a_cut_gzip_file_is_one_error(tmp_path):
    config = batch_config(tmp_path, compression="gzip")
    [[url]] = written(map(record, [1, 2]), config)
    path = local(url)
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(BatchFileError) as bad:
        list(read_batch(config.encoding, url, CostRow, "costs"))
    assert str(bad.value) == (
        f"batch file {url} is not a whole gzip file (Compressed file ended before the "
        "end-of-stream marker was reached)"
    )


REFUSED_BY = (
    "; it was left alone: target-pelanor reads and deletes only the batch files "
    "tap-openai-costs writes (named <prefix><stream>-<run id>-<n>.jsonl[.gz], a regular file "
    "of this user readable by its owner only, beside its run's lock "
    ".<prefix><stream>-<run id>.lock)"
)


def _a_users_export(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(ROW.encode() + b"\n")
    path.chmod(0o600)
    return path


def _in_place_of_the_batch_file(kind: str, batch: Path, tmp: Path) -> Path:
    """What a BATCH message names instead of a file the tap wrote."""
    run = batch.name.rsplit("-", 1)[0]
    if kind == "a user's export":
        return _a_users_export(batch.parent, "cost_2025-10-01_2025-10-31.csv")
    if kind == "notes":
        return _a_users_export(tmp, "notes.txt")
    if kind == "gzip name, plain encoding":
        return _a_users_export(batch.parent, batch.name + ".gz")
    if kind == "another stream's name":
        other = batch.parent / batch.name.replace("costs-", "cost_months-")
        (other.parent / f".{run.replace('costs-', 'cost_months-')}.lock").write_bytes(b"")
        return _a_users_export(other.parent, other.name)
    if kind == "no lock beside it":
        (batch.parent / f".{run}.lock").unlink()
        return batch
    if kind == "readable by others":
        batch.chmod(0o644)
        return batch
    if kind == "a link to a user's file":
        target = _a_users_export(tmp, "export.csv")
        batch.unlink()
        batch.symlink_to(target)
        return batch
    assert kind == "a FIFO"
    batch.unlink()
    os.mkfifo(batch, 0o600)
    return batch


REFUSALS = {
    "a user's export": "is not named as tap-openai-costs names a .jsonl batch file",
    "notes": "is not named as tap-openai-costs names a .jsonl batch file",
    "gzip name, plain encoding": "is not named as tap-openai-costs names a .jsonl batch file",
    "another stream's name": "is not a batch file of the stream 'costs'",
    "no lock beside it": "has no lock of its run beside it (.costs-{run}.lock)",
    "readable by others": "is readable by other users than its owner",
    "a link to a user's file": "is a symbolic link, not a regular file",
    "a FIFO": "is a named pipe (FIFO), not a regular file",
}


@pytest.mark.parametrize(("kind", "problem"), REFUSALS.items(), ids=REFUSALS.keys())
def test_a_file_the_tap_did_not_write_is_refused_and_left_alone(tmp_path, kind, problem):
    root = tmp_path / "batches"
    config = batch_config(root)
    [[url]] = written([record(1)], config)
    named = _in_place_of_the_batch_file(kind, local(url), tmp_path)
    before = {p: (p.lstat().st_ino, p.read_bytes() if p.is_file() else None) for p in [named]}
    with pytest.raises(BatchFileRefused) as refused:
        read_batch(config.encoding, named.as_uri(), CostRow, "costs")
    run = re.search(r"costs-([0-9a-f]{32})", local(url).name)[1]  # type: ignore[index]
    assert (
        str(refused.value) == f"batch file {named.as_uri()} {problem.format(run=run)}{REFUSED_BY}"
    )
    after = {p: (p.lstat().st_ino, p.read_bytes() if p.is_file() else None) for p in [named]}
    assert after == before


def test_a_batch_file_elsewhere_is_read_by_its_name_and_left_for_its_owner():
    """Storage that is not a local folder (here fsspec's memory://) cannot be checked but
    for the name, so it is never deleted."""
    url = f"memory://batches/costs-{'b' * 32}-1.jsonl"
    UPath(url).write_bytes(line(1))
    encoding = BaseBatchFileEncoding.from_dict({"format": "jsonl"})
    assert [row.day for row in read_batch(encoding, url, CostRow, "costs")] == ["2025-10-01"]
    assert UPath(url).exists()
    UPath(url).unlink()
    with pytest.raises(BatchFileRefused):
        read_batch(encoding, "memory://batches/notes.txt", CostRow, "costs")


def test_a_batch_file_whose_reading_stopped_is_deleted(tmp_path):
    config = batch_config(tmp_path)
    [[url]] = written(map(record, [1, 2]), config)
    rows = read_batch(config.encoding, url, CostRow, "costs")
    assert next(rows).day == "2025-10-01"
    rows.close()  # the target stopped before the file's end
    assert not local(url).exists()


# -- files left behind ---------------------------------------------------------------------


def test_partial_files_of_processes_that_are_gone_are_removed_and_nothing_else(tmp_path):
    names = [
        f"costs-a-1.jsonl.tap-openai-costs-{NO_SUCH_PROCESS}.partial",  # a killed tap's
        f"costs-b-1.jsonl.tap-openai-costs-{os.getpid()}.partial",  # this process's own
        f"costs-c-1.jsonl.tap-openai-costs-{os.getppid()}.partial",  # a tap still running
        f"costs-d-1.jsonl.other-plugin-{NO_SUCH_PROCESS}.partial",  # not this plugin's
        f"costs-{'e' * 32}-1.jsonl",  # a whole file, just written: the target's to read
    ]
    for name in names:
        (tmp_path / name).write_text("{}\n")
    removed = remove_stale_batches(batch_config(tmp_path), "tap-openai-costs")
    assert sorted(removed) == names[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


def test_storage_that_is_not_a_local_folder_is_left_alone(tmp_path):
    remote = BatchConfig.from_dict(
        {"encoding": {"format": "jsonl"}, "storage": {"root": "memory://batches"}}
    )
    assert remove_stale_batches(remote, "tap-openai-costs") == []
    assert remove_stale_batches(batch_config(tmp_path / "none-yet"), "tap-openai-costs") == []
    assert not (tmp_path / "none-yet").exists()


def test_files_of_a_run_nobody_holds_are_removed_once_its_lock_has_been_free_ten_minutes(
    tmp_path,
):
    config = batch_config(tmp_path, batch_size=1)
    manifests = written(map(record, [1, 2]), config)
    lock = lock_of(manifests[0][0])
    freed = lock.stat().st_mtime  # the run's end
    kept = names_in(tmp_path)
    assert STALE_SECONDS == 600
    too_soon = freed + STALE_SECONDS - 1  # a target may still come for them
    assert remove_stale_batches(config, "tap-openai-costs", now=too_soon) == []
    assert names_in(tmp_path) == kept
    removed = remove_stale_batches(config, "tap-openai-costs", now=freed + STALE_SECONDS)
    assert removed == [local(url).name for [url] in manifests]
    assert list(tmp_path.iterdir()) == []  # the lock went with them


def test_files_of_a_run_still_running_are_never_removed(tmp_path):
    config = batch_config(tmp_path)
    with BatchRun(config, "costs") as run:
        [[url]] = write_batches([record(1)], config, run, OWNER)
        kept = names_in(tmp_path)
        much_later = lock_of(url).stat().st_mtime + STALE_SECONDS * 10
        assert remove_stale_batches(config, "tap-openai-costs", now=much_later) == []
        assert names_in(tmp_path) == kept


def test_whole_files_without_a_lock_are_removed_once_ten_minutes_old(tmp_path):
    name = f"costs-{'a' * 32}-1.jsonl"  # as versions that kept no lock left them
    (tmp_path / name).write_text("{}\n")
    written_at = (tmp_path / name).stat().st_mtime
    config = batch_config(tmp_path)
    too_soon = written_at + STALE_SECONDS - 1
    assert remove_stale_batches(config, "tap-openai-costs", now=too_soon) == []
    assert names_in(tmp_path) == [name]
    assert remove_stale_batches(config, "tap-openai-costs", now=written_at + STALE_SECONDS) == [
        name
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_target_that_finishes_before_the_tap_leaves_the_runs_files_alone(tmp_path):
    config = batch_config(tmp_path, batch_size=1)
    readers = BatchReaders()
    with BatchRun(config, "costs") as run:
        [[first], [second]] = write_batches(map(record, [1, 2]), config, run, OWNER)
        readers.reading(first)
        assert [row.day for row in read_batch(config.encoding, first, CostRow, "costs")] == [
            "2025-10-01"
        ]
        assert readers.finish() == []  # the tap still runs: its files are still coming
        assert names_in(tmp_path) == [lock_of(second).name, local(second).name]


def test_a_process_is_alive_while_it_runs():
    assert process_alive(os.getpid()) is True
    assert process_alive(NO_SUCH_PROCESS) is False
