"""What the plugins load at start: the HTTP libraries only with the first client
(openai_costs.lazy_import), so a tap reading files and a target with nothing to upload, the
daily run whose exports did not change, never pay for them; and the commands' imports
without the garbage collector's passes (openai_costs.start_up)."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from openai_costs.lazy_import import lazy_module
from openai_costs.start_up import imports_uncollected
from tap_openai_costs import command as tap_command
from tap_openai_costs.tap import TapOpenAICosts
from target_pelanor import command as target_command
from target_pelanor.target import TargetPelanor

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


@pytest.fixture
def collector_restored() -> Iterator[None]:
    """This process's collector as it was: on, and nothing frozen."""
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector_restored")
@pytest.mark.parametrize(
    ("main", "plugin"), [(tap_command.main, TapOpenAICosts), (target_command.main, TargetPelanor)]
)
def test_each_command_starts_its_plugin_with_the_collector_on_and_earlier_objects_frozen(
    monkeypatch: pytest.MonkeyPatch, main: Callable[[], None], plugin: type
) -> None:
    made_before = [object()]
    seen: dict[str, bool] = {}

    def cli() -> None:
        seen["collector on"] = gc.isenabled()
        seen["earlier object frozen"] = not any(o is made_before for o in gc.get_objects())

    monkeypatch.setattr(plugin, "cli", cli)
    main()
    assert seen == {"collector on": True, "earlier object frozen": True}


@pytest.mark.usefixtures("collector_restored")
def test_imports_run_with_the_collector_paused_and_leave_it_as_they_found_it() -> None:
    gc.disable()
    with imports_uncollected():
        assert not gc.isenabled()
    assert not gc.isenabled()
    gc.enable()
    with imports_uncollected():
        assert not gc.isenabled()
    assert gc.isenabled()
