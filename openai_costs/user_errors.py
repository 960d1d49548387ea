"""How both plugins stop on a problem the user must fix: one line per problem on stderr,
exit status 1, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import NoReturn


def stop(plugin: str, problems: Iterable[object]) -> NoReturn:
    """Print ``<plugin>: error: <problem>`` for each problem and exit with status 1."""
    for problem in problems:
        print(f"{plugin}: error: {problem}", file=sys.stderr)
    sys.exit(1)
