"""The benchmark runner: suites, the grid of cells, executors, the SQLite store, results."""

from .results import Results, load_results
from .run import plan_run, run
from .suite import MethodSpec, Suite, load_suite

__all__ = ["MethodSpec", "Results", "Suite", "load_results", "load_suite", "plan_run", "run"]
