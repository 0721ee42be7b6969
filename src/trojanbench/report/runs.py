"""How a task's last run appears in each export: its suite and provenance (every task's section has them)."""

from __future__ import annotations

from typing import Any

NO_RUN = {"suite": {}, "provenance": {}, "status": "unknown", "started": None}


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
