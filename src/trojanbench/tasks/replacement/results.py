"""Reading replacement results back: fidelity per method, budget and distribution (mean over trojans, 95%
interval, worst trojan), the area under fidelity against log budget, the explanation check, the reproduction of
the original's trojans, and the text table."""

from __future__ import annotations

from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from ...engine.runs import last_run_and_cells
from ...engine.stats import cells_text, enough_for_interval, summarize, Summary
from ...engine.store import CellTable, Store
from .metrics import DISTRIBUTIONS, PER_TROJAN, area_under_log_budget

TASK = "replacement"
ORIGINAL, CONSTANT = "original", "constant"
LABELS = {"clean": "clean", "ood": "OOD", "triggered": "triggered", "near_miss": "near-miss"}
REPLACEMENT_CELLS = CellTable("replacement_cells", (
    ("method", "TEXT NOT NULL"), ("label", "TEXT NOT NULL"), ("role", "TEXT NOT NULL"), ("params", "TEXT NOT NULL"),
    ("budget", "TEXT NOT NULL"), ("budget_parameters", "INTEGER NOT NULL"), ("seed", "INTEGER NOT NULL"),
    ("status", "TEXT NOT NULL"), ("reason", "TEXT"), ("seconds", "REAL NOT NULL"), ("measures", "TEXT NOT NULL")),
    order_by="label, budget_parameters, seed")
"""One row per method, budget and seed, with the replacement's fidelity, attack success and explanation ranks."""


