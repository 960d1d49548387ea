"""Lines other libraries log at info level that tell an operator nothing, moved to debug.

httpx logs every request it makes ("HTTP Request: POST …") and the Singer SDK says how it
read the settings ("Skipping parse of env var settings...", and one "Parsing '…' config
from env variable" line per setting with ``--config ENV``) and how it wired the tap's
streams ("Added 'cost_month_layouts' as child stream to 'costs'"): at info level they
crowd the lines a team reads, and nobody can act on them. A filter relabels them as debug
lines and lets them through only when the plugin logs at debug level.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

#: The Singer SDK's start-up lines: where the settings came from (singer_sdk PluginBase),
#: each child stream wired to its parent (singer_sdk Tap), as their unformatted messages.
_SDK_STARTUP_LINES = frozenset(
    {
        "Skipping parse of env var settings...",
        "Parsing env var for settings config...",
        "Added '%s' as child stream to '%s'",
    }
)


class _ToDebug(logging.Filter):
    """Relabels matching info lines as debug; keeps them only if the plugin logs debug."""

    def __init__(self, plugin: str, matches: Callable[[logging.LogRecord], bool]) -> None:
        super().__init__()
        self.plugin = plugin
        self.matches = matches

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not self.matches(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(self.plugin).isEnabledFor(logging.DEBUG)


def quiet_library_lines(plugin: str) -> None:
    """Move httpx's per-request lines and the SDK's start-up lines to debug level.

    Call before the plugin's ``__init__`` (the SDK logs the settings line in it); calling
    it again changes nothing."""
    for name, matches in (
        ("httpx", _every_line),
        ("singer_sdk.configuration._dict_config", _every_line),
        (plugin, _sdk_startup_line),
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ToDebug) and f.plugin == plugin for f in logger.filters):
            logger.addFilter(_ToDebug(plugin, matches))


def _every_line(record: logging.LogRecord) -> bool:
    return True


def _sdk_startup_line(record: logging.LogRecord) -> bool:
    return record.msg in _SDK_STARTUP_LINES
