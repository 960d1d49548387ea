"""The status every per-month log event carries, from one fixed set, so that an alert rule
matches a field instead of a message's text (docs/settings.md, "Statuses to alert on").

Each event has ``status`` and, where something went wrong, ``reason`` (the text that says
why and what to do). A month's last event has one of the final statuses; the others say
how far along it is.
"""

from __future__ import annotations

from typing import Final

#: The tap read the month whole and sealed it (tap).
SEALED: Final = "sealed"
#: The month's rows are arriving and being written (target, progress on a long month).
WRITING: Final = "writing"
#: The month's file was written and checked against its seal (target).
CHECKED: Final = "checked"
#: The month's upload began; ``bytes`` says how much is sent (target).
SENDING: Final = "sending"
#: Final: Pelanor accepted the month.
UPLOADED: Final = "uploaded"
#: Final, dry runs: the month was checked (and written to output_dir, if set); not sent.
WRITTEN: Final = "written"
#: Final: another run (of the same organization, at the same time) uploaded the very same
#: file while this run was going: it is in Pelanor, and is not sent twice.
UNCHANGED: Final = "unchanged"
#: Final: the checks kept the month back (incomplete, not sealed, smaller than before…).
WITHHELD: Final = "withheld"
#: Final: sending or writing the month failed (Pelanor refused or could not be reached,
#: output_dir, the upload lock, a stop during the upload).
FAILED: Final = "failed"

STATUSES: Final = (
    SEALED,
    WRITING,
    CHECKED,
    SENDING,
    UPLOADED,
    UNCHANGED,
    WRITTEN,
    WITHHELD,
    FAILED,
)
FINAL: Final = frozenset({UPLOADED, UNCHANGED, WRITTEN, WITHHELD, FAILED})
