"""OpenAI's line item text, read into its parts: model, usage kind, service tier, context
tier, tool and options (``priority | gpt-5.6-sol, output, long context``).

Only spellings seen in real exports, the Costs API or the issue that asked for them are
known (the table in docs/focus.md). OpenAI adds new ones every few months, so a line item
that does not fit is never an error: it is kept whole (the caller keeps the text in
``ChargeDescription``), none of its parts is guessed, and :class:`UnknownSpellings` counts
it for one warning at the end of the run. New models need no change here: any text before
the first comma is a model when what follows is a known usage kind or option.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from typing import NamedTuple

#: ``<tier> | …``: the service tier a line item was billed at.
TIERS = frozenset({"priority", "batch"})
#: ``<tool> | …`` or the whole line item: a tool billed per call or per use.
TOOLS = frozenset({"web search tool calls", "Vector storage"})
#: Whole line items that name a model without a usage kind.
BARE_MODELS = frozenset({"ada v2"})
#: Usage kinds as spelled, and how they are reported (``input_tokens`` is ``input``).
KINDS = {
    "input": "input",
    "output": "output",
    "cached input": "cached input",
    "input_tokens": "input",
    "audio": "audio",
}
#: A model's modality written after its name (``gpt-audio-mini-2025-12-15 audio, input``).
MODALITIES = ("audio",)
CONTEXT_TIERS = frozenset({"long context"})
#: Options after the model: image quality, search context size, image size (``1024x1024``).
OPTIONS = frozenset({"standard", "med"})
_IMAGE_SIZE = re.compile(r"[0-9]+x[0-9]+").fullmatch
#: Any model name (new ones come every month, fine-tuned ones carry quotes and colons).
_MODEL = re.compile(r"\S(?:.*\S)?").fullmatch


class LineItem(NamedTuple):
    """A line item's parts; None where the text has no such part."""

    model: str | None = None
    usage_kind: str | None = None
    service_tier: str | None = None
    context_tier: str | None = None
    tool: str | None = None
    options: str | None = None


@functools.lru_cache(maxsize=4096)  # few distinct spellings, read on every row
def parse(text: str) -> LineItem | None:
    """The parts of a line item, or None when its spelling is not one this module knows."""
    tier = tool = None
    rest = text
    if " | " in text:
        prefix, rest = text.split(" | ", 1)
        if prefix in TIERS:
            tier = prefix
        elif prefix in TOOLS:
            tool = prefix
        else:
            return None
    if rest in TOOLS and tool is None:
        return LineItem(service_tier=tier, tool=rest)
    if rest in BARE_MODELS:
        return LineItem(model=rest, service_tier=tier, tool=tool)
    model, *parts = rest.split(", ")
    if not parts or not _MODEL(model) or " | " in rest:
        return None
    modality = next((m for m in MODALITIES if model.endswith(f" {m}")), None)
    if modality is not None:
        model = model[: -len(modality) - 1]
    kind = context = None
    options: list[str] = []
    for part in parts:
        if part in KINDS and kind is None and not options and context is None:
            kind = KINDS[part]
        elif part in CONTEXT_TIERS and context is None:
            context = part
        elif part in OPTIONS or _IMAGE_SIZE(part):
            options.append(part)
        else:
            return None
    if modality is not None:
        if kind is None:
            return None
        kind = f"{modality} {kind}"
    return LineItem(model, kind, tier, context, tool, ", ".join(options) or None)


class UnknownSpellings:
    """Line items whose spelling is not known, counted per spelling, said once a run."""

    #: At most this many spellings are named in the warning; the rest are counted.
    NAMED = 20

    def __init__(self) -> None:
        self.rows: Counter[str] = Counter()

    def add(self, text: str) -> None:
        self.rows[text] += 1

    def say(self, logger: logging.Logger, stream: str) -> None:
        """One warning naming each unknown spelling and its rows (none: nothing said)."""
        if not self.rows:
            return
        named = [
            f"{text!r} ({rows} row{'' if rows == 1 else 's'})"
            for text, rows in self.rows.most_common(self.NAMED)
        ]
        more = len(self.rows) - len(named)
        logger.warning(
            "%s: %d line item spelling(s) the tap does not know yet, kept whole in "
            "ChargeDescription with their x_ line item columns empty: %s%s",
            stream,
            len(self.rows),
            ", ".join(named),
            f" and {more} more" if more > 0 else "",
        )
        self.rows.clear()
