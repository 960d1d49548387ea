"""How both plugins stop on a problem the user must fix: one line per problem, exit status
1, no traceback.

Run by hand, each line goes to stderr as ``<plugin>: error: <problem>``. Run by Meltano
(which hands the plugin a logging configuration in ``SINGER_SDK_LOG_CONFIG``), the same
line goes through the plugin's logger at error level, so Meltano's log shows it as an
error rather than as plain output, with the problem's ``log_fields`` if it has them (a
month's problem: organization, month, status, reason).

Settings that cannot be used are the SDK's error lines, one per problem, then one more
line naming them all: ``meltano config test`` shows only a plugin's last line.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Sequence
from typing import NoReturn

from openai_costs.printable import printable


def report(plugin: str, problems: Iterable[object]) -> None:
    """Show ``<plugin>: error: <problem>`` for each problem, as an error, each one line
    (control characters in a problem, from a name it quotes, are shown escaped)."""
    problems = list(problems)
    lines = [f"{plugin}: error: {printable(problem)}" for problem in problems]
    if "SINGER_SDK_LOG_CONFIG" in os.environ:
        logger = logging.getLogger(plugin)
        for line, problem in zip(lines, problems, strict=True):
            logger.error(line, extra=getattr(problem, "log_fields", None))
    else:
        for line in lines:
            print(line, file=sys.stderr)


def settings_not_usable(plugin: str, problems: Sequence[str]) -> NoReturn:
    """The SDK's lines for settings that cannot be used (one error line each, through the
    plugin's logger), then the line naming them all, last; exit status 1."""
    logger = logging.getLogger(plugin)
    problems = [printable(problem) for problem in problems]  # settings' values quoted
    for problem in problems:
        logger.error("%s", problem)
    if len(problems) == 1:
        logger.error("Config validation failed: %s", problems[0])
    else:
        named = " ".join(f"({number}) {problem}" for number, problem in enumerate(problems, 1))
        logger.error("Config validation failed, %d problems: %s", len(problems), named)
    sys.exit(1)


def meltano_name(kind: str, plugin: str) -> str:
    """The plugin's name in the Meltano project running it (Meltano sets
    ``MELTANO_EXTRACTOR_NAME`` or ``MELTANO_LOADER_NAME``: ``target-pelanor--acme``), so
    a fix can name the plugin to change; ``plugin`` when run by hand."""
    return os.environ.get(f"MELTANO_{kind.upper()}_NAME") or plugin


def organization_required(kind: str, plugin: str, serves: str) -> str:
    """The line for a missing ``organization_id``. Run by Meltano, it names the command
    that sets it on this plugin; run as the parent plugin itself, it also says where each
    organization has plugins of its own, which to test or run instead."""
    text = f"organization_id is required: the OpenAI organization (org-...) this {serves}"
    if f"MELTANO_{kind.upper()}_NAME" not in os.environ:
        return text
    name = meltano_name(kind, plugin)
    text += f"; set it (meltano config set {name} organization_id org-...)"
    if name == plugin:
        text += (
            ", or, where each organization has plugins of its own, test or run those "
            f"instead (meltano config test {plugin}--<org>, meltano run openai-costs-<org>)"
        )
    return text


def exit_on_problems(plugin: str, problems: Iterable[object]) -> NoReturn:
    """Report the problems and exit with status 1."""
    report(plugin, problems)
    sys.exit(1)
