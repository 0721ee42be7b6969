"""Reading editing results back: per editor, the mean over rules (then seeds) of each measure with its 95% interval
and worst rule, the unedited model as the anchor row, and the text table."""

from __future__ import annotations

import dataclasses
import math
from operator import itemgetter
from pathlib import Path
from typing import Any

from ...engine.runs import last_run_and_cells
from ...engine.stats import cells_text, enough_for_interval, interval_text, summarize, Summary
from ...engine.store import CellTable, Store

TASK = "editing"
UNEDITED = "unedited"
MEASURES = ("success", "target_kept", "near_miss", "clean_accuracy_change", "relative_change", "changed_parameters")
HIGHER_IS_BETTER = {"success": True, "target_kept": True, "near_miss": False, "clean_accuracy_change": True,
                    "relative_change": False, "changed_parameters": False}
LABELS = {"success": "success", "target_kept": "target kept", "near_miss": "near-miss", "clean_accuracy_change":
          "clean dAcc", "relative_change": "edit size", "changed_parameters": "params changed"}
EDITING_CELLS = CellTable("editing_cells", (
    ("editor", "TEXT NOT NULL"), ("label", "TEXT NOT NULL"), ("role", "TEXT NOT NULL"), ("params", "TEXT NOT NULL"),
    ("rule", "TEXT NOT NULL"), ("kind", "TEXT NOT NULL"), ("seed", "INTEGER NOT NULL"), ("status", "TEXT NOT NULL"),
    ("reason", "TEXT"), ("seconds", "REAL NOT NULL"), ("measures", "TEXT NOT NULL")), order_by="label, rule, seed")
"""One row per editor, rule and seed, with the unedited and edited model's measures as JSON."""


class EditingResults:
    """The editing results of a folder (those planned by its last editing run with results), from the store alone."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        with Store(self.folder, create=False, cell_tables=(EDITING_CELLS,)) as store:
            self.run, self.cells = last_run_and_cells(store.runs(), TASK, store.json_cells(EDITING_CELLS.name),
                                                      itemgetter("key"))
        self.kinds = {cell["rule"]: cell["kind"] for cell in self.cells}

    def __bool__(self) -> bool:
        return bool(self.cells)

    def per_rule(self) -> dict[str, dict[str, dict[tuple[str, int], float]]]:
        """``{label: {measure: {(rule, seed): value}}}``, with the unedited model as the ``unedited`` row."""
        out: dict[str, dict[str, dict[tuple[str, int], float]]] = {}
        for cell in self.cells:
            if cell["status"] != "ok":
                continue
            m, where = cell["measures"], (cell["rule"], cell["seed"])
            before, after = m["before"], m["after"]
            rows = {cell["label"]: {**after,
                                    "clean_accuracy_change": after["clean_accuracy"] - before["clean_accuracy"],
                                    "relative_change": m["relative_change"],
                                    "changed_parameters": m["changed_parameters"]},
                    UNEDITED: {**before, "clean_accuracy_change": 0.0, "relative_change": 0.0,
                               "changed_parameters": 0}}
            for label, values in rows.items():
                for measure in MEASURES:
                    out.setdefault(label, {}).setdefault(measure, {})[where] = float(values[measure])
        return out

    def summaries(self) -> dict[str, dict[str, Summary]]:
        """``{label: {measure: Summary}}`` over rules then seeds (worst = lowest value; no interval over one cell)."""
        return {label: {measure: enough_for_interval(summarize(cells, cells, self.kinds))
                        for measure, cells in values.items()
                        if all(math.isfinite(v) for v in cells.values())}
                for label, values in self.per_rule().items()}

    def rows(self) -> list[dict[str, Any]]:
        """Editors by mean success, the unedited anchor last; ``n_cells``: the (rule, seed) cells each row's
        statistics rest on, ``failed``: its edits that failed (not scored)."""
        summaries = self.summaries()
        roles = {cell["label"]: cell["role"] for cell in self.cells} | {UNEDITED: "anchor"}
        failed = {label: sum(c["status"] != "ok" for c in self.cells if c["label"] == label) for label in roles}
        def success(label: str) -> float:
            summary = summaries.get(label, {}).get("success")
            return summary.mean if summary is not None else -math.inf

        order = sorted(set(summaries) | {label for label, n in failed.items() if n},
                       key=lambda label: (label == UNEDITED, -success(label), label))
        return [{"label": label, "role": roles.get(label, "editor"), "failed": failed.get(label, 0),
                 "n_cells": max((s.n_cells for s in summaries.get(label, {}).values()), default=0),
                 "metrics": {m: dataclasses.asdict(s) for m, s in summaries.get(label, {}).items()}} for label in order]

    def description(self) -> str:
        suite = self.run["suite"] if self.run else {}
        rules = suite.get("rules", {})
        return (f"{len(rules)} rule(s) ({', '.join(rules)}) on model {suite.get('model')}, {suite.get('n_images')} "
                f"exemplars each, budget {suite.get('budget')}, seed(s) {suite.get('seeds')}"
                f"{', quick settings' if suite.get('quick') else ''}")

    def table(self) -> str:
        """The editing table as text: per editor, mean [95% interval] of success, the side effects, the cells."""
        rows = self.rows()
        width = max([28, *(len(r["label"]) + 2 for r in rows)])
        lines = [f"editing: {self.description()}", "mean over rules [95% bootstrap interval] (worst rule)",
                 f"{'editor':<{width}}{'success':<30}" + "".join(f"{LABELS[m]:>15}" for m in MEASURES[1:])
                 + f"{'cells':>15}"]
        for row in rows:
            m = row["metrics"]
            if "success" not in m:
                lines.append(f"{row['label']:<{width}}failed ({row['failed']} edit(s))")
                continue
            s = m["success"]
            lines.append(f"{row['label']:<{width}}{s['mean']:6.3f} {interval_text(s['ci_low'], s['ci_high']):^14} "
                         f"{s['worst']:6.3f}   " + "".join(_cell(m, k) for k in MEASURES[1:])
                         + f"{cells_text(row['n_cells'], row['failed']):>15}")
        return "\n".join(lines)


def _cell(metrics: dict, measure: str) -> str:
    if measure not in metrics:
        return f"{'':>15}"
    value = metrics[measure]["mean"]
    return f"{value:>15.0f}" if measure == "changed_parameters" else f"{value:>15.3f}"


def load_editing_results(folder: str | Path) -> EditingResults:
    """Open the editing results of a folder written by :func:`run_editing`."""
    return EditingResults(folder)
