"""Trojan localization (after Casper et al. 2023's attribution benchmark): can attribution tools point at a planted
patch trigger? Each map is scored against the patch's exact footprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...engine.task import Task
from ...registry import register_task
from . import section
from .results import LocalizationResults, load_localization_results
from .task import plan_localization, run_localization


class LocalizationTask(Task):
    name = "localization"
    description = "attribution tools point at each patch trigger; scored against the patch footprint"
    options = ("model", "data", "image_size")
    results_type = LocalizationResults
    report = section

    def run(self, suite: Any = None, *, out: str | Path, progress=None, **options: Any) -> LocalizationResults:
        return run_localization(suite, out=out, progress=progress, **options)


TASK = register_task(LocalizationTask())

__all__ = ["LocalizationResults", "LocalizationTask", "TASK", "load_localization_results", "plan_localization",
           "run_localization"]
