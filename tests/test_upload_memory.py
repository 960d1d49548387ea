"""The shrink guard's memory: it fails closed on a record it cannot read, knows which
Pelanor each record is of and when it was made, keeps this machine's copy where it
outlives the state and the temp folder, and lets through only the months listed in
allow_shrinking_months. Pelanor is the local sandbox (127.0.0.1).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from local_sandboxes.pelanor import PelanorSandbox
from target_pelanor.destination import Destination, pelanor_host
from target_pelanor.shrink_guard import (
    Remembered,
    UnreadableRecord,
    Uploaded,
    UploadMemory,
    read_record,
    refusal,
)
from target_pelanor.upload_records import MachineRecords, normalised_endpoint
from tests.exports import SAMPLES, sparse_file
from tests.pelanor_sandbox import running_sandbox, sandbox_config
from tests.singer import Run, report, run_target, stored, target_config
from tests.upload_guard import (
    OLDER_COPIES,
    config_errors,
    machine_record,
    october_export,
    remembered_in_state,
    remembered_on_this_machine,
    tap_run,
    uploaded_record,
)

UTC = timezone.utc
ACME_SEPT = SAMPLES / "acme" / "cost_2025-09-01_2025-09-30.csv"
ACME_OCT = SAMPLES / "acme" / "cost_2025-10-01_2025-10-31.csv"
OCTOBER = "org-acme/2025-10"
GOOD = {"rows": 62, "days": 31, "total_usd": "41.85", "rows_digest": "ab" * 32}
STATE_FIX = (
    "repair or remove it (meltano state get, then meltano state set), or list 2025-10 in "
    "allow_shrinking_months to upload it anyway"
)


def with_records(records: Any) -> dict[str, Any]:
    """A state holding only the target's upload records (the tap carries them through)."""
    return {"bookmarks": {"target-pelanor": {"uploaded": records}}}


def both_months(tmp: Path, pelanor: PelanorSandbox, state: dict, **settings: Any) -> Run:
    tap = tap_run(tmp, ACME_SEPT, ACME_OCT, state=state)
    return run_target(tmp, target_config(pelanor, **settings), tap.stdout)


# -- a record that cannot be read stops its month ----------------------------------------

UNREADABLE = {
    "a number where text belongs": (
        GOOD | {"total_usd": 41.85},
        "total_usd is 41.85, not decimal text",
    ),
    "a list instead of a map": ([GOOD], "it is a list, not a map"),
    "an exponent no total has": (
        GOOD | {"total_usd": "1e999"},
        'total_usd "1e999" is not plain decimal text',
    ),
}


