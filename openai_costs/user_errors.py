"""How both plugins stop on a problem the user must fix: one line per problem, exit status
1, no traceback.

Run by hand, each line goes to stderr as ``<plugin>: error: <problem>``. Run by Meltano
(which hands the plugin a logging configuration in ``SINGER_SDK_LOG_CONFIG``), the same
line goes through the plugin's logger at error level, so Meltano's log shows it as an
error rather than as plain output.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import NoReturn

from openai_costs.printable import printable


def report(plugin: str, problems: Iterable[object]) -> None:
    """Show ``<plugin>: error: <problem>`` for each problem, as an error, each one line
    (control characters in a problem, from a name it quotes, are shown escaped)."""
    lines = [f"{plugin}: error: {printable(problem)}" for problem in problems]
    if "SINGER_SDK_LOG_CONFIG" in os.environ:
        logger = logging.getLogger(plugin)
        for line in lines:
            logger.error(line)
    else:
        for line in lines:
            print(line, file=sys.stderr)


def stop(plugin: str, problems: Iterable[object]) -> NoReturn:
    """Report the problems and exit with status 1."""
    report(plugin, problems)
    sys.exit(1)
