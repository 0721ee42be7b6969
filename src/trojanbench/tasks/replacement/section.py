"""The replacement section of the report: fidelity-vs-budget curves per input distribution, the area under
them, fidelity per budget, the explanation check and which replacements reproduce which trojans."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...engine.runs import run_document, run_header
from ...figures import fidelity_curves
from ...engine.stats import cells_text
from .metrics import CHANCE_RANK, DISTRIBUTIONS
from .results import CONSTANT, LABELS, ORIGINAL, ReplacementResults


def _budget_rows(results: ReplacementResults) -> list[dict[str, Any]]:
    statuses, names = results.statuses(), {(c["label"], c["budget_parameters"]): c["budget"] for c in results.cells}
    return [{"label": label, "budget": budget, "name": names[(label, budget)], "status": statuses[(label, budget)],
             "fidelity": {d: asdict(results.summary(label, budget, d)) for d in DISTRIBUTIONS},
             **results.cell_counts(label, budget)}
            for label in results.labels for budget in results.budgets(label)]


def data(results: ReplacementResults, files: Path) -> dict[str, Any]:
    """Everything the replacement section shows (the figure written into ``files``)."""
    figure = fidelity_curves(results.curves(), LABELS, files / "replacement-fidelity.png", anchors=(ORIGINAL, CONSTANT))
    areas = results.areas()
    return {"description": results.description(), "figure": figure.relative_to(files.parent).as_posix(),
            "distributions": DISTRIBUTIONS, "labels": LABELS, "chance_rank": CHANCE_RANK, "areas": areas,
            "area_cells": {label: results.cell_counts(label) for label in areas},
            "budget_rows": _budget_rows(results), "explanations": results.explanations(),
            "trojans": list(results.kinds), "reproduction": results.reproduction(), **run_header(results),
            "not_ok": [c for c in results.cells if c["status"] != "ok"]}


def document(results: ReplacementResults) -> dict[str, Any]:
    """The replacement part of ``results.json``: config, areas, per-budget summaries, explanations, reproduction
    and every cell's measures."""
    return {**run_document(results), "areas": results.areas(), "budgets": _budget_rows(results),
            "explanations": results.explanations(),
            "reproduction": results.reproduction(), "cells": results.cells}


def markdown(results: ReplacementResults) -> list[str]:
    areas = results.areas()
    lines = ["## Replacement: simpler models at fixed parameter budgets", "", results.description(), "",
             "Area under fidelity vs log budget, mean (worst trojan):", "",
             "| method | " + " | ".join(LABELS[d] for d in DISTRIBUTIONS) + " | cells |",
             "|---|" + "---|" * (len(DISTRIBUTIONS) + 1)]
    for label, values in areas.items():
        lines.append(f"| {label} | " + " | ".join(f"{values[d]['mean']:.3f} ({values[d]['worst']:.3f})"
                                                  for d in DISTRIBUTIONS)
                     + f" | {cells_text(**results.cell_counts(label))} |")
    lines += ["", "Fidelity per budget (non-zero parameters), mean (worst trojan); * over budget or failed, scored as "
                  "the constant predictor:", "",
              "| method | budget | " + " | ".join(LABELS[d] for d in DISTRIBUTIONS) + " | cells |",
              "|---|---|" + "---|" * (len(DISTRIBUTIONS) + 1)]
    for row in _budget_rows(results):
        flag = "*" if set(row["status"]) - {"ok"} else ""
        lines.append(f"| {row['label']} | {row['budget']}{flag} | " + " | ".join(
            f"{row['fidelity'][d]['mean']:.3f} ({row['fidelity'][d]['worst']:.3f})" for d in DISTRIBUTIONS)
            + f" | {cells_text(row['n_cells'], row['failed'])} |")
    explanations = results.explanations()
    if explanations:
        trojans = list(results.kinds)
        lines += ["", "Explanation check: rank of the true trigger concept for the target class (1 = first):", "",
                  "| replacement | mean rank | first | " + " | ".join(trojans) + " |",
                  "|---|---|---|" + "---|" * len(trojans)]
        for row in explanations:
            lines.append(f"| {row['label']}@{row['budget']} | {row['mean_rank']:.1f} | {row['first']:.0%} | "
                         + " | ".join(f"{row['ranks'][t]:g}" if t in row["ranks"] else "" for t in trojans) + " |")
    return lines