@pytest.mark.parametrize(("record", "reason"), UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_unreadable_upload_record_in_the_state_stops_only_its_month(
    tmp_path, pelanor, record, reason
) -> None:
    result = both_months(tmp_path, pelanor, with_records({OCTOBER: record}))
    assert result.returncode == 1
    assert report(result)[2][4] == (
        f"withheld: the upload record of {OCTOBER} in the state "
        f"(bookmarks.target-pelanor.uploaded) cannot be read: {reason}; {STATE_FIX}"
    )
    assert "Traceback" not in result.stderr
    assert stored(pelanor) == {"int-acme/2025-09": ACME_SEPT.read_bytes()}
    # September is recorded; October's record goes back as it came, still failing closed.
    records = uploaded_record(result.last_state)
    assert records.keys() == {"org-acme/2025-09", OCTOBER}
    assert records[OCTOBER] == record


def test_upload_records_that_are_not_a_map_withhold_every_month(tmp_path, pelanor) -> None:
    result = both_months(tmp_path, pelanor, with_records(["org-acme/2025-10"]))
    assert result.returncode == 1
    assert [row[4] for row in report(result)[1:]] == [
        "withheld: the upload records in the state cannot be read: "
        "bookmarks.target-pelanor.uploaded is a list, not a map of upload records; "
        + STATE_FIX.replace("2025-10", month)
        for month in ("2025-09", "2025-10")
    ]
    assert pelanor.uploads() == []


def test_listing_a_month_overrides_its_unreadable_record_and_records_it_afresh(
    tmp_path, pelanor
) -> None:
    state = with_records({OCTOBER: GOOD | {"rows": "62"}})
    result = both_months(tmp_path, pelanor, state, allow_shrinking_months=["2025-10"])
    assert result.returncode == 0, result.stderr
    assert (
        "2025-10 is listed in allow_shrinking_months, so it goes although the shrink guard "
        f"would refuse it: the upload record of {OCTOBER} in the state"
    ) in result.stderr
    assert uploaded_record(result.last_state)[OCTOBER]["rows"] == 382


BAD_FIGURES: list[Any] = [
    None,
    "41.85",
    [],
    GOOD | {"total_usd": "NaN"},
    GOOD | {"total_usd": "Infinity"},
    GOOD | {"total_usd": "-1e999"},
    GOOD | {"total_usd": "1E+999999999"},
    GOOD | {"total_usd": "0." + "0" * 5000 + "1"},
    GOOD | {"total_usd": "9" * 30},
    GOOD | {"total_usd": float("inf")},
    GOOD | {"total_usd": None},
    GOOD | {"rows": True},
    GOOD | {"rows": -1},
    GOOD | {"rows": 10**30, "total_usd": "1" + "0" * 30},
    GOOD | {"days": 2.5},
    GOOD | {"rows_digest": 7},
    GOOD | {"uploaded_at": "yesterday"},
    GOOD | {"endpoint": ["https://api.pelanor.io"]},
]


@pytest.mark.parametrize("record", BAD_FIGURES, ids=range(len(BAD_FIGURES)))
def test_no_figure_read_back_can_crash_the_guard(record) -> None:
    memory = UploadMemory()
    memory.learn(with_records({OCTOBER: record}))
    with pytest.raises(UnreadableRecord) as unreadable:
        memory.recall(OCTOBER, "2025-10", "https://api.pelanor.io")
    message = str(unreadable.value)
    assert message.startswith(
        f"the upload record of {OCTOBER} in the state (bookmarks.target-pelanor.uploaded) "
        "cannot be read: "
    )
    assert message.endswith(STATE_FIX)
    assert len(message) < 400
    assert "\n" not in message


def test_a_good_record_is_read_back_exactly() -> None:
    record = GOOD | {"endpoint": "https://api.pelanor.io", "uploaded_at": "2025-11-03T06:30:00Z"}
    remembered = read_record(record, "the state")
    assert remembered == Remembered(
        Uploaded(62, 31, Decimal("41.85"), "ab" * 32),
        "the state",
        "https://api.pelanor.io",
        datetime(2025, 11, 3, 6, 30, tzinfo=UTC),
    )
    assert remembered.to_state() == record


# -- which Pelanor, when, and where the copy is remembered -------------------------------


def test_a_refusal_names_which_pelanor_when_and_where_the_copy_was_remembered() -> None:
    before = Remembered(
        Uploaded(62, 31, Decimal("41.85"), ""),
        "this machine's file /home/u/.local/state/target-pelanor/uploads/api.pelanor.io/"
        "int-acme/2025-10.json",
        "https://api.pelanor.io",
        datetime(2025, 11, 3, 6, 30, tzinfo=UTC),
    )
    assert refusal(before, Uploaded(60, 31, Decimal("41.85"), ""), "2025-10") == (
        "is smaller than the copy uploaded to https://api.pelanor.io at 2025-11-03 06:30:00 "
        "UTC, remembered in this machine's file /home/u/.local/state/target-pelanor/uploads/"
        "api.pelanor.io/int-acme/2025-10.json: 60 rows, 31 days, 41.85 USD against 62 rows, "
        "31 days, 41.85 USD (2 fewer row(s)); a cut download or an older export? Export the "
        "whole month again, or list 2025-10 in allow_shrinking_months to replace it anyway"
    )
    earlier_version = Remembered(Uploaded(62, 31, Decimal("41.85"), ""), "the state")
    assert refusal(earlier_version, Uploaded(62, 30, Decimal("41.85"), ""), "2025-10") == (
        "is smaller than the copy remembered in the state, by an earlier version that did not "
        "note where or when: 62 rows, 30 days, 41.85 USD against 62 rows, 31 days, 41.85 USD "
        "(1 fewer day(s)); a cut download or an older export? Export the whole month again, "
        "or list 2025-10 in allow_shrinking_months to replace it anyway"
    )


def test_a_refusal_where_rows_grew_but_the_total_fell_names_a_credit() -> None:
    before = Remembered(Uploaded(62, 31, Decimal("41.85"), ""), "the state")
    credited = Uploaded(63, 31, Decimal("21.85"), "")
    assert refusal(before, credited, "2025-10") == (
        "is smaller than the copy remembered in the state, by an earlier version that did not "
        "note where or when: 63 rows, 31 days, 21.85 USD against 62 rows, 31 days, 41.85 USD "
        "(20.00 USD less, more than the 0.20925 USD tolerance), although it has 1 more row(s): "
        "a credit or refund (a negative amount) lowers the total; if OpenAI booked one, list "
        "2025-10 in allow_shrinking_months to upload it, otherwise export the whole month "
        "again"
    )


def test_endpoints_are_normalised_so_one_pelanor_has_one_record_folder(tmp_path) -> None:
    assert normalised_endpoint("HTTPS://API.Pelanor.io:443/") == "https://api.pelanor.io"
    assert normalised_endpoint("http://127.0.0.1:8765/api/") == "http://127.0.0.1:8765/api"
    records = MachineRecords(tmp_path, "https://api-eu.pelanor.io/v1")
    assert records.path("int/acme", "2025-10") == (
        tmp_path / "api-eu.pelanor.io" / "int%2Facme" / "2025-10.json"
    )
    for spelling in ("http://[::1]:8765", "http://127.0.0.1:8765/v1", "http://LOCALHOST.:8765/"):
        assert MachineRecords(tmp_path, spelling).folder == tmp_path / "localhost%3A8765"


SAME_PELANOR = {
    "api.pelanor.io": [
        "https://api.pelanor.io",
        "HTTPS://API.Pelanor.io:443/",
        "https://api.pelanor.io/v1",
        "https://api.pelanor.io./v1/",
    ],
    "localhost:8765": [
        "http://127.0.0.1:8765",
        "http://localhost:8765/v1",
        "http://[::1]:8765/",
        "http://127.0.0.2:8765",
        "http://[::ffff:127.0.0.1]:8765",
        "http://app.localhost:8765",
    ],
    "api-eu.pelanor.io": ["https://api-eu.pelanor.io"],
    "localhost:8766": ["http://127.0.0.1:8766"],
    "localhost:80": ["http://localhost"],
    "[2001:db8::1]:8443": ["https://[2001:0db8:0:0::1]:8443/v1"],
}


@pytest.mark.parametrize(("host", "spellings"), SAME_PELANOR.items(), ids=SAME_PELANOR)
def test_every_spelling_of_a_pelanors_url_is_one_host(host, spellings) -> None:
    assert {pelanor_host(url) for url in spellings} == {host}


def test_a_record_speaks_of_its_own_destination_and_when_unsure_of_every_one() -> None:
    here = Destination("localhost:8765", "int-acme")
    uploaded = Uploaded(62, 31, Decimal("41.85"), "")

    def noting(destination: str | None = None, endpoint: str | None = None) -> bool:
        return Remembered(uploaded, "the state", endpoint, None, destination).speaks_of(here)

    assert noting("localhost:8765/int-acme")
    assert not noting("localhost:8765/int-other")
    assert not noting("localhost:8766/int-acme")
    assert not noting("api.pelanor.io/int-acme", "http://127.0.0.1:8765")
    # Records of earlier versions name a base URL only: any integration at its host.
    assert noting(endpoint="http://127.0.0.1:8765/v1")
    assert not noting(endpoint="https://api.pelanor.io")
    assert noting(endpoint="not a URL")  # unsure: it guards
    assert noting()  # the earliest records name nothing
    assert Remembered(uploaded, "", None, None, "localhost:8765/int-other").speaks_of(None)


def test_this_machines_record_is_kept_per_pelanor_endpoint(tmp_path, pelanor) -> None:
    """A sandbox upload never blocks another Pelanor; the one it went to stays guarded."""
    full = october_export(tmp_path, "new")
    first = run_target(tmp_path, target_config(pelanor), tap_run(tmp_path, full).stdout)
    assert first.returncode == 0, first.stderr
    record = machine_record(pelanor, "2025-10")
    saved = json.loads(record.read_text())
    assert saved == {
        "integration_id": "int-acme",
        "month": "2025-10",
        "rows": 62,
        "days": 31,
        "total_usd": "41.85",
        "rows_digest": saved["rows_digest"],
        "endpoint": pelanor.url,
        "destination": f"localhost:{pelanor.url.rsplit(':', 1)[1]}/int-acme",
        "uploaded_at": saved["uploaded_at"],
    }
    assert oct(record.stat().st_mode & 0o777) == "0o600"

    older = tap_run(tmp_path, october_export(tmp_path, "old", last_day_amount="0.50")).stdout
    with PelanorSandbox(sandbox_config(), tmp_path / "other-pelanor") as other:
        elsewhere = run_target(tmp_path, target_config(other), older)
        assert elsewhere.returncode == 0, elsewhere.stderr
        assert len(other.uploads()) == 1

    again = run_target(tmp_path, target_config(pelanor), older)  # no state: a fresh pipeline
    assert again.returncode == 1
    assert report(again)[1][4] == OLDER_COPIES["the last day not final yet"][2].format(
        origin=remembered_on_this_machine(pelanor, "2025-10")
    )


#: Other spellings of the sandbox's URL, as settings: the same Pelanor, the same memory.
RESPELT = {
    "/v1 moved from upload_path into api_url": lambda url: {
        "api_url": f"{url}/v1/",
        "upload_path": "/integrations/openai/{integration_id}/upload",
    },
    "localhost for 127.0.0.1": lambda url: {"api_url": url.replace("127.0.0.1", "localhost")},
}


@pytest.mark.parametrize("respell", RESPELT.values(), ids=RESPELT)
@pytest.mark.parametrize("memory", ["the state", "this machine"])
def test_the_same_pelanor_spelt_otherwise_keeps_its_memory(
    tmp_path, pelanor, respell, memory
) -> None:
    full = tap_run(tmp_path, october_export(tmp_path, "new")).stdout
    first = run_target(tmp_path, target_config(pelanor), full)
    assert first.returncode == 0, first.stderr
    if memory == "the state":
        state = first.last_state
        origin = remembered_in_state(pelanor, state, OCTOBER)
        machine_record(pelanor, "2025-10").unlink()  # the state alone remembers
    else:
        state, origin = None, remembered_on_this_machine(pelanor, "2025-10")
    older = tap_run(tmp_path, october_export(tmp_path, "old", "0.50"), state=state).stdout
    again = run_target(tmp_path, target_config(pelanor, **respell(pelanor.url)), older)
    assert again.returncode == 1
    assert report(again)[1][4] == OLDER_COPIES["the last day not final yet"][2].format(
        origin=origin
    )
    assert len(pelanor.uploads()) == 1


def test_another_integration_at_the_same_pelanor_has_a_memory_of_its_own(tmp_path) -> None:
    integrations = {"int-acme": "org-acme", "int-acme-new": "org-acme"}
    with running_sandbox(tmp_path / "pelanor", integrations=integrations) as pelanor:
        full = tap_run(tmp_path, october_export(tmp_path, "new")).stdout
        first = run_target(tmp_path, target_config(pelanor), full)
        assert first.returncode == 0, first.stderr
        older = tap_run(
            tmp_path, october_export(tmp_path, "old", "0.50"), state=first.last_state
        ).stdout
        elsewhere = run_target(
            tmp_path, target_config(pelanor, integration_id="int-acme-new"), older
        )
        assert elsewhere.returncode == 0, elsewhere.stderr
        assert sorted(stored(pelanor)) == ["int-acme-new/2025-10", "int-acme/2025-10"]


def test_records_of_earlier_versions_kept_per_base_url_still_guard(tmp_path, pelanor) -> None:
    """Earlier versions noted only the base URL: in the state's record, and as the name of
    this machine's folder. Spelt otherwise, such records still guard their Pelanor."""
    full = tap_run(tmp_path, october_export(tmp_path, "new")).stdout
    first = run_target(tmp_path, target_config(pelanor), full)
    assert first.returncode == 0, first.stderr
    state = first.last_state
    del uploaded_record(state)[OCTOBER]["destination"]
    earlier_url = pelanor.url.replace("127.0.0.1", "localhost") + "/v1"
    uploaded_record(state)[OCTOBER]["endpoint"] = earlier_url
    record = machine_record(pelanor, "2025-10")
    content = json.loads(record.read_text())
    del content["destination"]
    content["endpoint"] = earlier_url
    earlier = record.parents[2] / quote(earlier_url, safe="") / "int-acme" / "2025-10.json"
    earlier.parent.mkdir(parents=True)
    earlier.write_text(json.dumps(content))
    record.unlink()
    at = content["uploaded_at"]
    when = f"{at[:10]} {at[11:19]} UTC"

    older = october_export(tmp_path, "old", "0.50")
    for state_passed, where in [
        (state, "the state"),
        (None, f"this machine's file {earlier}"),
    ]:
        tap = tap_run(tmp_path, older, state=state_passed)
        again = run_target(tmp_path, target_config(pelanor), tap.stdout)
        assert again.returncode == 1
        assert report(again)[1][4] == OLDER_COPIES["the last day not final yet"][2].format(
            origin=f"uploaded to {earlier_url} at {when}, remembered in {where}"
        )
    assert len(pelanor.uploads()) == 1


def test_this_machines_record_outlives_a_cleared_state_and_temp_folder(tmp_path, pelanor) -> None:
    """`meltano state clear` and a reboot (the temp folder emptied) forget nothing."""
    first = run_target(
        tmp_path, target_config(pelanor), tap_run(tmp_path, october_export(tmp_path, "new")).stdout
    )
    assert first.returncode == 0, first.stderr
    temp = Path(tempfile.gettempdir())
    shutil.rmtree(temp)
    temp.mkdir()
    older = tap_run(tmp_path, october_export(tmp_path, "old", last_day_amount="0.50"))
    again = run_target(tmp_path, target_config(pelanor), older.stdout)
    assert again.returncode == 1
    assert "remembered in this machine's file" in report(again)[1][4]
    assert len(pelanor.uploads()) == 1


def test_deleting_this_machines_record_forgets_that_month(tmp_path, pelanor) -> None:
    full = tap_run(tmp_path, october_export(tmp_path, "new")).stdout
    assert run_target(tmp_path, target_config(pelanor), full).returncode == 0
    machine_record(pelanor, "2025-10").unlink()
    older = tap_run(tmp_path, october_export(tmp_path, "old", last_day_amount="0.50")).stdout
    again = run_target(tmp_path, target_config(pelanor), older)
    assert again.returncode == 0, again.stderr
    assert len(pelanor.uploads()) == 2


def test_an_unreadable_machine_record_stops_its_month(tmp_path, pelanor) -> None:
    record = machine_record(pelanor, "2025-10")
    record.parent.mkdir(parents=True)
    record.write_text('{"rows": 62, "days": 31, "total_usd": "41.85"')  # cut short
    tap = tap_run(tmp_path, october_export(tmp_path, "new"))
    result = run_target(tmp_path, target_config(pelanor), tap.stdout)
    assert result.returncode == 1
    assert report(result)[1][4] == (
        f"withheld: this machine's file {record} cannot be read (it is not JSON); delete that "
        "file to forget it, or list 2025-10 in allow_shrinking_months to upload it anyway"
    )
    assert pelanor.uploads() == []


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: os.mkfifo(path, 0o600), "it is a named pipe (FIFO), not a regular file"),
        (lambda path: sparse_file(path, 1 << 30), "it is larger than 1 MiB"),
    ],
    ids=["a FIFO", "1 GiB"],
)
def test_a_machine_record_that_is_no_record_stops_its_month_without_waiting_or_filling_memory(
    tmp_path, pelanor, make, problem
) -> None:
    record = machine_record(pelanor, "2025-10")
    record.parent.mkdir(parents=True)
    make(record)
    tap = tap_run(tmp_path, october_export(tmp_path, "new"))
    result = run_target(tmp_path, target_config(pelanor), tap.stdout)
    assert result.returncode == 1
    assert report(result)[1][4] == (
        f"withheld: this machine's file {record} cannot be read ({problem}); delete that "
        "file to forget it, or list 2025-10 in allow_shrinking_months to upload it anyway"
    )
    assert pelanor.uploads() == []


