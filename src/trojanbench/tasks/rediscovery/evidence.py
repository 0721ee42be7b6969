"""Each judge's evidence (:mod:`trojanbench.judges.evidence`) on the cells the report's gallery shows (the first seed
of every trojan), computed once per cell and judge after the run's cells and stored; the gallery draws it."""

from __future__ import annotations

import logging
import time

from ...imaging import from_uint8
from ...judges.evidence import find_evidence
from ...progress import Step

log = logging.getLogger(__name__)


def gallery_cells(cells: list, seeds) -> list:
    """The finished cells with images of the first of ``seeds`` (what the report's gallery shows)."""
    first = min(seeds)
    return [cell for cell in cells if cell.seed == first and cell.status == "ok" and cell.image_file]


def compute_evidence(plan, store, questions: dict, progress=None) -> None:
    """Find and store every judge's evidence on the gallery's cells not yet in ``store`` (``questions``:
    ``{(trojan, seed): Question}``), naming each on the run's ``progress`` display."""
    planned = {cell.key for cell in plan.cells}
    done, total = store.evidence(), len(plan.cells)
    rows = [row for row in gallery_cells(store.cells(), plan.suite.seeds) if row.key in planned]
    start, computed = time.perf_counter(), 0
    for row in rows:
        images = from_uint8(store.load_images(row))
        for judge in plan.judges:
            if (row.key, judge.name) in done:
                continue
            if progress is not None:
                progress(total, total, Step(f"judge evidence: {judge.name} · {row.method} · {row.trojan}"))
            evidence = find_evidence(judge, images, questions[(row.trojan, row.seed)])
            store.record_evidence(row.key, judge.name, evidence.to_dict())
            computed += 1
    if computed:
        log.info("judge evidence: %d cells x judges (%.1f s)", computed, time.perf_counter() - start)
