"""Reading rediscovery results back: per-cell records, leaderboards, judge validity and agreement.

Everything here is computed from the SQLite store alone, so a report can always be regenerated.
A failed cell is never scored: it has no images to judge, and counting it as chance would let a method whose
cells failed rank above tools that ran. Statistics rest on the scored cells (each row says how many of the cells
planned), and a tool or combination with a failed cell is shown as *incomplete* and not ranked.
"""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ...engine.runs import failure_lines, last_run_and_cells
from ...engine.stats import (CHANCE, Comparison, RankAgreement, Summary, bootstrap_interval, paired_comparison,
                             rank_agreement, score_grid, spearman, summarize)
from ...errors import ConfigError, did_you_mean, require_extra
from .battery import battery_lines, per_trojan
from .diagnostics import DIAGNOSTIC_FIELDS, DIAGNOSTIC_LABELS
from .store import RediscoveryStore
from .verdicts import CountedVerdicts, counted_verdicts, verdict_lines

MIN_AGREEMENT_CELLS = 10
"""The judges' agreement over cells is shown only over at least this many shared cells."""
MIN_AGREEMENT_TOOLS = 4
"""The judges' agreement over tools is shown only over at least this many shared tools."""
AGREEMENT_TARGET = 0.8
"""Judges whose rankings of the tools agree less than this give leaderboards that depend on the judge."""
BELOW_BAR_ADVICE = ("this judge often fails to pick the true trigger even when shown it, so its scores on the "
                    "trojans below the bar say little: read the other judge there, or ask people (trojanbench survey)")
ROLE_ORDER = {"tool": 0, "combination": 0, "baseline": 1, "oracle": 2}
"""Leaderboard order: tools and combinations of tools ranked together (a combination is an entry of its own),
then the baselines and the oracle, which never rank."""
RANKED_ROLES = ("tool", "combination")
ORACLE_TOP1_BAR = 0.95
"""Judge validity: the oracle's top-1 rate each default trojan must reach."""
CHANCE_TOLERANCE = 5e-4
"""Judge validity: slack around chance, as a judge that sees nothing in noise gives 1/8 up to float rounding."""
CSV_COLUMNS = ("method", "role", "trojan", "kind", "seed", "judge", "p_true", "top1", *DIAGNOSTIC_FIELDS, "status",
               "seconds", "reason", "key")