def test_upload_records_dir_says_where_this_machines_records_live(tmp_path, pelanor) -> None:
    folder = tmp_path / "kept-volume" / "records"
    folder.mkdir(parents=True)
    config = target_config(pelanor, upload_records_dir=str(folder))
    result = run_target(tmp_path, config, tap_run(tmp_path, october_export(tmp_path, "new")).stdout)
    assert result.returncode == 0, result.stderr
    host = f"localhost%3A{pelanor.url.rsplit(':', 1)[1]}"
    assert sorted(p.relative_to(folder) for p in folder.rglob("*.json")) == [
        Path("integration-bindings") / "int-acme.json",
        Path(host) / "int-acme" / "2025-10.json",
    ]
    assert list(Path(os.environ["XDG_STATE_HOME"]).rglob("*.json")) == []


# -- allow_shrinking_months: a list of months --------------------------------------------


def test_allow_shrinking_months_lets_only_the_listed_months_through(tmp_path, pelanor) -> None:
    first = both_months(tmp_path, pelanor, {})
    assert first.returncode == 0, first.stderr
    lines = ACME_SEPT.read_bytes().splitlines(keepends=True)
    cut_september = tmp_path / "cut" / ACME_SEPT.name
    cut_september.parent.mkdir()
    cut_september.write_bytes(b"".join(lines[:403]))
    lines = ACME_OCT.read_bytes().splitlines(keepends=True)
    cut_october = tmp_path / "cut" / ACME_OCT.name
    cut_october.write_bytes(b"".join(lines[:380]))  # also cut, by accident
    tap = tap_run(tmp_path, cut_september, cut_october, state=first.last_state)
    result = run_target(
        tmp_path, target_config(pelanor, allow_shrinking_months=["2025-09"]), tap.stdout
    )
    assert result.returncode == 1
    september, october = report(result)[1:]
    assert september[4] == "uploaded"
    assert october[4].startswith("withheld: is smaller than the copy uploaded to ")
    assert stored(pelanor)["int-acme/2025-09"] == cut_september.read_bytes()
    assert stored(pelanor)["int-acme/2025-10"] == ACME_OCT.read_bytes()


