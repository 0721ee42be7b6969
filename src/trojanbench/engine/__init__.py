"""The task-agnostic engine: cells and content keys, the resumable loop with its one failure path, executors,
the SQLite store, statistics, provenance, suite loading, and the :class:`Task` every task is. It imports no task
and no report."""

from .cells import Cell, code_version, content_key
from .execute import Outcome, attempt, time_budget
from .loop import run_pending
from .store import CellTable, Store
from .suite import MethodSpec, Suite, load_suite
from .task import Task

__all__ = ["Cell", "CellTable", "MethodSpec", "Outcome", "Store", "Suite", "Task", "attempt", "code_version",
           "content_key", "load_suite", "run_pending", "time_budget"]
