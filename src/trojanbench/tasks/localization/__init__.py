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

CSV_FILE = "localization.csv"


class LocalizationTask(Task):
    name = "localization"
    description = "attribution tools point at each patch trigger; scored against the patch footprint"

    def run(self, suite: Any = None, *, out: str | Path, progress=None, **options: Any) -> LocalizationResults:
        return run_localization(suite, out=out, progress=progress, **options)

    def results(self, folder: str | Path) -> LocalizationResults:
        return LocalizationResults(folder)

    def section(self, results: LocalizationResults, files: Path) -> dict[str, Any]:
        return section.localization_data(results, files)

    def document(self, results: LocalizationResults) -> dict[str, Any]:
        return section.localization_document(results)

    def markdown(self, results: LocalizationResults) -> list[str]:
        return section.localization_markdown(results)

    def exports(self, results: LocalizationResults, folder: Path) -> list[Path]:
        return [results.to_csv(folder / CSV_FILE)]


TASK = register_task(LocalizationTask())

__all__ = ["LocalizationResults", "LocalizationTask", "TASK", "load_localization_results", "plan_localization",
           "run_localization"]
