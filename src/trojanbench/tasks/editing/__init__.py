"""The editing task: implant a new rule ("this icon / texture means this class") into the clean model from a few
exemplars, by the rank-one rewrite of Santurkar et al. (2021) beside fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...engine.task import Task
from ...registry import register_task
from . import section
from .results import EditingResults, load_editing_results
from .task import plan_editing, run_editing


class EditingTask(Task):
    name = "editing"
    description = "implant a new rule into the clean model (rank-one rewrite vs fine-tuning); held-out carriers"
    results_type = EditingResults
    report = section

    def run(self, suite: Any = None, *, out: str | Path, progress=None, **options: Any) -> EditingResults:
        return run_editing(suite, out=out, progress=progress, **options)


TASK = register_task(EditingTask())

__all__ = ["EditingResults", "EditingTask", "TASK", "load_editing_results", "plan_editing", "run_editing"]
