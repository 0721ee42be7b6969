"""Reading removal results back: per budget, procedure and source, the mean over trojans of fidelity, DER, attack
success, clean accuracy and relearned attack success, the worst trojan and a 95% bootstrap interval over trojans
(then seeds); normalized scores; each source against random guidance; the verdict and the text table."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...engine.runs import last_run_and_cells
from ...engine.stats import (MIN_INTERVAL_CELLS, bootstrap_means, cells_text, Comparison, enough_for_interval,
                                 interval_text, paired_comparison, score_grid, summarize, Summary)
from .metrics import TrojanMeasure, der, fidelity, normalized_score
from .store import REMOVAL_MEASURES, RemovalStore

TASK = "removal"
ORACLE = "oracle"
ANCHOR = "identity"
PRIMARY_METRIC = "fidelity"

METRICS = ("fidelity", "der", "attack_success", "clean_accuracy", "robust_accuracy", "relearned_attack_success")
HIGHER_IS_BETTER = {"fidelity": True, "der": True, "attack_success": False, "clean_accuracy": True,
                    "robust_accuracy": True, "relearned_attack_success": False}
METRIC_LABELS = {"fidelity": "fidelity", "der": "DER", "attack_success": "ASR after", "clean_accuracy": "acc after",
                 "robust_accuracy": "robust acc", "relearned_attack_success": "ASR relearned"}


@dataclass(frozen=True)
class Normalized:
    """``(source - random) / (oracle - random)`` on mean fidelity, with a 95% bootstrap interval (NaN: the
    oracle beats random by too little to normalize by; the interval also under :data:`MIN_INTERVAL_CELLS` cells)."""

    value: float
    ci_low: float
    ci_high: float
    n_trojans: int


def normalized_interval(source: dict, random: dict, oracle: dict) -> Normalized:
    """:func:`~trojanbench.tasks.removal.metrics.normalized_score` of the means over the cells all three share, and its
    bootstrap over trojans then seeds (the same resamples for all three: paired)."""
    shared = sorted(set(source) & set(random) & set(oracle))
    if not shared:
        return Normalized(math.nan, math.nan, math.nan, 0)
    grids = [score_grid({cell: values[cell] for cell in shared})[1] for values in (source, random, oracle)]
    value = normalized_score(*(float(np.nanmean(g)) for g in grids))
    boots = [bootstrap_means(g) for g in grids]
    gap = boots[2] - boots[1]
    ratios = np.where(gap >= 0.05, (boots[0] - boots[1]) / np.where(gap == 0, 1, gap), np.nan)
    finite = ratios[np.isfinite(ratios)]
    enough = len(finite) > len(ratios) // 2 and len(shared) >= MIN_INTERVAL_CELLS
    low, high = np.percentile(finite, [2.5, 97.5]) if enough else (math.nan, math.nan)
    return Normalized(value, float(low), float(high), len({t for t, _ in shared}))


class RemovalResults:
    """The removal results of a folder (those planned by its last removal run with results), from the store alone."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        with RemovalStore(self.folder, create=False) as store:
            self.run, self.cells = last_run_and_cells(store.runs(), TASK, store.removal_cells(), lambda cell: cell.key)
            scores = store.removal_scores()
        self._scores = {cell.key: scores.get(cell.key, {}) for cell in self.cells}
        self.kinds: dict[str, str] = dict(self.run["suite"].get("trojan_kinds", {})) if self.run else {}

    def __bool__(self) -> bool:
        return bool(self.cells)

    @property
    def budgets(self) -> list[str]:
        return list(self.run["suite"].get("budgets", [])) if self.run else []

    @property
    def trojans(self) -> list[str]:
        return list(self.run["suite"].get("trojan_names", [])) if self.run else []

    def _measures(self, budget: str, model_role: str) -> dict[tuple[str, str], dict[tuple[str, int], dict]]:
        """``{(procedure, source): {(trojan, seed): measures}}`` of finished edits."""
        out: dict[tuple[str, str], dict[tuple[str, int], dict]] = {}
        for cell in self.cells:
            if cell.budget != budget or cell.model_role != model_role or cell.status != "ok":
                continue
            for trojan, measures in self._scores[cell.key].items():
                out.setdefault((cell.procedure, cell.source), {})[(trojan, cell.seed)] = measures
        return out

    def per_trojan(self, budget: str, model_role: str = "trojaned") -> dict[tuple[str, str], dict[str, dict]]:
        """``{(procedure, source): {metric: {(trojan, seed): value}}}``, fidelity and DER against the unedited
        model (``identity``) on the same model, trojan and seed."""
        measures = self._measures(budget, model_role)
        anchor = measures.get((ANCHOR, "-"), {})
        out: dict[tuple[str, str], dict[str, dict]] = {}
        for entry, cells in measures.items():
            values: dict[str, dict] = {metric: {} for metric in METRICS}
            for cell, after in cells.items():
                for metric in REMOVAL_MEASURES:
                    values[metric][cell] = after[metric]
                if cell in anchor:
                    pre = TrojanMeasure(*(anchor[cell][m] for m in ("clean_accuracy", "attack_success",
                                                                    "robust_accuracy")))
                    post = TrojanMeasure(after["clean_accuracy"], after["attack_success"], after["robust_accuracy"])
                    if model_role == "trojaned":  # a clean model has no attack success to remove
                        values["fidelity"][cell] = fidelity(pre, post)
                    values["der"][cell] = der(pre, post)
            out[entry] = values
        return out

    def summaries(self, budget: str, model_role: str = "trojaned") -> dict[tuple[str, str], dict[str, Summary]]:
        """``{(procedure, source): {metric: Summary}}``: mean over trojans, 95% interval (NaN under
        :data:`MIN_INTERVAL_CELLS` cells), worst (lowest) trojan."""
        kinds = {t: self.kinds.get(t, "?") for t in self.trojans}
        out: dict[tuple[str, str], dict[str, Summary]] = {}
        for entry, values in self.per_trojan(budget, model_role).items():
            out[entry] = {metric: enough_for_interval(summarize(cells, cells, kinds))
                          for metric, cells in values.items() if cells and all(np.isfinite(v) for v in cells.values())}
        return out

    def normalized(self, budget: str, kind: str | None = None) -> dict[tuple[str, str], Normalized]:
        """Each guided source's normalized score on fidelity (per procedure; one kind of trojan if given)."""
        values = self.per_trojan(budget)
        out = {}
        for (procedure, source), metrics in values.items():
            controls = values.get((procedure, "random")), values.get((procedure, ORACLE))
            if source == "-" or None in controls:
                continue
            keep = (lambda cells: {c: v for c, v in cells.items() if kind is None or self.kinds.get(c[0]) == kind})
            out[(procedure, source)] = normalized_interval(keep(metrics[PRIMARY_METRIC]),
                                                           keep(controls[0][PRIMARY_METRIC]),
                                                           keep(controls[1][PRIMARY_METRIC]))
        return out

    def versus_random(self, budget: str) -> dict[tuple[str, str], Comparison]:
        """Each guided source minus ``random`` guidance of the same procedure, by fidelity (paired bootstrap; no
        interval under :data:`MIN_INTERVAL_CELLS` shared cells)."""
        values = self.per_trojan(budget)
        out = {}
        for (procedure, source), metrics in values.items():
            random = values.get((procedure, "random"))
            if source in ("-", "random") or random is None:
                continue
            out[(procedure, source)] = enough_for_interval(paired_comparison(
                f"{procedure} <- {source}", f"{procedure} <- random", metrics[PRIMARY_METRIC], random[PRIMARY_METRIC]))
        return out

    def source_roles(self) -> dict[str, str]:
        """``{source: control | oracle | tool | baseline}`` of the guided edits."""
        roles = {"none": "control", "random": "control", ORACLE: "oracle", "-": "defence"}
        provenance = self.run["suite"].get("source_roles", {}) if self.run else {}
        return {cell.source: roles.get(cell.source, provenance.get(cell.source, "tool")) for cell in self.cells}

    def rows(self, budget: str) -> list[dict[str, Any]]:
        """Display rows for one budget: per procedure, the oracle, tools by normalized score, the controls; then
        the reference defences and the unedited anchor. ``n_cells``: the (trojan, seed) cells the trojaned model's
        statistics rest on; ``failed``: those whose edit failed (not scored; an edit for no one trojan fails all)."""
        summaries, normalized, versus = self.summaries(budget), self.normalized(budget), self.versus_random(budget)
        roles, procedure_roles = self.source_roles(), {c.procedure: c.role for c in self.cells}
        clean = self.summaries(budget, "clean")
        failed: dict[tuple[str, str], int] = {}
        for cell in self.cells:
            if cell.budget == budget and cell.model_role == "trojaned" and cell.status != "ok":
                entry = (cell.procedure, cell.source)
                failed[entry] = failed.get(entry, 0) + (1 if cell.trojan else len(self.trojans))
        entries = set(summaries) | set(failed)
        order = {"oracle": 0, "tool": 1, "baseline": 1, "control": 2, "defence": 3}

        def sort_key(entry):
            procedure, source = entry
            score = normalized.get(entry)
            return (procedure_roles.get(procedure) != "procedure", procedure == ANCHOR, procedure,
                    order.get(roles.get(source, "tool"), 1),
                    -(score.value if score and np.isfinite(score.value) else -np.inf), source)

        rows = []
        for entry in sorted(entries, key=sort_key):
            procedure, source = entry
            rows.append({"procedure": procedure, "source": source, "role": roles.get(source, "tool"),
                         "label": procedure if source == "-" else f"{procedure} <- {source}",
                         "metrics": {m: dataclasses.asdict(s) for m, s in summaries.get(entry, {}).items()},
                         "normalized": normalized.get(entry), "versus_random": versus.get(entry),
                         "clean_model": {m: dataclasses.asdict(s) for m, s in clean.get(entry, {}).items()},
                         "n_cells": max((s.n_cells for s in summaries.get(entry, {}).values()), default=0),
                         "failed": failed.get(entry, 0)})
        return rows

    def clean_damage(self, budget: str) -> dict[tuple[str, str], float]:
        """Mean clean-accuracy change each edit causes on the clean model (``identity`` on it as reference)."""
        values = self.per_trojan(budget, "clean")
        anchor = values.get((ANCHOR, "-"), {}).get("clean_accuracy", {})
        out = {}
        for entry, metrics in values.items():
            shared = [c for c in metrics["clean_accuracy"] if c in anchor]
            if shared:
                out[entry] = float(np.mean([metrics["clean_accuracy"][c] - anchor[c] for c in shared]))
        return out

    def verdict(self, budget: str) -> str:
        """One sentence per guided procedure: does any tool's guidance beat random guidance by fidelity?"""
        roles = self.source_roles()
        sentences = []
        for procedure in sorted({p for p, s in self.versus_random(budget)}):
            tools = {s: c for (p, s), c in self.versus_random(budget).items()
                     if p == procedure and roles.get(s) in ("tool", "baseline")}
            if not tools:
                sentences.append(f"{procedure}: no tool guidance in this folder (run the rediscovery task into it).")
                continue
            winners = sorted((c for c in tools.values() if c.ci_low > 0), key=lambda c: -c.mean_difference)
            if winners:
                listed = ", ".join(f"{c.a.split(' <- ')[1]} {c.mean_difference:+.3f} "
                                   f"{interval_text(c.ci_low, c.ci_high, '+.3f')}" for c in winners)
                sentences.append(f"{procedure}: {len(winners)} of {len(tools)} guidance sources beat random guidance "
                                 f"by fidelity (paired 95% interval above 0): {listed}.")
            else:
                best = max(tools.values(), key=lambda c: c.mean_difference)
                sentences.append(f"{procedure}: no guidance source beats random guidance by fidelity; the closest, "
                                 f"{best.a.split(' <- ')[1]}, differs by {best.mean_difference:+.3f} "
                                 f"{interval_text(best.ci_low, best.ci_high, '+.3f')}.")
        return " ".join(sentences)

    def records(self) -> list[dict[str, Any]]:
        """One row per edit and trojan with its measures (fidelity and DER against the unedited model)."""
        rows = []
        for budget in self.budgets:
            for model_role in ("trojaned", "clean"):
                for (procedure, source), metrics in self.per_trojan(budget, model_role).items():
                    cells = sorted(metrics["clean_accuracy"])
                    for trojan, seed in cells:
                        rows.append({"budget": budget, "model": model_role, "procedure": procedure, "source": source,
                                     "trojan": trojan, "kind": self.kinds.get(trojan, "?"), "seed": seed,
                                     **{m: metrics[m].get((trojan, seed), math.nan) for m in METRICS}})
        return rows

    def description(self) -> str:
        suite = self.run["suite"] if self.run else {}
        return (f"{len(self.trojans)} trojan(s), budgets {', '.join(self.budgets)}, seed(s) {suite.get('seeds')}"
                f"{', quick settings' if suite.get('quick') else ''}")

    def table(self) -> str:
        """The removal tables as text, one per budget, with the cells each row rests on."""
        lines = [f"removal: {self.description()}",
                 "mean over trojans [95% bootstrap interval] (worst trojan); normalized = (source - random) / "
                 "(oracle - random) on fidelity"]
        for budget in self.budgets:
            rows = self.rows(budget)
            damage = self.clean_damage(budget)
            width = max([28, *(len(r["label"]) + 2 for r in rows)])
            lines += ["", f"budget {budget}",
                      f"{'edit':<{width}}{'fidelity [95% CI] worst':<28}{'DER':>6}{'ASR':>7}{'acc':>7}{'relearn':>9}"
                      f"{'normalized [95% CI]':>24}{'clean-model dAcc':>18}{'cells':>15}"]
            for row in rows:
                metrics = row["metrics"]
                if not metrics:
                    lines.append(f"{row['label']:<{width}}failed ({row['failed']} cell(s))")
                    continue
                fid = metrics.get("fidelity")
                fid_text = (f"{fid['mean']:6.3f} {interval_text(fid['ci_low'], fid['ci_high']):^14} {fid['worst']:6.3f}"
                            if fid else "")
                norm = row["normalized"]
                norm_text = (f"{norm.value:6.2f} {interval_text(norm.ci_low, norm.ci_high):^14}"
                             if norm and np.isfinite(norm.value) else "")
                relearned = metrics.get("relearned_attack_success", {}).get("mean", math.nan)
                change = damage.get((row["procedure"], row["source"]))
                lines.append(f"{row['label']:<{width}}{fid_text:<28}{_mean(metrics, 'der'):>6.3f}"
                             f"{_mean(metrics, 'attack_success'):>7.3f}{_mean(metrics, 'clean_accuracy'):>7.3f}"
                             f"{relearned:>9.3f}{norm_text:>24}{'' if change is None else f'{change:+.3f}':>18}"
                             f"{cells_text(row['n_cells'], row['failed']):>15}")
            lines.append(self.verdict(budget))
        failed = [c for c in self.cells if c.status != "ok"]
        if failed:
            lines.append(f"{len(failed)} failed edit(s); see the report.")
        return "\n".join(lines)


def _mean(metrics: dict, name: str) -> float:
    return metrics.get(name, {}).get("mean", math.nan)


def load_removal_results(folder: str | Path) -> RemovalResults:
    """Open the removal results of a folder written by :func:`run_removal`."""
    return RemovalResults(folder)
