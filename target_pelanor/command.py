"""The ``target-pelanor`` command: the target's CLI, started as quickly as it can be
(:mod:`openai_costs.start_up`)."""

from __future__ import annotations

from openai_costs.start_up import imports_uncollected


def main() -> None:
    with imports_uncollected():
        from target_pelanor.target import TargetPelanor
    TargetPelanor.cli()
