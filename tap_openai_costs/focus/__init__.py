"""OpenAI's cost rows in FOCUS 1.2 (the FinOps Foundation's cost data model), behind one
import: :mod:`.line_items` (OpenAI's line item text read into its parts), :mod:`.rows` (a
``costs`` record as a FOCUS CostAndUsage row, and the stream's schema), :mod:`.stream` (the
``focus_costs`` stream, written as the ``costs`` rows go out). Rules: docs/focus.md.
"""

from tap_openai_costs.focus.stream import FocusCostsStream

__all__ = ["FocusCostsStream"]
