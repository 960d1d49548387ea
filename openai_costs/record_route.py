"""Whether a stream's RECORD messages take the quick route or the SDK's per-record path.

Both plugins move a ``costs`` row through the SDK's own record loop. Where nothing would
change a record on the way (no stream map, no deselected property, no type conformance,
no ``_sdc_`` metadata, ...), each takes a quicker step inside that loop: the tap writes the
RECORD message's dict straight to its writer, the target converts each record once, while
validating it, into the typed row it keeps. Everything else in the loop (counters,
drains, limits, state) stays the SDK's.

:func:`choose_route` is the one place that decides, for both plugins: they pass what
would change a record (their own checks) and it adds one of its own, the SDK's version.
Each quick step reaches into the SDK's private names (listed in CONTRIBUTING.md, "Private
SDK names we use"), tested against the versions ``pyproject.toml`` allows
(:data:`TESTED_SDK`); on any other version the quick route stands aside, so a newer SDK
makes the plugins slower, never wrong. The answer is logged once per stream (tap) or sink
(target), at INFO, with its reason: :attr:`Route.line`.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from singer_sdk.mapper import SameRecordTransform, StreamMap

__all__ = ["QUICK", "TESTED_SDK", "Route", "choose_route", "installed_sdk", "map_changes"]

#: The singer-sdk versions the quick route was tested with: ``pyproject.toml``'s pin.
TESTED_SDK = "~=0.54.9"
#: Those versions: releases 0.54.9 and later 0.54.x (no pre-release, no local version).
_TESTED = re.compile(r"0\.54\.(?P<micro>[0-9]+)")
_LOWEST_MICRO = 9

#: Why the quick route is taken: none of the checks found anything to change a record.
QUICK = "no map, deselection or conformance changes a record"


def installed_sdk() -> str:
    """The installed singer-sdk's version (the seam tests replace with another)."""
    return importlib.metadata.version("singer-sdk")


@dataclass(frozen=True)
class Route:
    """The answer for one stream: ``quick`` or not, and why."""

    stream: str
    quick: bool
    reason: str

    @property
    def line(self) -> str:
        """The INFO line that says which route the stream's records take, and why."""
        if self.quick:
            return f"{self.stream}: the quick route ({self.reason})"
        return f"{self.stream}: the SDK's per-record path ({self.reason})"


def choose_route(
    stream: str,
    changes: Iterable[tuple[bool, str]],
    *,
    quick: str = QUICK,
    sdk_version: str | None = None,
) -> Route:
    """The route of ``stream``'s records. ``changes`` are the plugin's checks, in order, as
    (applies, reason): the first that applies sends the records the SDK's way, with its
    reason. Before them, a singer-sdk version (``sdk_version``, by default the installed
    one) outside :data:`TESTED_SDK` does. ``quick`` says why the quick route is taken when
    none applies."""
    version = installed_sdk() if sdk_version is None else sdk_version
    if not _tested(version):
        tested = f"singer-sdk {version} is not the {TESTED_SDK} it was tested with"
        return Route(stream, False, tested)
    for applies, reason in changes:
        if applies:
            return Route(stream, False, reason)
    return Route(stream, True, quick)


def map_changes(stream: str, maps: Sequence[StreamMap]) -> list[tuple[bool, str]]:
    """The checks both plugins make of a stream's maps (the SDK's, from the plugin's
    ``stream_maps`` setting), as ``changes`` for :func:`choose_route`: anything but the
    one map that passes records through as they are changes them."""
    one_map = maps[0] if len(maps) == 1 else None
    return [
        (
            one_map is None or type(one_map) is not SameRecordTransform,
            "a stream map is configured",
        ),
        (
            one_map is not None and (one_map.stream_alias != stream or one_map.flattening_enabled),
            "a stream map renames or flattens the stream",
        ),
    ]


def _tested(version: str) -> bool:
    match = _TESTED.fullmatch(version)
    return match is not None and int(match["micro"]) >= _LOWEST_MICRO
