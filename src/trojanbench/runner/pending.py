"""The resumable loop shared by the tasks that run in this process (localization, removal, editing)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable

from .store import Store

log = logging.getLogger(__name__)


def run_pending(out: str | Path, cells: list[Any], record: dict, provenance: dict,
                finished_keys: Callable[[Store], set[str]],
                compute: Callable[[Store, int, list[Any]], Iterable[Any]],
                progress: Callable[[int, int, Any], None] | None = None, *, report: bool = True,
                what: str = "cells") -> None:
    """Record a run in ``out``'s store, compute the ``cells`` it does not hold yet (``compute(store, run_id,
    todo)`` commits each and yields it), call ``progress(done, total, cell)`` after each, mark the run finished
    and, with ``report``, rewrite the report."""
    store = Store(out)
    try:
        run_id = store.start_run(record, provenance)
        done = finished_keys(store)
        todo = [cell for cell in cells if cell.key not in done]
        log.info("%d %s: %d already done, %d to compute", len(cells), what, len(cells) - len(todo), len(todo))
        finished = len(cells) - len(todo)
        for cell in compute(store, run_id, todo):
            finished += 1
            if progress is not None:
                progress(finished, len(cells), cell)
        store.finish_run(run_id)
    finally:
        store.close()
    if report:
        from ..report import write_report

        write_report(out)

