"""The localization task's runner: can attribution tools point at a planted patch trigger?

After the attribution benchmark of Casper et al. (2023): every attribution method of a suite (the 16
Captum tools and the ``edge_detector``, ``uniform_map`` and ``random_map`` baselines by default) explains
the target class of every *patch* trojan of the suite's model on a fixed set of held-out triggered images,
and each map is scored against the patch's true footprint (:mod:`trojanbench.tasks.localization`: rank
correlation, pointing game, AUROC, all higher-is-better).

Order of work, as in :func:`trojanbench.run`: validate everything (suite, methods and hyperparameters, the
Captum extra, model, trojans) before any cell runs; skip cells already in the store; compute the rest,
committing each as it finishes.

**Cells.** A cell is one method (with its resolved hyperparameters) explaining one patch trojan's target
class on the ``n`` held-out triggered images drawn under one seed. Its key is the content hash of (task,
method, params, trojan spec, ``n``, seed, model sha256, code version), so a re-run skips finished cells
and a killed run resumes. A method that raises, returns an invalid map or runs past the suite's
``cell_timeout`` becomes a failed cell with its reason, and is scored as a flat map (chance: it located
nothing), as a failed rediscovery cell counts as chance. Each image set is recorded in the store (PNG
strips of the images and masks, and a sha256 of both).

**Statistics** (reusing :mod:`trojanbench.runner.stats`). Per method and metric: the mean over trojans of
the mean over images, the worst trojan, and a 95% two-level bootstrap interval on the ``[trojans, images]``
grid (resample trojans, then images within each drawn trojan). Images take the place the rediscovery
task gives seeds: within a trojan, a localization score varies from image to image (where the patch lands,
its scale, the scene around it), and each image is an independent draw from the held-out triggered
distribution, whereas the methods' own randomness is seeded and small beside it. Trojans stay the outer
level because the question is about trojans (hence also the worst case over them). With several seeds,
each seed draws its own set and the (seed, image) pairs form the inner level. Paired comparisons (a tool
minus the edge detector, by AUROC) resample the same way, pairing the two methods image by image.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..config import TrojanSpec, load_trojan_suite
from ..errors import ConfigError, did_you_mean, require_extra
from ..methods.attribution import AttributionMethod, CaptumAttribution
from ..models import LoadedModel, load_model
from ..registry import load_plugins
from ..tasks.localization import (
    HIGHER_IS_BETTER,
    METRICS,
    LocalizationSet,
    flat_map_scores,
    localization_set,
    make_attribution_method,
    score_attribution,
    set_digest,
)
from ..world import OBJECT_CLASSES
from .cells import Cell, code_version, content_key
from .execute import time_budget
from .pending import run_pending
from .stats import Comparison, paired_comparison, summarize
from .store import LocalizationCellRow, Store
from .suite import Suite, load_suite, with_overrides

log = logging.getLogger(__name__)

TASK = "localization"
SUITE = "localization"
"""The shipped suite used when none is named (``assets/suites/localization.yaml``)."""
QUICK_IMAGES = 12
"""Images per trojan under ``quick``."""
PRIMARY_METRIC = "auroc"
REFERENCE = "edge_detector"
"""The baseline every tool must beat (Casper et al. 2023 report attribution tools beside an edge detector)."""
METRIC_LABELS = {"rank_correlation": "rank corr.", "pointing_game": "pointing game", "auroc": "AUROC"}
if not all(HIGHER_IS_BETTER[m] for m in METRICS):  # pragma: no cover - the summaries take the minimum as worst
    raise ImportError("every localization metric must be higher-is-better for the worst case to be the minimum")


@dataclass
class LocalizationPlan:
    """A validated localization run: the suite as resolved, the methods, the patch trojans, the cells."""

    suite: Suite
    methods: dict[str, AttributionMethod]
    trojans: list[TrojanSpec]
    cells: list[Cell]
    loaded: LoadedModel
    quick: bool = False
    plugins: tuple[str, ...] = ()


def set_key(cell: Cell) -> str:
    """Key of the image set a cell explains: the trojan, seed, size and code version (not the method)."""
    payload = {**cell.payload(), "code_version": code_version()}  # the package's, whatever the method
    fields = ("trojan", "trigger_identity", "seed", "n_images", "code_version")
    return content_key({"task": TASK, "set": {k: payload[k] for k in fields}})


def _cell(name: str, method: AttributionMethod, trojan: TrojanSpec, seed: int, n_images: int, sha256: str) -> Cell:
    cell = Cell(method=name, params=method.get_params(), trojan=trojan, seed=seed, n_images=n_images,
                model_sha256=sha256, role="baseline" if method.is_baseline else "tool",
                code_version=code_version(type(method)))
    return dataclasses.replace(cell, key=content_key({"task": TASK, **cell.payload()}))


def _resolve_suite(suite: Suite | str | Path | None, *, quick: bool, methods: Iterable[str] | None,
                   seeds: int | None) -> Suite:
    if not isinstance(suite, Suite):
        suite = load_suite(SUITE if suite in (None, "default") else suite)
    suite = with_overrides(suite, methods=methods, seeds=seeds, quick=quick)
    if quick:
        suite = dataclasses.replace(suite, n_images=min(suite.n_images, QUICK_IMAGES))
    names = [spec.name for spec in suite.methods]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"Method(s) {twice} are listed more than once; list each method once.")
    return suite


def _patch_trojans(suite: Suite, loaded: LoadedModel, names: Iterable[str] | None) -> list[TrojanSpec]:
    """The suite's patch trojans (or the named ones, which must be patch trojans)."""
    from ..audit import trojans_of

    trojan_suite = load_trojan_suite(suite.trojans, OBJECT_CLASSES) if suite.trojans else trojans_of(loaded)
    patches = [spec.name for spec in trojan_suite.trojans if spec.kind == "patch"]
    chosen = [trojan_suite.get(name) for name in names] if names else [trojan_suite.get(n) for n in patches]
    for spec in chosen:
        if spec.kind != "patch":
            raise ConfigError(f"Trojan {spec.name!r} is a {spec.kind} trojan; localization needs patch trojans (a "
                              f"footprint to find). Patch trojans here: {', '.join(patches) or 'none'}.")
    if not chosen:
        raise ConfigError(f"Model {loaded.name!r} has no patch trojan to localize; give a trojan spec with a patch "
                          f"trojan ('trojans:' in the suite).")
    return chosen


