"""The editing section of the report: per editor, success at implanting the rules and the side effects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...engine.runs import run_document, run_header
from ...engine.stats import cells_text, interval_text
from .results import LABELS, MEASURES, EditingResults


def data(results: EditingResults, files: Path | None = None) -> dict[str, Any]:
    return {"rows": results.rows(), "measures": MEASURES, "labels": LABELS, "description": results.description(),
            **run_header(results), "failed": [c for c in results.cells if c["status"] != "ok"]}


def document(results: EditingResults) -> dict[str, Any]:
    """The editing part of ``results.json``: config, per-editor summaries and every edit's measures."""
    return {**run_document(results), "rows": results.rows(), "edits": results.cells}


def markdown(results: EditingResults) -> list[str]:
    lines = ["## Editing: implant a new rule cleanly", "", results.description(), "",
             "| editor | success | 95% CI | worst | " + " | ".join(LABELS[m] for m in MEASURES[1:]) + " | cells |",
             "|---|---|---|---|" + "---|" * len(MEASURES)]
    for row in results.rows():
        m, cells = row["metrics"], cells_text(row["n_cells"], row["failed"])
        if "success" not in m:
            lines.append(f"| {row['label']} | failed |" + " |" * (len(MEASURES) + 1) + f" {cells} |")
            continue
        s = m["success"]
        lines.append(f"| {row['label']} | {s['mean']:.3f} | {interval_text(s['ci_low'], s['ci_high'], '.2f')} | "
                     f"{s['worst']:.3f} | " + " | ".join(f"{m[k]['mean']:.3f}" if k in m else "" for k in MEASURES[1:])
                     + f" | {cells} |")
    return lines