SETTINGS = {
    "allow_shrinking_months true": (
        {"allow_shrinking_months": True},
        [
            "allow_shrinking_months is a list of months now, not true: list the months that "
            'may replace a larger copy, such as ["2025-10"] (true let every month through)'
        ],
    ),
    "allow_shrinking_months not a month": (
        {"allow_shrinking_months": ["2025-10", "2025-13", "October"]},
        [
            "allow_shrinking_months must list months as YYYY-MM, such as 2025-10 (got "
            "'2025-13', 'October')"
        ],
    ),
    "a token pasted into api_token_env": (
        {"api_token": None, "api_token_env": "tokid_8f3Kx2:s3cr3t-value"},
        [
            "api_token_env must be the name of an environment variable (letters, digits and "
            "_), not the token itself: put the token in a variable such as "
            "PELANOR_API_TOKEN_ACME and set api_token_env to that name (the value is not "
            "shown here)"
        ],
    ),
    "a token secret pasted into api_token_secret_env": (
        {"api_token": None, "api_token_id": "tokid", "api_token_secret_env": "s3cr3t-value"},
        [
            "api_token_secret_env must be the name of an environment variable (letters, digits "
            "and _), not the token secret itself: put the token secret in a variable such as "
            "PELANOR_TOKEN_SECRET_ACME and set api_token_secret_env to that name (the value is "
            "not shown here)"
        ],
    ),
    "a secret-like name in api_token_secret_env": (
        {"api_token": None, "api_token_id": "tokid", "api_token_secret_env": "s3cr3t_value"},
        [
            "the variable api_token_secret_env names is not set in the environment (its name "
            "is not shown: it is not in capitals, so it may be a token pasted there)"
        ],
    ),
    "a token-like name in api_token_env": (
        {"api_token": None, "api_token_env": "tok_8f3Kx2_s3cr3t_value"},
        [
            "the variable api_token_env names is not set in the environment (its name is not "
            "shown: it is not in capitals, so it may be a token pasted there)"
        ],
    ),
    "a duration that is not whole seconds": (
        {"max_retry_seconds": 0.5},
        ["max_retry_seconds must be a whole number of seconds (got 0.5)"],
    ),
    "upload_records_dir a file": (
        {"upload_records_dir": "FILE"},
        ["upload_records_dir {FILE} is not a writable folder: {FILE} is not a folder"],
    ),
}


