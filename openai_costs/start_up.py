"""A plugin command's start-up, without the garbage collector's passes over its imports.

Importing the Singer SDK and its dependencies makes about 90,000 long-lived objects the
collector tracks (modules, classes, functions), and it runs over a hundred passes over them
while they are made, freeing nothing: about a quarter of each process's start-up. The
plugin's imports therefore run with the collector paused; what they made is then frozen
(``gc.freeze``), so the collections of the run itself skip it too. The collector is back on
before the plugin runs a line, so a run's garbage is collected as always.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["imports_uncollected"]


@contextmanager
def imports_uncollected() -> Iterator[None]:
    """Pause the collector for the imports in the block; freeze what they made."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
