"""The replacement task: replace the model by simpler ones (concept bottlenecks, trees, pruned and distilled networks)
at fixed parameter budgets, scored by fidelity and by whether they expose the trojans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...engine.task import Task
from ...registry import register_task
from . import section
from .results import ReplacementResults, load_replacement_results
from .task import plan_replacement, run_replacement


class ReplacementTask(Task):
    name = "replacement"
    description = "simpler models at fixed parameter budgets: how faithful, and do they expose the trojans"
    options = ("budgets",)
    results_type = ReplacementResults
    report = section

    def run(self, suite: Any = None, *, out: str | Path, progress=None, **options: Any) -> ReplacementResults:
        return run_replacement(suite, out=out, progress=progress, **options)


TASK = register_task(ReplacementTask())

__all__ = ["ReplacementResults", "ReplacementTask", "TASK", "load_replacement_results", "plan_replacement",
           "run_replacement"]