class ReplacementResults:
    """The replacement results of a folder (those planned by its last replacement run with results), from the
    store alone."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        with Store(self.folder, create=False, cell_tables=(REPLACEMENT_CELLS,)) as store:
            self.run, self.cells = last_run_and_cells(store.runs(), TASK, store.json_cells(REPLACEMENT_CELLS.name),
                                                      itemgetter("key"))
        self.kinds: dict[str, str] = dict(self.run["suite"].get("trojan_kinds", {})) if self.run else {}

    def __bool__(self) -> bool:
        return bool(self.cells)

    @property
    def labels(self) -> list[str]:
        """Methods in suite order, the anchors last."""
        order = list(dict.fromkeys(c["label"] for c in self.cells if c["role"] != "anchor"))
        return order + [ORIGINAL, CONSTANT]

    def budgets(self, label: str) -> list[int]:
        return sorted({c["budget_parameters"] for c in self.cells if c["label"] == label})

    def _scores(self, label: str, budget: int, distribution: str) -> dict[tuple[str, int], float]:
        """``{(trojan or distribution, seed): fidelity}`` of one method at one budget."""
        out = {}
        for cell in self.cells:
            if cell["label"] != label or cell["budget_parameters"] != budget:
                continue
            value = cell["measures"]["fidelity"][distribution]
            items = value.items() if isinstance(value, dict) else [(distribution, value)]
            out.update({(name, cell["seed"]): float(v) for name, v in items})
        return out

    def summary(self, label: str, budget: int, distribution: str) -> Summary:
        """Fidelity on one distribution: mean over trojans of the mean over seeds, interval (none over one cell)
        and worst trojan."""
        scores = self._scores(label, budget, distribution)
        kinds = self.kinds if distribution in PER_TROJAN else {distribution: distribution}
        return enough_for_interval(summarize(scores, scores, kinds))

    def curves(self) -> dict[str, dict[str, list[tuple[int, float, float]]]]:
        """``{label: {distribution: [(budget, mean, worst), ...]}}`` (budgets ascending)."""
        return {label: {d: [(b, (s := self.summary(label, b, d)).mean, s.worst) for b in self.budgets(label)]
                        for d in DISTRIBUTIONS} for label in self.labels}

    def areas(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per method (not the anchors) and distribution: the area under fidelity against log budget of the
        mean (``mean``) and of the worst trojan's curve (``worst``: the lowest area over trojans)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for label in self.labels:
            budgets = self.budgets(label)
            if label in (ORIGINAL, CONSTANT) or not budgets:
                continue
            for distribution in DISTRIBUTIONS:
                per_budget = [self._scores(label, b, distribution) for b in budgets]
                names = sorted({name for scores in per_budget for name, _ in scores})
                curves = {name: [float(np.mean([v for (n, _), v in scores.items() if n == name]))
                                 for scores in per_budget] for name in names}
                mean = [float(np.mean([curves[name][i] for name in names])) for i in range(len(budgets))]
                out.setdefault(label, {})[distribution] = {
                    "mean": area_under_log_budget(budgets, mean),
                    "worst": min(area_under_log_budget(budgets, curve) for curve in curves.values())}
        return out

    def statuses(self) -> dict[tuple[str, int], dict[str, int]]:
        """``{(label, budget): {status: count over seeds}}``."""
        out: dict[tuple[str, int], dict[str, int]] = {}
        for cell in self.cells:
            counts = out.setdefault((cell["label"], cell["budget_parameters"]), {})
            counts[cell["status"]] = counts.get(cell["status"], 0) + 1
        return out

    def cell_counts(self, label: str, budget: int | None = None) -> dict[str, int]:
        """A method's cells (at one budget, or all): ``n_cells`` fitted, ``failed`` those that failed or went over
        budget (scored as the constant predictor)."""
        statuses = [c["status"] for c in self.cells
                    if c["label"] == label and budget in (None, c["budget_parameters"])]
        return {"n_cells": statuses.count("ok"), "failed": len(statuses) - statuses.count("ok")}

    def explanations(self) -> list[dict[str, Any]]:
        """Per interpretable method and budget: each trojan's explanation rank (mean over seeds), their mean, the
        share of (trojan, seed) ranked first, and the concepts its replacement puts first for each target class
        (first seed)."""
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        for cell in sorted(self.cells, key=lambda c: c["seed"]):
            ranks = cell["measures"]["explanation_rank"]
            if cell["status"] != "ok" or not any(r is not None for r in ranks.values()):
                continue
            row = rows.setdefault((cell["label"], cell["budget_parameters"]),
                                  {"label": cell["label"], "budget": cell["budget"],
                                   "budget_parameters": cell["budget_parameters"], "ranks": {}, "top": {}})
            for trojan, rank in ranks.items():
                if rank is not None:
                    row["ranks"].setdefault(trojan, []).append(rank)
                    row["top"].setdefault(trojan, cell["measures"]["top_concepts"][trojan])
        out = []
        for row in rows.values():
            every = [rank for ranks in row["ranks"].values() for rank in ranks]
            row["ranks"] = {t: float(np.mean(r)) for t, r in row["ranks"].items()}
            row["mean_rank"] = float(np.mean(list(row["ranks"].values())))
            row["first"] = float(np.mean([rank == 1 for rank in every]))
            out.append(row)
        return sorted(out, key=lambda r: (self.labels.index(r["label"]), r["budget_parameters"]))

    def reproduction(self) -> dict[str, dict[str, float]]:
        """``{label@budget: {trojan: share of triggered images sent to the target}}`` (mean over seeds; fitted
        replacements only), the original first: does a replacement reproduce each trojan?"""
        out: dict[str, dict[str, list[float]]] = {}
        cells = sorted(self.cells, key=lambda c: (c["label"] != ORIGINAL, self.labels.index(c["label"]),
                                                  c["budget_parameters"]))
        for cell in cells:
            if cell["status"] != "ok":
                continue
            name = cell["label"] if cell["role"] == "anchor" else f"{cell['label']}@{cell['budget']}"
            for trojan, value in cell["measures"]["attack_success"].items():
                out.setdefault(name, {}).setdefault(trojan, []).append(value)
        return {name: {t: float(np.mean(v)) for t, v in values.items()} for name, values in out.items()}

    def description(self) -> str:
        suite = self.run["suite"] if self.run else {}
        kinds = suite.get("trojan_kinds", {})
        return (f"model {suite.get('model')} at budgets {', '.join(suite.get('budgets', []))} of its parameters, "
                f"{len(kinds)} trojan(s), {suite.get('n_fit')} fit images, {suite.get('n_eval')} clean and OOD test "
                f"images, {suite.get('n_per_trojan')} triggered and near-miss images per trojan, seed(s) "
                f"{suite.get('seeds')}{', quick settings' if suite.get('quick') else ''}")

    def table(self) -> str:
        """The replacement tables as text: area under fidelity vs log budget, fidelity per budget (each with the
        cells it rests on), explanations."""
        areas, statuses = self.areas(), self.statuses()
        width = max([24, *(len(label) + 2 for label in self.labels)])
        lines = [f"replacement: {self.description()}",
                 "area under fidelity vs log budget: mean (worst trojan)",
                 f"{'method':<{width}}" + "".join(f"{LABELS[d]:>18}" for d in DISTRIBUTIONS) + f"{'cells':>15}"]
        for label, values in areas.items():
            lines.append(f"{label:<{width}}" + "".join(f"{values[d]['mean']:>10.3f} ({values[d]['worst']:.3f})"
                                                      for d in DISTRIBUTIONS)
                         + f"{cells_text(**self.cell_counts(label)):>15}")
        lines += ["", "fidelity per budget (non-zero parameters): mean (worst trojan); * over budget or failed: "
                      "scored as the constant predictor",
                  f"{'method':<{width}}{'budget':>9}" + "".join(f"{LABELS[d]:>18}" for d in DISTRIBUTIONS)
                  + f"{'cells':>15}"]
        for label in self.labels:
            for budget in self.budgets(label):
                flag = "*" if set(statuses[(label, budget)]) - {"ok"} else " "
                cells = "".join(f"{(s := self.summary(label, budget, d)).mean:>10.3f} ({s.worst:.3f})"
                                for d in DISTRIBUTIONS)
                lines.append(f"{label:<{width}}{budget:>8}{flag}{cells}"
                             f"{cells_text(**self.cell_counts(label, budget)):>15}")
        explanations = self.explanations()
        if explanations:
            lines += ["", "explanation check: rank of the true trigger concept for the target class (1 = first)"]
            for row in explanations:
                ranks = ", ".join(f"{t} {r:g}" for t, r in row["ranks"].items())
                lines.append(f"{row['label']}@{row['budget']}: mean rank {row['mean_rank']:.1f}, first "
                             f"{row['first']:.0%}: {ranks}")
        return "\n".join(lines)


def load_replacement_results(folder: str | Path) -> ReplacementResults:
    """Open the replacement results of a folder written by :func:`run_replacement`."""
    return ReplacementResults(folder)
