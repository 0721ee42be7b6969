"""The Replacement task: replace the model by simpler ones (concept bottlenecks, trees, pruned and distilled networks)
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
    description = "replace the model by simpler ones at fixed parameter budgets: fidelity, and do they expose the trojans"
    options = ("budgets",)

    def run(self, suite: Any = None, *, out: str | Path, progress=None, **options: Any) -> ReplacementResults:
        return run_replacement(suite, out=out, progress=progress, **options)

    def results(self, folder: str | Path) -> ReplacementResults:
        return ReplacementResults(folder)

    def section(self, results: ReplacementResults, files: Path) -> dict[str, Any]:
        return section.replacement_data(results, files)

    def document(self, results: ReplacementResults) -> dict[str, Any]:
        return section.replacement_document(results)

    def markdown(self, results: ReplacementResults) -> list[str]:
        return section.replacement_markdown(results)


TASK = register_task(ReplacementTask())

__all__ = ["ReplacementResults", "ReplacementTask", "TASK", "load_replacement_results", "plan_replacement", "run_replacement"]