class Results:
    """The rediscovery results of a folder (the cells of its last rediscovery run with results), read from the
    store once."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        with RediscoveryStore(self.folder, create=False) as store:
            self.runs = store.runs()
            self.run, self.cells = last_run_and_cells(self.runs, "rediscovery", store.cells(), lambda c: c.key)
            keys = {cell.key for cell in self.cells}
            self._scores = [score for score in store.scores() if score["key"] in keys]
            self.questions = store.questions()
            battery = store.battery()
            self.evidence = {key: found for key, found in store.evidence().items() if key[0] in keys}
            self.diagnostics = {key: found for key, found in store.diagnostics().items() if key in keys}
        self.judges = sorted({s["judge"] for s in self._scores}, key=self._judge_order)
        self._battery = {key: checks for key, checks in battery.items()
                         if key[0] in self.judges and key[1:] in self.questions}

    def __bool__(self) -> bool:
        return bool(self.cells)

    def _judge_order(self, judge: str) -> tuple[int, str]:
        configured = self.run["suite"].get("judges", []) if self.run else []
        return (configured.index(judge) if judge in configured else len(configured), judge)

    @property
    def primary_judge(self) -> str:
        if not self.judges:
            raise ConfigError(f"No scored cells in {str(self.folder)!r} yet.")
        return self.judges[0]

    def records(self) -> list[dict[str, Any]]:
        """One row per cell and judge (failed cells: one row per judge with no p_true or top-1), with the cell's
        ground-truth diagnostics (``None`` where it has none: a failed cell or a combination)."""
        by_key: dict[str, list[dict]] = {}
        for score in self._scores:
            by_key.setdefault(score["key"], []).append(score)
        rows = []
        for cell in self.cells:
            base = {"method": cell.method, "role": cell.role, "trojan": cell.trojan, "kind": cell.kind,
                    "seed": cell.seed, "status": cell.status, "seconds": round(cell.seconds, 3),
                    "reason": cell.reason, "key": cell.key,
                    **{name: self.diagnostics.get(cell.key, {}).get(name) for name in DIAGNOSTIC_FIELDS}}
            if cell.status == "ok":
                rows += [{**base, "judge": s["judge"], "p_true": s["p_true"], "top1": s["top1"]}
                         for s in by_key.get(cell.key, [])]
            else:
                rows += [{**base, "judge": judge, "p_true": None, "top1": None} for judge in self.judges]
        return rows

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows({k: row.get(k) for k in CSV_COLUMNS} for row in self.records())
        return path

    def to_dataframe(self):
        """The records as a pandas DataFrame (needs pandas)."""
        pandas = require_extra("pandas", "pandas", "Results.to_dataframe()")
        return pandas.DataFrame(self.records(), columns=list(CSV_COLUMNS))

    def _by_method(self, judge: str, field: str = "p_true") -> dict[str, dict[tuple[str, int], float]]:
        out: dict[str, dict[tuple[str, int], float]] = {}
        for row in self.records():
            if row["judge"] == judge and row[field] is not None:
                out.setdefault(row["method"], {})[(row["trojan"], row["seed"])] = float(row[field])
        return out

    def planned_cells(self) -> dict[str, int]:
        """How many cells each method has in these results (scored or failed)."""
        counts: dict[str, int] = {}
        for cell in self.cells:
            counts[cell.method] = counts.get(cell.method, 0) + 1
        return counts

    def failed_cells(self) -> list[Any]:
        return [cell for cell in self.cells if cell.status != "ok"]

    def roles(self) -> dict[str, str]:
        return {cell.method: cell.role for cell in self.cells}

    def kinds(self) -> dict[str, str]:
        return {cell.trojan: cell.kind for cell in self.cells}

    def summaries(self, judge: str | None = None) -> dict[str, Summary]:
        judge = judge or self.primary_judge
        p_true, top1 = self._by_method(judge), self._by_method(judge, "top1")
        return {method: summarize(p_true[method], top1[method], self.kinds()) for method in p_true}

    def per_trojan_best(self, judge: str | None = None) -> float:
        """Upper bound: the mean over trojans of the best tool's mean score on each trojan."""
        judge = judge or self.primary_judge
        roles = self.roles()
        best: dict[str, float] = {}
        for method, scores in self._by_method(judge).items():
            if roles[method] != "tool":
                continue
            for trojan in {t for t, _ in scores}:
                value = float(np.mean([v for (t, _), v in scores.items() if t == trojan]))
                best[trojan] = max(best.get(trojan, 0.0), value)
        return float(np.mean(list(best.values()))) if best else float("nan")

    def compare(self, a: str, b: str, judge: str | None = None) -> Comparison:
        """Paired bootstrap comparison of two methods (``a - b``) over shared trojans and seeds."""
        scores = self._by_method(judge or self.primary_judge)
        for name in (a, b):
            if name not in scores:
                raise did_you_mean(name, list(scores), "method in these results")
        return paired_comparison(a, b, scores[a], scores[b])

    def judge_agreement(self) -> dict[str, dict[str, float]]:
        """Spearman rank correlation of p_true over the cells both judges scored (``{"spearman", "cells"}``), for
        each pair of judges that share at least :data:`MIN_AGREEMENT_CELLS` cells (fewer would be noise)."""
        out = {}
        per_judge = {j: {(r["key"]): r["p_true"] for r in self.records() if r["judge"] == j and r["status"] == "ok"}
                     for j in self.judges}
        for i, a in enumerate(self.judges):
            for b in self.judges[i + 1:]:
                shared = sorted(set(per_judge[a]) & set(per_judge[b]))
                if len(shared) >= MIN_AGREEMENT_CELLS:
                    out[f"{a}~{b}"] = {"spearman": spearman([per_judge[a][k] for k in shared],
                                                            [per_judge[b][k] for k in shared]), "cells": len(shared)}
        return out

    def tool_agreement(self) -> dict[str, RankAgreement]:
        """How alike each pair of judges ranks the tools (Spearman of their means, 95% bootstrap interval), for
        pairs that share at least :data:`MIN_AGREEMENT_TOOLS` tools: the agreement a leaderboard's order rests on."""
        roles, out = self.roles(), {}
        tools = {j: {m: s for m, s in self._by_method(j).items() if roles[m] == "tool"} for j in self.judges}
        for i, a in enumerate(self.judges):
            for b in self.judges[i + 1:]:
                if len(set(tools[a]) & set(tools[b])) >= MIN_AGREEMENT_TOOLS:
                    out[f"{a}~{b}"] = rank_agreement(tools[a], tools[b])
        return out

    def agreement_line(self) -> str | None:
        """The judges' agreement in words (``None`` with one judge or too few shared tools and cells)."""
        over_tools, over_cells = self.tool_agreement(), self.judge_agreement()
        parts = [f"over tools' means {pair} {v.spearman:.2f} [{v.ci_low:.2f}, {v.ci_high:.2f}] ({v.n_methods} tools; "
                 f"target >= {AGREEMENT_TARGET})" for pair, v in over_tools.items()]
        parts += [f"over cells {pair} {v['spearman']:.2f} ({v['cells']} cells)" for pair, v in over_cells.items()]
        return "judge agreement (Spearman): " + ", ".join(parts) if parts else None

    def validity(self, judge: str | None = None) -> dict[str, Any]:
        """Judge validity: the oracle's top-1 per trojan and random noise's mean p_true with its interval."""
        judge = judge or self.primary_judge
        out: dict[str, Any] = {"judge": judge}
        top1 = self._by_method(judge, "top1")
        if "oracle" in top1:
            per_trojan: dict[str, list[float]] = {}
            for (trojan, _), value in top1["oracle"].items():
                per_trojan.setdefault(trojan, []).append(value)
            out["oracle_top1"] = {t: float(np.mean(v)) for t, v in sorted(per_trojan.items())}
            out["oracle_meets_bar"] = min(out["oracle_top1"].values()) >= ORACLE_TOP1_BAR
        p_true = self._by_method(judge)
        if "random_noise" in p_true:
            grid = score_grid(p_true["random_noise"])[1]
            low, high = bootstrap_interval(grid)
            out["noise"] = {"mean": float(np.nanmean(grid)), "ci_low": low, "ci_high": high, "chance": CHANCE,
                            "contains_chance": contains_chance(low, high)}
        return out

    def leaderboard(self, judge: str | None = None) -> list[dict[str, Any]]:
        """Rows in display order: complete tools and combinations ranked by mean, then incomplete ones (a failed
        cell: shown, not ranked), then the baselines and the oracle. ``n_cells`` of ``n_planned`` were scored."""
        judge = judge or self.primary_judge
        summaries, roles, planned = self.summaries(judge), self.roles(), self.planned_cells()
        empty = {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "worst": float("nan"),
                 "worst_trojan": "-", "by_kind": {}, "top1": float("nan"), "n_cells": 0}
        rows = []
        for method in planned:
            row = {"method": method, "role": roles[method], "n_planned": planned[method],
                   **(asdict(summaries[method]) if method in summaries else empty)}
            row["complete"] = row["n_cells"] == row["n_planned"]
            rows.append(row)
        rows.sort(key=lambda r: (ROLE_ORDER.get(r["role"], 9), not r["complete"],
                                 -r["mean"] if np.isfinite(r["mean"]) else 1.0, r["method"]))
        rank = 0
        for row in rows:
            ranked = row["role"] in RANKED_ROLES and row["complete"]
            rank += ranked
            row["rank"] = rank if ranked else None
        return rows

    def table(self, judge: str | None = None, *, failures: bool = True) -> str:
        """The leaderboard: complete tools and combinations ranked, then incomplete ones, baselines and the
        oracle, marked; with how many cells each row rests on (and, with ``failures``, why cells failed)."""
        judge = judge or self.primary_judge
        rows = self.leaderboard(judge)
        kinds = sorted({k for r in rows for k in r["by_kind"]})
        width = max([22, *(len(r["method"]) + 6 for r in rows)])
        header = f"{'method':<{width}}{'role':<12}{'mean':>6}  {'95% CI':<13}{'worst':>6}  " + "".join(
            f"{k:>8}" for k in kinds) + f"{'top-1':>7}{'cells':>8}"
        lines = [f"judge: {judge} (p_true: probability given to the true trigger; chance {CHANCE:.3f})", header,
                 "-" * len(header)]
        for r in rows:
            label = f"{r['rank']}. {r['method']}" if r["rank"] else f"   {r['method']}"
            role = r["role"] if r["complete"] or r["role"] not in RANKED_ROLES else "incomplete"
            lines.append(f"{label:<{width}}{role:<12}{r['mean']:>6.3f}  [{r['ci_low']:.2f}, {r['ci_high']:.2f}] "
                         f"{r['worst']:>6.3f}  " + "".join(f"{r['by_kind'].get(k, float('nan')):>8.3f}" for k in kinds)
                         + f"{r['top1']:>7.2f}{str(r['n_cells']) + '/' + str(r['n_planned']):>8}")
        bound = self.per_trojan_best(judge)
        if np.isfinite(bound):
            lines.append(f"{'   per-trojan best':<{width}}{'upper bound':<12}{bound:>6.3f}  (best tool picked per "
                         f"trojan after the fact: an upper bound, not a tool)")
        lines += self.validity_lines(judge)
        return "\n".join(lines + (failure_lines(self.failed_cells()) if failures else []))

    def battery_questions(self, judge: str | None = None) -> dict[tuple[str, int], list[dict]]:
        """The judge's validity battery on each question: ``{(trojan, seed): checks}``."""
        judge = judge or self.primary_judge
        return {(t, seed): checks for (j, t, seed), checks in sorted(self._battery.items()) if j == judge}

    def battery(self, judge: str | None = None) -> dict[str, dict[str, Any]]:
        """The judge's validity battery per trojan (:func:`.battery.per_trojan`: each check's worst seed)."""
        return per_trojan(self.battery_questions(judge))

    def counted_verdicts(self) -> CountedVerdicts:
        """The verdicts that count (:mod:`.verdicts`): per question, the consensus of the judges that pass their
        battery there."""
        battery, scores = {}, {}
        for judge in self.judges:
            battery[judge] = self.battery_questions(judge)
            top1 = self._by_method(judge, "top1")
            scores[judge] = {method: {q: (p, top1[method][q]) for q, p in cells.items()}
                             for method, cells in self._by_method(judge).items()}
        return counted_verdicts(battery, scores)

    def verdict_lines(self) -> list[str]:
        """:func:`.verdicts.verdict_lines`, methods in the primary judge's leaderboard order."""
        verdicts = self.counted_verdicts()
        order = [row["method"] for row in self.leaderboard()] if self.judges else []
        return verdict_lines(verdicts, verdicts.summaries(self.kinds()), order)

    def validity_lines(self, judge: str | None = None) -> list[str]:
        """Judge validity in words: the oracle's worst top-1, random noise against chance, and the battery."""
        validity = self.validity(judge)
        lines = []
        if "oracle_top1" in validity:
            worst = min(validity["oracle_top1"], key=validity["oracle_top1"].get)
            value = validity["oracle_top1"][worst]
            lines.append(f"judge validity: oracle top-1 >= {value:.2f} on every trojan (lowest: {worst}); "
                         f"{'meets' if validity['oracle_meets_bar'] else 'BELOW'} the {ORACLE_TOP1_BAR} bar"
                         + ("" if validity["oracle_meets_bar"] else f" ({BELOW_BAR_ADVICE})"))
        if "noise" in validity:
            noise = validity["noise"]
            lines.append(f"judge validity: random noise {noise['mean']:.3f} [{noise['ci_low']:.3f}, "
                         f"{noise['ci_high']:.3f}], {'contains' if noise['contains_chance'] else 'EXCLUDES'} "
                         f"chance {CHANCE:.3f}")
        return lines + battery_lines(judge or self.primary_judge, self.battery(judge))

    def diagnostic_summaries(self) -> dict[str, dict[str, Any]]:
        """Per method with diagnosed cells: each ground-truth diagnostic's mean over its cells with a 95% bootstrap
        interval (over trojans, then seeds), its mean per trojan kind, and how many cells it rests on."""
        per_method: dict[str, dict[str, dict[tuple[str, int], float]]] = {}
        for cell in self.cells:
            found = self.diagnostics.get(cell.key)
            for name in DIAGNOSTIC_FIELDS:
                value = None if found is None else found.get(name)
                if value is not None and np.isfinite(value):
                    per_method.setdefault(cell.method, {}).setdefault(name, {})[(cell.trojan, cell.seed)] = value
        kinds, out = self.kinds(), {}
        for method, fields in per_method.items():
            out[method] = {}
            for name, values in fields.items():
                grid = score_grid(values)[1]
                low, high = bootstrap_interval(grid)
                by_kind = {kind: float(np.mean([v for (t, _), v in values.items() if kinds[t] == kind]))
                           for kind in sorted({kinds[t] for t, _ in values})}
                out[method][name] = {"mean": float(np.mean(list(values.values()))), "ci_low": low, "ci_high": high,
                                     "by_kind": by_kind, "n_cells": len(values)}
        return out

    def diagnostic_lines(self) -> list[str]:
        """The ground-truth diagnostics as a text table, methods in the primary judge's leaderboard order."""
        summaries = self.diagnostic_summaries()
        if not summaries:
            return []
        order = [row["method"] for row in self.leaderboard()] if self.judges else sorted(summaries)
        width = max(22, *(len(m) + 2 for m in summaries))
        header = f"{'method':<{width}}" + "".join(f"{DIAGNOSTIC_LABELS[n]:>24}" for n in DIAGNOSTIC_FIELDS)
        lines = ["ground-truth diagnostics (no judge: mean [95% CI] over cells; trigger match on patch trojans)",
                 header, "-" * len(header)]
        for method in (m for m in order if m in summaries):
            cells = []
            for name in DIAGNOSTIC_FIELDS:
                value = summaries[method].get(name)
                cells.append(f"{value['mean']:.3f} [{value['ci_low']:.2f}, {value['ci_high']:.2f}]" if value else "-")
            lines.append(f"{method:<{width}}" + "".join(f"{c:>24}" for c in cells))
        return lines

    def summary_dict(self) -> dict[str, Any]:
        return {judge: {m: asdict(s) for m, s in self.summaries(judge).items()} for judge in self.judges}


def contains_chance(low: float, high: float) -> bool:
    """Whether a 95% interval ``[low, high]`` contains chance, within :data:`CHANCE_TOLERANCE`."""
    return low - CHANCE_TOLERANCE <= CHANCE <= high + CHANCE_TOLERANCE


def load_results(folder: str | Path) -> Results:
    """Open a results folder written by :func:`trojanbench.run`."""
    return Results(folder)