@pytest.mark.parametrize(("settings", "messages"), SETTINGS.values(), ids=SETTINGS.keys())
def test_settings_of_the_guard_and_the_token_are_one_line_each_at_start(
    tmp_path, pelanor, settings, messages
) -> None:
    if settings.get("upload_records_dir") == "FILE":
        file = tmp_path / "a-file"
        file.write_text("")
        settings = {"upload_records_dir": str(file)}
        messages = [m.replace("{FILE}", str(file)) for m in messages]
    result = run_target(tmp_path, target_config(pelanor) | settings, "")
    assert result.returncode == 1
    assert config_errors(result) == messages
    assert "s3cr3t" not in result.stderr


def test_an_upload_records_dir_that_is_not_there_fails_closed_saying_what_to_mount(
    tmp_path, pelanor
) -> None:
    """A worker whose kept volume was not mounted: a new empty folder would forget every
    upload, so the run stops at start, before any input is read."""
    folder = tmp_path / "kept-volume" / "records"
    config = target_config(pelanor, upload_records_dir=str(folder))
    result = run_target(tmp_path, config, tap_run(tmp_path, october_export(tmp_path, "new")).stdout)
    assert result.returncode == 1
    assert config_errors(result) == [
        f"upload_records_dir {folder} does not exist: mount the volume that keeps this "
        "machine's upload records there (on a new volume, create the folder once)"
    ]
    assert not folder.parent.exists()
    assert pelanor.uploads() == []


def test_allow_shrinking_months_false_from_earlier_versions_lets_none_through(
    tmp_path, pelanor
) -> None:
    result = run_target(tmp_path, target_config(pelanor, allow_shrinking_months=False), "")
    assert result.returncode == 0, result.stderr
