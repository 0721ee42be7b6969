"""The resumable loop every task runs its cells through.

A run is recorded in the store with the keys of the cells it plans; the cells the store already holds are
skipped (their keys are content hashes, so a finished cell is never recomputed and a killed run resumes where it
stopped); the rest are computed and committed one by one. A cell's work runs inside
:func:`trojanbench.engine.execute.attempt`: an exception or running past the time budget becomes a ``failed``
outcome with its reason, never a stopped run.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from .store import Store

log = logging.getLogger(__name__)


def run_pending(store: Store, cells: list[Any], record: dict, provenance: dict, table: str,
                compute: Callable[[int, list[Any]], Iterable[Any]],
                progress: Callable[[int, int, Any], None] | None = None, *, what: str = "cells") -> int:
    """Record a run in ``store`` (``record`` plus the planned ``cell_keys``), compute the ``cells`` whose keys
    ``table`` does not hold yet (``compute(run_id, todo)`` commits each and yields it), call ``progress(done, total,
    cell)`` after each and mark the run finished; returns the run's id."""
    run_id = store.start_run({**record, "cell_keys": [cell.key for cell in cells]}, provenance)
    done = store.finished_keys(table)
    todo = [cell for cell in cells if cell.key not in done]
    log.info("%d %s: %d already done, %d to compute", len(cells), what, len(cells) - len(todo), len(todo))
    finished = len(cells) - len(todo)
    for cell in compute(run_id, todo):
        finished += 1
        if progress is not None:
            progress(finished, len(cells), cell)
    store.finish_run(run_id)
    return run_id
