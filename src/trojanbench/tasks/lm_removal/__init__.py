"""Language-model trojan removal: unlearn each trojan with the triggers the lm-rediscovery tools recovered (and
with none, random tokens and the true trigger), on a defender's small clean budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...engine.task import Task
from ...registry import register_task
from . import section
from .results import LMRemovalResults
from .task import plan_lm_removal, run_lm_removal


class LMRemovalTask(Task):
    name = "lm-removal"
    description = "unlearn a language model's trojans with the recovered triggers (into an lm-rediscovery folder)"
    options = ("model", "executor", "ray_address", "workers", "device")
    results_type = LMRemovalResults
    report = section

    def run(self, suite: Any = None, *, out: str | Path, progress=None, **options: Any) -> LMRemovalResults:
        return run_lm_removal(suite, out=out, progress=progress, **options)


TASK = register_task(LMRemovalTask())

__all__ = ["LMRemovalResults", "LMRemovalTask", "TASK", "plan_lm_removal", "run_lm_removal"]