def plan_localization(suite: Suite | str | Path | None = None, *, quick: bool = False,
                      methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                      seeds: int | None = None, plugins: Iterable[str] = ()) -> LocalizationPlan:
    """Resolve and validate a localization run without computing anything (bad input fails here).

    ``suite`` defaults to the shipped ``localization`` suite (``"default"`` means the same);
    ``quick`` keeps the first seed, at most :data:`QUICK_IMAGES` images per trojan and the methods'
    ``quick_params``.
    """
    from ..audit import check_world_classifier

    plugins = load_plugins(plugins)
    suite = _resolve_suite(suite, quick=quick, methods=methods, seeds=seeds)
    resolved = {spec.name: make_attribution_method(spec.name, spec.params, quick=quick) for spec in suite.methods}
    if any(isinstance(method, CaptumAttribution) for method in resolved.values()):
        require_extra("captum.attr", "captum", "The Captum attribution methods")
    loaded = load_model(suite.model)
    check_world_classifier(loaded)
    chosen = _patch_trojans(suite, loaded, trojans)
    cells = [_cell(name, method, trojan, seed, suite.n_images, loaded.sha256)
             for name, method in resolved.items() for trojan in chosen for seed in suite.seeds]
    return LocalizationPlan(suite, resolved, chosen, cells, loaded, quick, plugins)


def run_localization(suite: Suite | str | Path | None = None, *, out: str | Path = "trojanbench-results",
                     quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                     seeds: int | None = None, plugins: Iterable[str] = (),
                     progress: Callable[[int, int, Cell], None] | None = None,
                     report: bool = True) -> "LocalizationResults":
    """Run the localization task (default: the shipped ``localization`` suite) and return its results.

    Results go into ``out/results.sqlite`` beside any rediscovery results; ``progress(done, total, cell)``
    is called after each cell. With ``report``, the HTML report and exports are rewritten at the end.
    """
    from .run import provenance

    plan = plan_localization(suite, quick=quick, methods=methods, trojans=trojans, seeds=seeds, plugins=plugins)
    record = plan.suite.to_dict() | {"task": TASK, "quick": quick, "patch_trojans": [t.name for t in plan.trojans],
                                     "cell_keys": [cell.key for cell in plan.cells]}
    origin = provenance(plan.suite.model, plan.loaded.sha256, plan.loaded.card)
    run_pending(out, plan.cells, record, origin, Store.finished_localization_keys,
                lambda store, run_id, todo: _compute(plan, store, run_id, todo), progress, report=report,
                what="localization cells")
    return LocalizationResults(out)


def _compute(plan: LocalizationPlan, store: Store, run_id: int, todo: list[Cell]) -> Iterator[Cell]:
    """Compute and commit ``todo``, drawing each image set once (only if one of its cells is left)."""
    groups: dict[str, list[Cell]] = {}
    for cell in todo:
        groups.setdefault(set_key(cell), []).append(cell)
    for key, cells in groups.items():
        data = _record_set(store, key, cells[0])
        for cell in cells:
            status, reason, seconds, scores = _score_cell(plan, cell, data)
            row = LocalizationCellRow(cell.key, key, cell.method, cell.role, cell.params, cell.trojan.name,
                                      cell.seed, cell.n_images, status, reason, seconds)
            store.record_localization_cell(run_id, row, scores)
            log.info("%-24s %-14s seed %d  %s  AUROC %.3f  (%.1f s)", cell.method, cell.trojan.name, cell.seed,
                     status, float(np.nanmean(scores["auroc"])), seconds)
            yield cell


