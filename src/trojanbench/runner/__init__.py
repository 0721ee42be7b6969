"""The benchmark runner: suites, the grid of cells, executors, the SQLite store, results (rediscovery and
localization)."""

from .localization import LocalizationResults, load_localization_results, plan_localization, run_localization
from .results import Results, load_results
from .run import plan_run, run
from .suite import MethodSpec, Suite, load_suite

__all__ = ["LocalizationResults", "MethodSpec", "Results", "Suite", "load_localization_results", "load_results",
           "load_suite", "plan_localization", "plan_run", "run", "run_localization"]
