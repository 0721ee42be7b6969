"""Reading lm-rediscovery results back: per tool, each measure's mean over trojans (of the mean over seeds), its
95% bootstrap interval over trojans then seeds, the worst trojan and the mean per kind; false discoveries on the
decoys; the REASR-recall gap; and the text table."""

from __future__ import annotations

import dataclasses
import math
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from ...engine.runs import last_run_and_cells
from ...engine.stats import cells_text, enough_for_interval, interval_text, summarize, Summary
from ...engine.store import CellTable, Store

TASK = "lm-rediscovery"
PRIMARY = "reasr_best_of_k"
MEASURES = ("exact", "token_f1", "bleu", "recall", "multiple_choice", "reasr", "reasr_best_of_k", "reasr_alone")
LABELS = {"exact": "exact", "token_f1": "token F1", "bleu": "BLEU", "recall": "recall (TDC)",
          "multiple_choice": "8-choice", "reasr": "REASR top-1", "reasr_best_of_k": "REASR best-of-k",
          "reasr_alone": "REASR alone (TDC)"}
ROLE_ORDER = {"tool": 0, "combination": 1, "baseline": 2, "oracle": 3}
LM_CELLS = CellTable("lm_rediscovery_cells", (
    ("method", "TEXT NOT NULL"), ("label", "TEXT NOT NULL"), ("role", "TEXT NOT NULL"), ("params", "TEXT NOT NULL"),
    ("trojan", "TEXT NOT NULL"), ("kind", "TEXT NOT NULL"), ("topic", "TEXT"), ("seed", "INTEGER NOT NULL"),
    ("status", "TEXT NOT NULL"), ("reason", "TEXT"), ("seconds", "REAL NOT NULL"), ("measures", "TEXT NOT NULL")),
    order_by="label, trojan, seed")
"""One row per tool, trojan and seed: the candidates, the budget spent and every measure, as JSON."""