def _record_set(store: Store, key: str, cell: Cell) -> LocalizationSet:
    """Draw a cell's held-out triggered images and record them (PNG strips of images and masks, sha256)."""
    from ..report.images import to_uint8

    data = localization_set(cell.trojan, n=cell.n_images, seed=cell.seed)
    image_file = store.save_images(key, to_uint8(data.images))
    mask_file = store.save_images(f"{key}-mask", to_uint8(data.masks[:, None].expand(-1, 3, -1, -1)))
    store.record_localization_set(key, cell.trojan.name, cell.trojan.target, cell.seed, cell.n_images,
                                  set_digest(data), image_file, mask_file)
    return data


def _score_cell(plan: LocalizationPlan, cell: Cell,
                data: LocalizationSet) -> tuple[str, str | None, float, dict[str, np.ndarray]]:
    """``(status, reason, seconds, per-image scores)``; a failure is scored as a flat map, never raised."""
    start = time.perf_counter()
    try:
        with time_budget(plan.suite.cell_timeout):
            result = score_attribution(plan.methods[cell.method], plan.loaded.model, cell.trojan, seed=cell.seed,
                                       data=data)
        return "ok", None, result["seconds"], {metric: result[metric] for metric in METRICS}
    except Exception as exc:  # noqa: BLE001 - any failure of a method is recorded, not raised
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("localization cell %s (%s, %s) failed: %s", cell.key, cell.method, cell.trojan.name, reason)
        return "failed", reason, time.perf_counter() - start, flat_map_scores(data)


# --- reading results back ------------------------------------------------------------------------------------


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
    """Summarize ``{(trojan, image): score}`` with :func:`~trojanbench.runner.stats.summarize` (images in the
    place of seeds: the bootstrap resamples trojans, then images within each)."""
    summary = summarize(scores, scores, {trojan: "patch" for trojan, _ in scores})
    return MetricSummary(summary.mean, summary.ci_low, summary.ci_high, summary.worst, summary.worst_trojan,
                         summary.n_cells)


class LocalizationResults:
    """The localization results of a folder (those its last localization run planned), from the store alone."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.store = Store(self.folder, create=False)
        runs = [r for r in self.store.runs() if r["suite"].get("task") == TASK]
        self.run: dict[str, Any] | None = runs[-1] if runs else None
        planned = set(self.run["suite"].get("cell_keys", [])) if self.run else set()
        self.cells = [cell for cell in self.store.localization_cells() if cell.key in planned]
        scores = self.store.localization_scores()
        self._scores = {cell.key: scores.get(cell.key, {}) for cell in self.cells}
        used = {cell.set_key for cell in self.cells}
        self.sets = {key: info for key, info in self.store.localization_sets().items() if key in used}

    def __bool__(self) -> bool:
        return bool(self.cells)

    def roles(self) -> dict[str, str]:
        return {cell.method: cell.role for cell in self.cells}

    def per_image(self, metric: str) -> dict[str, dict[tuple[str, tuple[int, int]], float]]:
        """``{method: {(trojan, (seed, image)): score}}`` for one metric (failed cells: the flat map's score)."""
        out: dict[str, dict[tuple[str, tuple[int, int]], float]] = {}
        for cell in self.cells:
            for index, value in enumerate(self._scores[cell.key].get(metric, ())):
                out.setdefault(cell.method, {})[(cell.trojan, (cell.seed, index))] = float(value)
        return out

    @cached_property
    def summaries(self) -> dict[str, dict[str, MetricSummary]]:
        """``{method: {metric: MetricSummary}}``."""
        out: dict[str, dict[str, MetricSummary]] = {}
        for metric in METRICS:
            for method, scores in self.per_image(metric).items():
                out.setdefault(method, {})[metric] = summarize_metric(scores)
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
        roles = self.roles()
        if REFERENCE not in roles:
            return {}
        return {m: self.compare(m, REFERENCE) for m, role in roles.items() if role == "tool"}

    def rows(self) -> list[dict[str, Any]]:
        """Display order: tools ranked by mean AUROC, then the baselines."""
        summaries, roles, speed = self.summaries, self.roles(), self.seconds_per_image()
        order = sorted(summaries, key=lambda m: (roles[m] != "tool", -summaries[m][PRIMARY_METRIC].mean, m))
        failed = {m: sum(c.status != "ok" for c in self.cells if c.method == m) for m in order}
        rows, rank = [], 0
        for method in order:
            rank += roles[method] == "tool"
            rows.append({"method": method, "role": roles[method], "rank": rank if roles[method] == "tool" else None,
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
        """One row per cell and image with its scores (NaN where a metric is undefined for the image)."""
        rows = []
        for cell in self.cells:
            scores = self._scores[cell.key]
            for index in range(max((len(v) for v in scores.values()), default=0)):
                rows.append({"method": cell.method, "role": cell.role, "trojan": cell.trojan, "seed": cell.seed,
                             "image": index, "status": cell.status,
                             **{m: float(scores[m][index]) if m in scores else float("nan") for m in METRICS},
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
        failed = [c for c in self.cells if c.status != "ok"]
        if failed:
            lines.append(f"{len(failed)} failed cell(s) scored as a flat map (chance); see the report.")
        return "\n".join(lines)


def load_localization_results(folder: str | Path) -> LocalizationResults:
    """Open the localization results of a folder written by :func:`run_localization`."""
    return LocalizationResults(folder)
