"""The resumable loop every task runs its cells through.

A run is recorded in the store with the keys of the cells it plans; the cells the store already holds are
skipped (their keys are content hashes, so a finished cell is never recomputed and a killed run resumes where it
stopped); the rest are computed and committed one by one. A cell's work runs inside
:func:`trojanbench.engine.execute.attempt`: an exception or a limit exceeded becomes a ``failed`` outcome with its
reason, never a stopped run.

Failed cells and reruns: a cell that failed *transiently* (its wall-clock guard, out of memory) is computed again
by the next run of the same command, once; if it fails again it stays failed. Other failures are deterministic
(the same code, input and seed fail the same way) and stay failed unless the run retries failed cells
(:func:`retrying_failed`, ``--retry-failed`` on the command line), which recomputes every failed cell.
"""

from __future__ import annotations

import contextvars
import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from .execute import is_transient
from .store import Store

log = logging.getLogger(__name__)

_retry_failed = contextvars.ContextVar("retry_failed", default=False)


@contextmanager
def retrying_failed(enabled: bool = True) -> Iterator[None]:
    """Runs started in this block recompute every failed cell, not only the transient failures."""
    token = _retry_failed.set(enabled)
    try:
        yield
    finally:
        _retry_failed.reset(token)


def cells_to_compute(store: Store, table: str, keys: list[str]) -> list[str]:
    """The ``keys`` a run must compute: those ``table`` does not hold, and the failed cells to retry."""
    held, retried = store.cell_statuses(table), store.retried_keys()
    retry_all = _retry_failed.get()

    def settled(key: str) -> bool:
        if key not in held:
            return False
        status, reason = held[key]
        if status != "failed":
            return True
        return not (retry_all or (is_transient(reason) and key not in retried))

    return [key for key in keys if not settled(key)]


def run_pending(store: Store, cells: list[Any], record: dict, provenance: dict, table: str,
                compute: Callable[[int, list[Any]], Iterable[Any]],
                progress: Callable[[int, int, Any], None] | None = None, *, what: str = "cells") -> int:
    """Record a run in ``store`` (``record`` plus the planned ``cell_keys``), compute the ``cells`` :func:`cells_to
    _compute` names (``compute(run_id, todo)`` commits each and yields it), call ``progress(done, total, cell)``
    after each (and ``progress.begin(done, total, todo)`` first, if it has one) and mark the run ``completed``
    (``interrupted`` if it was stopped); returns the run's id."""
    run_id = store.start_run({**record, "cell_keys": [cell.key for cell in cells]}, provenance)
    pending = set(cells_to_compute(store, table, [cell.key for cell in cells]))
    todo = [cell for cell in cells if cell.key in pending]
    retries = [key for key in pending if key in store.cell_statuses(table)]
    store.mark_retried(retries)
    log.info("%d %s: %d already done, %d to compute (%d failed before, retried)", len(cells), what,
             len(cells) - len(todo), len(todo), len(retries))
    finished = len(cells) - len(todo)
    if hasattr(progress, "begin"):  # a display that shows the running cell (trojanbench.progress.Progress)
        progress.begin(finished, len(cells), todo)
    try:
        for cell in compute(run_id, todo):
            finished += 1
            if progress is not None:
                progress(finished, len(cells), cell)
    except BaseException:  # stopped (Ctrl-C, SIGTERM) or broken: the committed cells stay; the run says it ended
        store.finish_run(run_id, "interrupted")
        raise
    store.finish_run(run_id)
    return run_id
