"""Reading localization results back: per-method summaries per metric, comparisons with the edge detector, the
verdict, records and the text table (statistics as described in :mod:`trojanbench.tasks.localization.task`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ...engine.runs import failure_lines, last_run_and_cells
from ...engine.stats import Comparison, paired_comparison, summarize
from ...errors import did_you_mean
from .metrics import HIGHER_IS_BETTER, METRICS
from .store import LocalizationStore

TASK = "localization"
PRIMARY_METRIC = "auroc"
REFERENCE = "edge_detector"
"""The baseline every tool must beat (Casper et al. 2023 report attribution tools beside an edge detector)."""
METRIC_LABELS = {"rank_correlation": "rank corr.", "pointing_game": "pointing game", "auroc": "AUROC"}
if not all(HIGHER_IS_BETTER[m] for m in METRICS):  # pragma: no cover - the summaries take the minimum as worst
    raise ImportError("every localization metric must be higher-is-better for the worst case to be the minimum")

@dataclass(frozen=True)
class MetricSummary:
    """One method under one metric: mean over trojans (of the mean over images), 95% interval, worst trojan."""

    mean: float
    ci_low: float
    ci_high: float
    worst: float
    worst_trojan: str
    n_images: int


def summarize_metric(scores: dict[tuple[str, Any], float]) -> MetricSummary:
    """Summarize ``{(trojan, image): score}`` with :func:`~trojanbench.engine.stats.summarize` (images in the
    place of seeds: the bootstrap resamples trojans, then images within each)."""
    summary = summarize(scores, scores, {trojan: "patch" for trojan, _ in scores})
    return MetricSummary(summary.mean, summary.ci_low, summary.ci_high, summary.worst, summary.worst_trojan,
                         summary.n_cells)


class LocalizationResults:
    """The localization results of a folder (the cells of its last localization run with results), read once."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        with LocalizationStore(self.folder, create=False) as store:
            self.run, self.cells = last_run_and_cells(store.runs(), TASK, store.localization_cells(),
                                                      lambda cell: cell.key)
            scores = store.localization_scores()
            sets = store.localization_sets()
        self._scores = {cell.key: scores.get(cell.key, {}) for cell in self.cells}
        used = {cell.set_key for cell in self.cells}
        self.sets = {key: info for key, info in sets.items() if key in used}

    def __bool__(self) -> bool:
        return bool(self.cells)

    def roles(self) -> dict[str, str]:
        return {cell.method: cell.role for cell in self.cells}

    def per_image(self, metric: str) -> dict[str, dict[tuple[str, tuple[int, int]], float]]:
        """``{method: {(trojan, (seed, image)): score}}`` for one metric, over the cells that finished (a failed
        cell is never scored: its stored flat-map scores are not counted)."""
        out: dict[str, dict[tuple[str, tuple[int, int]], float]] = {}
        for cell in self.cells:
            if cell.status != "ok":
                continue
            for index, value in enumerate(self._scores[cell.key].get(metric, ())):
                out.setdefault(cell.method, {})[(cell.trojan, (cell.seed, index))] = float(value)
        return out

    @cached_property
    def summaries(self) -> dict[str, dict[str, MetricSummary]]:
        """``{method: {metric: MetricSummary}}`` (NaN for a method none of whose cells finished)."""
        nothing = MetricSummary(float("nan"), float("nan"), float("nan"), float("nan"), "-", 0)
        out: dict[str, dict[str, MetricSummary]] = {cell.method: dict.fromkeys(METRICS, nothing)
                                                     for cell in self.cells}
        for metric in METRICS:
            for method, scores in self.per_image(metric).items():
                out[method][metric] = summarize_metric(scores)
        return out

    def seconds_per_image(self) -> dict[str, float]:
        """Attribution seconds per image of each method, over its finished cells (NaN if none finished)."""
        totals: dict[str, list[float]] = {cell.method: [0.0, 0.0] for cell in self.cells}
        for cell in self.cells:
            if cell.status == "ok":
                totals[cell.method][0] += cell.seconds
                totals[cell.method][1] += cell.n_images
        return {method: seconds / images if images else float("nan") for method, (seconds, images) in totals.items()}

    def compare(self, a: str, b: str, metric: str = PRIMARY_METRIC) -> Comparison:
        """Paired bootstrap of ``a - b`` by ``metric`` (trojans, then images; paired image by image)."""
        scores = self.per_image(metric)
        for name in (a, b):
            if name not in scores:
                raise did_you_mean(name, list(scores), "method in these localization results")
        return paired_comparison(a, b, scores[a], scores[b])

    @cached_property
    def versus_reference(self) -> dict[str, Comparison]:
        """Each tool minus the edge detector by mean AUROC (empty when the edge detector was not run)."""
        roles, scored = self.roles(), self.per_image(PRIMARY_METRIC)
        if REFERENCE not in scored:
            return {}
        return {m: self.compare(m, REFERENCE) for m, role in roles.items() if role == "tool" and m in scored}

    def rows(self) -> list[dict[str, Any]]:
        """Display order: tools ranked by mean AUROC, then tools with a failed cell (incomplete: not ranked), then
        the baselines."""
        summaries, roles, speed = self.summaries, self.roles(), self.seconds_per_image()
        failed = {m: sum(c.status != "ok" for c in self.cells if c.method == m) for m in summaries}

        def order(method: str) -> tuple:
            mean = summaries[method][PRIMARY_METRIC].mean
            return (roles[method] != "tool", failed[method] > 0, -mean if mean == mean else 1.0, method)

        rows, rank = [], 0
        for method in sorted(summaries, key=order):
            ranked = roles[method] == "tool" and not failed[method]
            rank += ranked
            rows.append({"method": method, "role": roles[method], "rank": rank if ranked else None,
                         "metrics": {k: dataclasses.asdict(v) for k, v in summaries[method].items()},
                         "seconds_per_image": speed[method], "failed": failed[method],
                         "n_cells": sum(c.method == method for c in self.cells),
                         "versus_reference": self.versus_reference.get(method)})
        return rows

    def verdict(self) -> str:
        """One sentence: does any tool beat the edge detector by mean AUROC (paired 95% interval above 0)?"""
        if REFERENCE not in self.roles():
            return "The edge detector baseline was not run, so no tool is compared with it."
        comparisons = self.versus_reference
        if not comparisons:
            return "No attribution tool was run beside the edge detector."
        edge = self.summaries[REFERENCE][PRIMARY_METRIC].mean
        winners = sorted((c for c in comparisons.values() if c.ci_low > 0), key=lambda c: -c.mean_difference)
        tail = f" (edge detector AUROC {edge:.3f}; paired bootstrap over trojans, then images)."
        if winners:
            listed = ", ".join(f"{c.a} {c.mean_difference:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]" for c in winners)
            return (f"{len(winners)} of {len(comparisons)} tools beat the edge detector by mean AUROC, the paired "
                    f"difference's 95% interval above 0: {listed}" + tail)
        best = max(comparisons.values(), key=lambda c: c.mean_difference)
        return (f"No tool beats the edge detector by mean AUROC: the closest, {best.a}, differs by "
                f"{best.mean_difference:+.3f} [{best.ci_low:+.3f}, {best.ci_high:+.3f}]" + tail)

    def description(self) -> str:
        """What was run: trojans, images per trojan, seeds."""
        suite = self.run["suite"] if self.run else {}
        trojans = sorted({cell.trojan for cell in self.cells})
        return (f"{len(trojans)} patch trojan(s) ({', '.join(trojans)}) x {suite.get('n_images')} held-out triggered "
                f"images, seed(s) {suite.get('seeds')}{', quick settings' if suite.get('quick') else ''}")

    def records(self) -> list[dict[str, Any]]:
        """One row per cell and image with its scores (NaN where a metric is undefined for the image, and on every
        image of a failed cell, which is never scored)."""
        rows = []
        for cell in self.cells:
            scores = self._scores[cell.key]
            for index in range(max((len(v) for v in scores.values()), default=0)):
                rows.append({"method": cell.method, "role": cell.role, "trojan": cell.trojan, "seed": cell.seed,
                             "image": index, "status": cell.status,
                             **{m: float(scores[m][index]) if m in scores and cell.status == "ok" else float("nan")
                                for m in METRICS},
                             "cell_seconds": round(cell.seconds, 4), "reason": cell.reason, "key": cell.key})
        return rows

    def to_csv(self, path: str | Path) -> Path:
        """The per-image records as CSV."""
        import csv

        path = Path(path)
        columns = ("method", "role", "trojan", "seed", "image", "status", *METRICS, "cell_seconds", "reason", "key")
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.records())
        return path

    def table(self) -> str:
        """The localization leaderboard as text: per metric mean [95% CI] and worst trojan, seconds per image."""
        rows = self.rows()
        labels = [f"{row['rank']}. {row['method']}" if row["rank"] else f"   {row['method']}" for row in rows]
        width = max([26, *(len(label) + 2 for label in labels)])
        header = f"{'method':<{width}}{'role':<10}" + "".join(f"{METRIC_LABELS[m]:<31}" for m in METRICS) + "s/image"
        sub = " " * (width + 10) + f"{'mean':>6}{'95% CI':^16}{'worst':>6}   " * len(METRICS)
        lines = [f"localization: {self.description()}",
                 "mean over trojans, 95% bootstrap interval (trojans, then images), worst trojan", header, sub,
                 "-" * len(header)]
        for row, label in zip(rows, labels):
            cells = "".join(f"{s['mean']:>6.3f} [{s['ci_low']:>5.2f}, {s['ci_high']:>5.2f}] {s['worst']:>6.3f}   "
                            for s in (row["metrics"][m] for m in METRICS))
            lines.append(f"{label:<{width}}{row['role']:<10}{cells}{row['seconds_per_image']:>7.4f}")
        lines.append(self.verdict())
        return "\n".join(lines + failure_lines([c for c in self.cells if c.status != "ok"]))


def load_localization_results(folder: str | Path) -> LocalizationResults:
    """Open the localization results of a folder written by :func:`run_localization`."""
    return LocalizationResults(folder)
