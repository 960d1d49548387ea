"""A clock for the retry policy's seams: time moves only when something sleeps on it (or a
test moves it), so no test waits and every delay is known exactly."""

from __future__ import annotations

import re


class FakeClock:
    """``clock`` and ``sleep`` to inject together (or ``sleep`` alone, to record delays):
    each sleep is recorded in ``sleeps`` and moves ``now`` on by its length."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        """Time passing without a sleep, as while a request is on its way."""
        self.now += seconds


def elapsed_blanked(text: str) -> str:
    """``text`` with the elapsed time of a retry message ("over 3s") as "over Ns": where a
    test needs the real clock (real socket deadlines) the seconds depend on the machine's
    load; their exact text is checked with this clock injected (tests/test_retry_policy.py)."""
    return re.sub(r"\bover \d+s\b", "over Ns", text)
