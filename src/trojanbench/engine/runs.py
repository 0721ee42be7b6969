"""Which cells are a task's results (one rule for every task), how a task's run appears in each export, and how
its failed cells are told.

The rule: a task's results are the cells planned by its latest run that planned at least one finished cell (a run
stopped before its first cell does not hide the results of the one before it). Runs recorded by trojanbench 0.1.0
for the rediscovery task did not list their cells; such a run counts every cell of its task.
"""

from __future__ import annotations

import math
from typing import Any, Callable, TypeVar

from .execute import is_transient

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


def failure_lines(failed: list[Any]) -> list[str]:
    """Why cells failed, and how to compute them again (nothing when none failed)."""
    if not failed:
        return []
    reasons: dict[str, int] = {}
    for cell in failed:
        reason = (cell.reason or "unknown").split(":", 1)[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    transient = sum(is_transient(cell.reason) for cell in failed)
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    again = (f"Rerun the same command to compute the {transient} transient one(s) (a timeout, out of memory) "
             f"again; add --retry-failed to retry all." if transient else
             "Add --retry-failed to the same command to compute them again.")
    return [f"{len(failed)} failed cell(s), not scored ({why}); a method with a failed cell is incomplete and not "
            f"ranked. {again} Reasons: the report's Failed cells."]
