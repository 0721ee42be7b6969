"""The benchmark runner: suites, the grid of cells, executors, the SQLite store, results (rediscovery,
localization, removal, editing and replacement)."""

from .editing import EditingResults, load_editing_results, plan_editing, run_editing
from .removal import RemovalResults, load_removal_results, plan_removal, run_removal
from .replacement import ReplacementResults, load_replacement_results, plan_replacement, run_replacement
from .localization import LocalizationResults, load_localization_results, plan_localization, run_localization
from .results import Results, load_results
from .run import plan_run, run
from .suite import MethodSpec, Suite, load_suite

__all__ = ["LocalizationResults", "MethodSpec", "Results", "Suite", "load_localization_results", "load_results",
           "load_suite", "plan_localization", "plan_removal", "plan_run", "run", "run_localization", "run_removal",
           "RemovalResults", "load_removal_results", "EditingResults", "load_editing_results", "plan_editing",
           "run_editing", "ReplacementResults", "load_replacement_results", "plan_replacement", "run_replacement"]
