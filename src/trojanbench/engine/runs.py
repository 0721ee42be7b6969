"""Which cells are a task's results (one rule for every task), and how a task's run appears in each export.

The rule: a task's results are the cells planned by its latest run that planned at least one finished cell (a run
stopped before its first cell does not hide the results of the one before it). Runs recorded by trojanbench 0.1.0
for the rediscovery task did not list their cells; such a run counts every cell of its task.
"""

from __future__ import annotations

import math
from typing import Any, Callable, TypeVar

C = TypeVar("C")

NO_RUN = {"suite": {}, "provenance": {}, "status": "unknown", "started": None}
DEFAULT_TASK = "rediscovery"
"""The task of a run whose suite names none (runs recorded by trojanbench 0.1.0)."""


def task_runs(runs: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """The runs of ``task``, oldest first."""
    return [r for r in runs if r["suite"].get("task", DEFAULT_TASK) == task]


def last_run_and_cells(runs: list[dict[str, Any]], task: str, cells: list[C],
                       key: Callable[[C], str]) -> tuple[dict[str, Any] | None, list[C]]:
    """The run whose cells are ``task``'s results among the finished ``cells`` (``None`` when no run of it has
    results), and those cells."""
    finished = {key(cell) for cell in cells}

    def planned(run: dict[str, Any]) -> set[str]:
        keys = run["suite"].get("cell_keys")
        return finished if keys is None else set(keys)

    run = next((r for r in reversed(task_runs(runs, task)) if finished & planned(r)), None)
    chosen = planned(run) if run else set()
    return run, [cell for cell in cells if key(cell) in chosen]


def run_of(results: Any) -> dict[str, Any]:
    """The task's last run with results, or an empty stand-in."""
    return results.run or NO_RUN


def run_header(results: Any) -> dict[str, Any]:
    """For the HTML report: the run's suite and provenance and how many cells the results hold."""
    run = run_of(results)
    return {"suite": run["suite"], "provenance": run["provenance"], "n_cells": len(results.cells)}


def run_document(results: Any) -> dict[str, Any]:
    """For ``results.json``: the run's configuration (without the planned cell keys) and provenance."""
    run = run_of(results)
    return {"config": {k: v for k, v in run["suite"].items() if k != "cell_keys"}, "provenance": run["provenance"]}


def finite_or_none(value: Any) -> Any:
    """NaN as ``None`` (JSON has no NaN)."""
    return None if isinstance(value, float) and math.isnan(value) else value