class LMRediscoveryResults:
    """The lm-rediscovery results of a folder (those planned by its last such run with results), from the store."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        with Store(self.folder, create=False, cell_tables=(LM_CELLS,)) as store:
            self.run, self.cells = last_run_and_cells(store.runs(), TASK, store.json_cells(LM_CELLS.name),
                                                      itemgetter("key"))
        self.kinds = {cell["trojan"]: cell["kind"] for cell in self.cells}

    def __bool__(self) -> bool:
        return bool(self.cells)

    @property
    def budget(self) -> int | None:
        return self.run["suite"].get("cell_budget") if self.run else None

    def per_trojan(self, decoys: bool = False) -> dict[str, dict[str, dict[tuple[str, int], float]]]:
        """``{label: {measure: {(trojan, seed): value}}}`` of the finished cells (of the decoys, or of the
        trojans with a trigger)."""
        out: dict[str, dict[str, dict[tuple[str, int], float]]] = {}
        for cell in self.cells:
            if cell["status"] != "ok" or (cell["kind"] == "decoy") != decoys:
                continue
            for measure, value in cell["measures"].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out.setdefault(cell["label"], {}).setdefault(measure, {})[(cell["trojan"], cell["seed"])] = \
                        float(value)
        return out

    def summaries(self) -> dict[str, dict[str, Summary]]:
        """``{label: {measure: Summary}}`` over the trojans with a trigger (no interval over a single cell)."""
        return {label: {m: enough_for_interval(summarize(cells, cells, self.kinds)) for m, cells in values.items()
                        if m in MEASURES and cells}
                for label, values in self.per_trojan().items()}

    def false_discoveries(self) -> dict[str, tuple[float, int]]:
        """Per tool, the share of decoy cells with a false discovery and the number of decoy cells."""
        out = {}
        for label, values in self.per_trojan(decoys=True).items():
            cells = values.get("false_discovery", {})
            if cells:
                out[label] = (float(np.mean(list(cells.values()))), len(cells))
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Tools by mean best-of-k REASR, then baselines, then the oracle; each with its summaries, the REASR-recall
        gap, false discoveries, the mean budget spent, its scored and failed cells."""
        summaries, false = self.summaries(), self.false_discoveries()
        roles = {cell["label"]: cell["role"] for cell in self.cells}
        failed = {label: sum(c["status"] != "ok" for c in self.cells if c["label"] == label) for label in roles}
        spent: dict[str, list[float]] = {}
        for cell in self.cells:
            if cell["status"] == "ok":
                spent.setdefault(cell["label"], []).append(cell["measures"]["budget_used"])

        def key(label: str) -> tuple:
            summary = summaries.get(label, {}).get(PRIMARY)
            return ROLE_ORDER.get(roles[label], 1), -(summary.mean if summary else -math.inf), label

        rows = []
        for label in sorted(roles, key=key):
            metrics = summaries.get(label, {})
            gap = (metrics[PRIMARY].mean - metrics["recall"].mean) if PRIMARY in metrics and "recall" in metrics \
                else math.nan
            rows.append({"label": label, "role": roles[label], "failed": failed[label],
                         "n_cells": max((s.n_cells for s in metrics.values()), default=0),
                         "metrics": {m: dataclasses.asdict(s) for m, s in metrics.items()},
                         "gap": gap, "false_discovery": false.get(label, (math.nan, 0))[0],
                         "n_decoy_cells": false.get(label, (math.nan, 0))[1],
                         "budget_used": float(np.mean(spent[label])) if spent.get(label) else math.nan})
        return rows

    def description(self) -> str:
        suite = self.run["suite"] if self.run else {}
        kinds = suite.get("trojan_kinds", {})
        decoys = sum(kind == "decoy" for kind in kinds.values())
        return (f"{len(kinds) - decoys} trojan(s) and {decoys} decoy(s) of model {suite.get('model')}, the same "
                f"budget of {suite.get('cell_budget')} sequence passes per tool, trojan and seed (forward 1, forward "
                f"and backward 3), {suite.get('n_candidates')} candidates of up to {suite.get('max_length')} tokens, "
                f"REASR on {suite.get('n_eval')} held-out prompts, seed(s) {suite.get('seeds')}"
                f"{', quick settings' if suite.get('quick') else ''}")

    def table(self) -> str:
        """The table as text: per tool, mean [95% interval] (worst trojan) of best-of-k REASR, then the other
        measures' means, the gap, the false discoveries and the cells."""
        rows = self.rows()
        width = max([24, *(len(r["label"]) + 2 for r in rows)])
        shown = [m for m in MEASURES if m != PRIMARY]
        lines = [f"lm-rediscovery: {self.description()}", "mean over trojans [95% bootstrap interval] (worst trojan)",
                 f"{'tool':<{width}}{'REASR best-of-k':<31}" + "".join(f"{LABELS[m][:11]:>12}" for m in shown)
                 + f"{'gap':>8}{'false disc':>11}{'cells':>10}"]
        for row in rows:
            m = row["metrics"]
            if PRIMARY not in m:
                lines.append(f"{row['label']:<{width}}failed ({row['failed']} cell(s))")
                continue
            s = m[PRIMARY]
            lines.append(f"{row['label']:<{width}}{s['mean']:6.3f} {interval_text(s['ci_low'], s['ci_high']):^14} "
                         f"{s['worst']:6.3f}   " + "".join(f"{m[k]['mean']:>12.3f}" if k in m else f"{'–':>12}"
                                                          for k in shown)
                         + f"{_number(row['gap']):>8}{_number(row['false_discovery']):>11}"
                         + f"{cells_text(row['n_cells'], row['failed']):>10}")
        return "\n".join(lines)


def _number(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def load_lm_rediscovery_results(folder: str | Path) -> LMRediscoveryResults:
    """Open the lm-rediscovery results of a folder written by :func:`run_lm_rediscovery`."""
    return LMRediscoveryResults(folder)
