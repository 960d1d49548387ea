"""Modules loaded at their first use, so a run that never needs them never pays for them.

httpx (about 40 ms of each plugin's start-up) is needed only to reach OpenAI's Costs API or
Pelanor: a tap reading export files, and a target with nothing to upload (the daily run
whose exports did not change), never touch it. Each module that uses it writes::

    if TYPE_CHECKING:
        import httpx
    else:
        httpx = lazy_module("httpx")

so type checkers see the real module. It is the standard library's
``importlib.util.LazyLoader``: the module is executed at the first attribute read.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

__all__ = ["lazy_module"]


def lazy_module(name: str) -> ModuleType:
    """The module ``name``: the one already imported, else one loaded at its first
    attribute read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
