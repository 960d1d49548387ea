"""What the plugins load at start: the HTTP libraries only with the first client
(openai_costs.lazy_import), so a tap reading files and a target with nothing to upload, the
daily run whose exports did not change, never pay for them."""

from __future__ import annotations

import subprocess
import sys

from openai_costs.lazy_import import lazy_module

#: Loaded with the first HTTP client, never at start.
HTTP_LIBRARIES = ("httpx", "httpcore", "h11", "anyio")

LOADED = f"""
import sys
import tap_openai_costs.tap, target_pelanor.target
loaded = [name for name in {HTTP_LIBRARIES!r} if name in sys.modules
          and type(sys.modules[name]).__name__ != "_LazyModule"]
print(loaded)
"""


def test_the_plugins_start_without_loading_the_http_libraries() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOADED], capture_output=True, text=True, check=True
    )
    assert result.stdout == "[]\n"


def test_a_lazy_module_is_loaded_at_its_first_attribute_read(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "wave", raising=False)  # a standard module nobody loads
    module = lazy_module("wave")
    assert type(module).__name__ == "_LazyModule"
    assert module.open.__name__ == "open"
    assert type(module).__name__ == "module"
    assert lazy_module("wave") is module


def test_a_module_already_loaded_is_returned_as_it_is() -> None:
    assert lazy_module("json") is sys.modules["json"]
