"""The removal task: does a tool's rediscovery output help remove the trojan? Guided unlearning and pruning with
every guidance source beside no guidance, noise, the true trigger and reference defences, scored on held-out
trigger variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...engine.task import Task
from ...registry import register_task
from . import section
from .results import RemovalResults, load_removal_results
from .task import plan_removal, run_removal


class RemovalTask(Task):
    name = "removal"
    description = "each tool's rediscovery images (in OUT) guide removing the trojan, beside controls and defences"
    options = ("budgets", "model", "data", "image_size")
    results_type = RemovalResults
    report = section

    def run(self, suite: Any = None, *, out: str | Path, progress=None, **options: Any) -> RemovalResults:
        return run_removal(suite, out=out, progress=progress, **options)


TASK = register_task(RemovalTask())

__all__ = ["RemovalResults", "RemovalTask", "TASK", "load_removal_results", "plan_removal", "run_removal"]
