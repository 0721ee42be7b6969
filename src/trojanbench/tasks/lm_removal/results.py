"""Reading lm-removal results back: per guidance source, the mean over trojans (then seeds) of fidelity, attack
success after, clean accuracy and perplexity after, with 95% intervals and the worst trojan; each source's
normalized fidelity ``(source - random) / (oracle - random)``; and the text table."""

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
from ..removal.metrics import TrojanMeasure, fidelity, normalized_score

TASK = "lm-removal"
NONE, ORACLE, RANDOM = "none", "oracle", "random_tokens"
MEASURES = ("fidelity", "attack_success", "clean_accuracy", "clean_perplexity")
LABELS = {"fidelity": "fidelity", "attack_success": "ASR after", "clean_accuracy": "clean acc after",
          "clean_perplexity": "perplexity after"}
ROLE_ORDER = {"tool": 0, "combination": 1, "baseline": 2, "anchor": 3, "oracle": 4}
LM_REMOVAL_CELLS = CellTable("lm_removal_cells", (
    ("source", "TEXT NOT NULL"), ("role", "TEXT NOT NULL"), ("trojan", "TEXT NOT NULL"), ("kind", "TEXT NOT NULL"),
    ("seed", "INTEGER NOT NULL"), ("params", "TEXT NOT NULL"), ("status", "TEXT NOT NULL"), ("reason", "TEXT"),
    ("seconds", "REAL NOT NULL"), ("measures", "TEXT NOT NULL")), order_by="source, trojan, seed")
"""One row per guidance source, trojan and seed: the candidates unlearned (``params``) and the model before and
after (``measures``)."""


def _as_measure(values: dict) -> TrojanMeasure:
    return TrojanMeasure(values["clean_accuracy"], values["attack_success"], math.nan)


class LMRemovalResults:
    """The lm-removal results of a folder (those of its last lm-removal run with results), from the store."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        with Store(self.folder, create=False, cell_tables=(LM_REMOVAL_CELLS,)) as store:
            self.run, self.cells = last_run_and_cells(store.runs(), TASK, store.json_cells(LM_REMOVAL_CELLS.name),
                                                      itemgetter("key"))
        self.kinds = {cell["trojan"]: cell["kind"] for cell in self.cells}

    def __bool__(self) -> bool:
        return bool(self.cells)

    def per_trojan(self) -> dict[str, dict[str, dict[tuple[str, int], float]]]:
        """``{source: {measure: {(trojan, seed): value}}}`` after the edit (fidelity against before)."""
        out: dict[str, dict[str, dict[tuple[str, int], float]]] = {}
        for cell in self.cells:
            if cell["status"] != "ok":
                continue
            before, after = cell["measures"]["before"], cell["measures"]["after"]
            values = {**after, "fidelity": fidelity(_as_measure(before), _as_measure(after))}
            for measure in MEASURES:
                out.setdefault(cell["source"], {}).setdefault(measure, {})[(cell["trojan"], cell["seed"])] = \
                    float(values[measure])
        return out

    def summaries(self) -> dict[str, dict[str, Summary]]:
        return {source: {m: enough_for_interval(summarize(cells, cells, self.kinds)) for m, cells in values.items()
                         if all(math.isfinite(v) for v in cells.values())}
                for source, values in self.per_trojan().items()}

    def before(self) -> dict[str, float]:
        """The unedited model's means over trojans and seeds (attack success, clean accuracy and perplexity)."""
        seen = {(c["trojan"], c["seed"]): c["measures"]["before"] for c in self.cells if c["status"] == "ok"}
        return {m: float(np.mean([v[m] for v in seen.values()])) for m in MEASURES[1:]} if seen else {}

    def rows(self) -> list[dict[str, Any]]:
        """Sources by mean fidelity (tools, combinations, baselines, then none and the oracle), each with its
        summaries and normalized fidelity."""
        summaries, roles = self.summaries(), {c["source"]: c["role"] for c in self.cells}
        failed = {s: sum(c["status"] != "ok" for c in self.cells if c["source"] == s) for s in roles}
        means = {s: v["fidelity"].mean for s, v in summaries.items() if "fidelity" in v}

        def key(source: str) -> tuple:
            return ROLE_ORDER.get(roles[source], 2), -means.get(source, -math.inf), source

        rows = []
        for source in sorted(roles, key=key):
            normalized = (normalized_score(means[source], means[RANDOM], means[ORACLE])
                          if {source, RANDOM, ORACLE} <= set(means) else math.nan)
            metrics = summaries.get(source, {})
            rows.append({"source": source, "role": roles[source], "failed": failed[source], "normalized": normalized,
                         "n_cells": max((s.n_cells for s in metrics.values()), default=0),
                         "metrics": {m: dataclasses.asdict(s) for m, s in metrics.items()}})
        return rows

    def description(self) -> str:
        suite = self.run["suite"] if self.run else {}
        return (f"{len(suite.get('trojan_kinds', {}))} trojan(s) of model {suite.get('model')}, defender budget "
                f"{suite.get('budget')} clean prompts, {suite.get('steps')} fine-tuning steps, seed(s) "
                f"{sorted({c['seed'] for c in self.cells})}{', quick settings' if suite.get('quick') else ''}")

    def table(self) -> str:
        rows = self.rows()
        width = max([20, *(len(r["source"]) + 2 for r in rows)])
        before = {k: self.before().get(k, math.nan) for k in MEASURES[1:]}
        lines = [f"lm-removal: {self.description()}", "mean over trojans [95% bootstrap interval] (worst trojan); "
                 f"before: ASR {before['attack_success']:.3f}, clean acc {before['clean_accuracy']:.3f}, perplexity "
                 f"{before['clean_perplexity']:.2f}",
                 f"{'source':<{width}}{'fidelity':<31}{'normalized':>11}"
                 + "".join(f"{LABELS[m]:>18}" for m in MEASURES[1:]) + f"{'cells':>8}"]
        for row in rows:
            m = row["metrics"]
            if "fidelity" not in m:
                lines.append(f"{row['source']:<{width}}failed ({row['failed']} cell(s))")
                continue
            s = m["fidelity"]
            normalized = "–" if math.isnan(row["normalized"]) else f"{row['normalized']:.3f}"
            lines.append(f"{row['source']:<{width}}{s['mean']:6.3f} {interval_text(s['ci_low'], s['ci_high']):^14} "
                         f"{s['worst']:6.3f}   {normalized:>11}"
                         + "".join(f"{m[k]['mean']:>18.3f}" for k in MEASURES[1:])
                         + f"{cells_text(row['n_cells'], row['failed']):>8}")
        return "\n".join(lines)
