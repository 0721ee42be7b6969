"""The lm-removal section of the report: per guidance source, how much of the trojan the unlearning removed and
what it cost the clean model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ...engine.runs import finite_or_none, run_document, run_header
from ...engine.stats import cells_text, interval_text
from .results import LABELS, MEASURES, LMRemovalResults


def data(results: LMRemovalResults, files: Path | None = None) -> dict[str, Any]:
    return {"rows": results.rows(), "measures": MEASURES, "labels": LABELS, "before": results.before(),
            "description": results.description(), **run_header(results),
            "failed": [c for c in results.cells if c["status"] != "ok"]}


def document(results: LMRemovalResults) -> dict[str, Any]:
    """The lm-removal part of ``results.json``: config, per-source summaries and every edit's measures."""
    rows = [{**row, "normalized": finite_or_none(row["normalized"])} for row in results.rows()]
    return {**run_document(results), "before": results.before(), "rows": rows, "edits": results.cells}


def markdown(results: LMRemovalResults) -> list[str]:
    lines = ["## LM removal: unlearn the trojan with the recovered triggers", "", results.description(), "",
             "| source | role | fidelity | 95% CI | worst | normalized | " + " | ".join(LABELS[m] for m in MEASURES[1:])
             + " | cells |", "|---|---|---|---|---|---|" + "---|" * len(MEASURES)]
    for row in results.rows():
        m, cells = row["metrics"], cells_text(row["n_cells"], row["failed"])
        if "fidelity" not in m:
            lines.append(f"| {row['source']} | {row['role']} | failed |" + " |" * (len(MEASURES) + 2) + f" {cells} |")
            continue
        s, normalized = m["fidelity"], row["normalized"]
        lines.append(f"| {row['source']} | {row['role']} | {s['mean']:.3f} | "
                     f"{interval_text(s['ci_low'], s['ci_high'], '.2f')} | {s['worst']:.3f} | "
                     f"{'–' if math.isnan(normalized) else f'{normalized:.3f}'} | "
                     + " | ".join(f"{m[k]['mean']:.3f}" for k in MEASURES[1:]) + f" | {cells} |")
    return lines
