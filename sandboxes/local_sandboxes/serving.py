"""How the sandboxes' commands run: serving until Ctrl-C or SIGTERM, then stopping cleanly."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["serve_until_signalled"]


def serve_until_signalled(stop: Callable[[], None]) -> None:
    """Wait, while the server runs in its own thread, for SIGINT or SIGTERM; then ``stop``
    it, however the wait ends."""
    signalled = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        signalled.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        while not signalled.wait(0.5):
            pass
    finally:
        stop()
