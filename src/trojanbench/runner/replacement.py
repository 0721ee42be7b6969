"""The replacement task's runner: simpler models at fixed parameter budgets (see :mod:`trojanbench.tasks.replacement`).

Each method of the suite replaces the suite's model (the trojaned model by default) at each budget, once per
seed; each seed draws its own fit images. Two anchors are measured beside them on every seed: the ``original``
network itself (at its full size) and the ``constant`` predictor (its most frequent class on the fit images,
one parameter). A method that cannot fit a budget (``over budget``) or fails is scored as the constant
predictor there, and the report says so. Validation first, content-hash keys and resume as in the other tasks.

**Statistics**: per method, budget and distribution, the mean over trojans (for triggered and near-miss
images; of the mean over seeds) with its 95% bootstrap interval and worst trojan; per method and distribution,
the area under fidelity against log budget, on the means and for the worst trojan.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from operator import itemgetter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..config import TrojanSpec, load_trojan_suite, load_yaml
from ..errors import ConfigError
from ..methods.replacement import BudgetError, ConstantPredictor, NetworkReplacement, ReplacementMethod
from ..methods.replacement import count_nonzero_parameters
from ..models import LoadedModel, load_model
from ..registry import load_plugins, make_method_of
from ..tasks.replacement import (
    DISTRIBUTIONS,
    PER_TROJAN,
    area_under_log_budget,
    evaluation_sets,
    fit_data,
    measure,
    original_predictions,
    parameter_budget,
)
from ..world import OBJECT_CLASSES
from .cells import code_version, content_key
from .execute import time_budget
from .pending import run_pending
from .stats import Summary, summarize
from .store import Store, last_run_and_cells
from .suite import Suite, check_number, parse_suite_config, shipped_or_given, split_task_keys, with_overrides

log = logging.getLogger(__name__)

TASK = "replacement"
ORIGINAL, CONSTANT = "original", "constant"
LABELS = {"clean": "clean", "ood": "OOD", "triggered": "triggered", "near_miss": "near-miss"}


@dataclass(frozen=True)
class ReplacementSuite:
    """A replacement suite: the shared keys plus the parameter ``budgets``, the fit images (``n_fit``) and the
    test images per distribution (``n_eval`` clean and OOD, ``n_per_trojan`` triggered and near-miss)."""

    suite: Suite
    budgets: tuple[str, ...] = ("1%", "3%", "10%")
    n_fit: int = 16000
    n_eval: int = 500
    n_per_trojan: int = 60

    def to_dict(self) -> dict[str, Any]:
        return {**self.suite.to_dict(), "budgets": list(self.budgets), "n_fit": self.n_fit, "n_eval": self.n_eval,
                "n_per_trojan": self.n_per_trojan}


def load_replacement_suite(reference: str | Path | None = None) -> ReplacementSuite:
    """A replacement suite from a YAML file, or the shipped ``replacement`` suite."""
    path = shipped_or_given(reference, TASK)
    shared, own = split_task_keys(load_yaml(path), ("budgets", "n_fit", "n_eval", "n_per_trojan"))
    budgets = own.get("budgets", list(ReplacementSuite.budgets))
    if not isinstance(budgets, list):
        raise ConfigError(f"'budgets' must be a list of parameter budgets (e.g. ['1%', '3%', '10%']). Got {budgets!r}.")
    numbers = {name: check_number(name, own.get(name, getattr(ReplacementSuite, name)), int, low)
               for name, low in (("n_fit", 100), ("n_eval", 20), ("n_per_trojan", 6))}
    return ReplacementSuite(parse_suite_config(shared, base_dir=path.parent), tuple(map(str, budgets)), **numbers)


def check_budgets(budgets: tuple[str, ...], n_parameters: int) -> dict[str, int]:
    """``{budget: non-zero parameters}``; the budgets must be a non-empty list of distinct sizes."""
    sizes = {budget: parameter_budget(budget, n_parameters) for budget in budgets}
    if not budgets or len(set(sizes.values())) != len(budgets):
        raise ConfigError(f"Budgets must be a non-empty list of distinct parameter budgets (e.g. 1%,3%,10% or "
                          f"counts). Got {list(budgets)} = {list(sizes.values())} parameters.")
    return sizes


@dataclass(frozen=True)
class ReplacementCell:
    label: str
    method: str
    params: dict[str, Any]
    role: str
    budget: str
    budget_parameters: int
    seed: int
    key: str

    @property
    def description(self) -> str:
        return f"{self.label} · budget {self.budget} ({self.budget_parameters} parameters) · seed {self.seed}"


@dataclass
class ReplacementPlan:
    config: ReplacementSuite
    methods: dict[str, ReplacementMethod]
    trojans: list[TrojanSpec]
    loaded: LoadedModel
    cells: list[ReplacementCell]
    quick: bool = False
    plugins: tuple[str, ...] = ()

    @property
    def suite(self) -> Suite:
        return self.config.suite


def plan_replacement(suite: ReplacementSuite | str | Path | None = None, *, quick: bool = False,
                     methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                     seeds: int | None = None, budgets: Iterable[str] | None = None,
                     plugins: Iterable[str] = ()) -> ReplacementPlan:
    """Resolve and validate a replacement run without computing anything."""
    from ..audit import check_world_classifier, trojans_of

    plugins = load_plugins(plugins)
    config = suite if isinstance(suite, ReplacementSuite) else load_replacement_suite(suite)
    base = with_overrides(config.suite, methods=methods, seeds=seeds, quick=quick)
    config = dataclasses.replace(config, suite=base, budgets=tuple(budgets) if budgets else config.budgets)
    if quick:
        config = dataclasses.replace(config, n_fit=min(config.n_fit, 3000), n_eval=min(config.n_eval, 250),
                                     n_per_trojan=min(config.n_per_trojan, 30))
    built = {spec.label: make_method_of(spec.name, spec.params, ReplacementMethod, "a replacement method", quick=quick)
             for spec in base.methods}
    loaded = load_model(base.model)
    check_world_classifier(loaded)
    trojan_suite = load_trojan_suite(base.trojans, OBJECT_CLASSES) if base.trojans else trojans_of(loaded)
    chosen = [trojan_suite.get(name) for name in trojans] if trojans else list(trojan_suite.trojans)
    full = count_nonzero_parameters(loaded.model)
    sizes = check_budgets(config.budgets, full)
    settings = {"task": TASK, "model": loaded.sha256, "trojans": [dataclasses.asdict(t) for t in chosen],
                "n_fit": config.n_fit, "n_eval": config.n_eval, "n_per_trojan": config.n_per_trojan}

    def cell(label: str, name: str, params: dict, role: str, budget: str, size: int, seed: int, version: str):
        payload = {**settings, "method": name, "params": params, "budget": size, "seed": seed, "code_version": version}
        return ReplacementCell(label, name, params, role, budget, size, seed, content_key(payload))

    cells = []
    for seed in base.seeds:
        anchor_version = code_version(NetworkReplacement)
        cells += [cell(ORIGINAL, ORIGINAL, {}, "anchor", "100%", full, seed, anchor_version),
                  cell(CONSTANT, CONSTANT, {}, "anchor", "1", 1, seed, anchor_version)]
        for label, method in built.items():
            role = "baseline" if method.is_baseline else "method"
            for budget, size in sizes.items():
                cells.append(cell(label, method.name, method.get_params(), role, budget, size, seed,
                                  code_version(type(method))))
    return ReplacementPlan(config, built, chosen, loaded, cells, quick, plugins)


def run_replacement(suite: ReplacementSuite | str | Path | None = None, *, out: str | Path = "trojanbench-results",
                    quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                    seeds: int | None = None, budgets: Iterable[str] | None = None, plugins: Iterable[str] = (),
                    progress: Callable[[int, int, ReplacementCell], None] | None = None,
                    report: bool = True) -> "ReplacementResults":
    """Run the replacement task (default: the shipped ``replacement`` suite) into ``out`` and return its results."""
    from .run import provenance

    plan = plan_replacement(suite, quick=quick, methods=methods, trojans=trojans, seeds=seeds, budgets=budgets,
                            plugins=plugins)
    record = plan.config.to_dict() | {"task": TASK, "quick": quick,
                                      "trojan_kinds": {t.name: t.kind for t in plan.trojans},
                                      "cell_keys": [cell.key for cell in plan.cells]}

    def compute(store: Store, run_id: int, todo: list[ReplacementCell]) -> Iterator[ReplacementCell]:
        cache: dict = {}
        for cell in todo:
            store.record_replacement_cell(run_id, _compute(plan, cell, cache))
            yield cell

    origin = provenance(plan.suite.model, plan.loaded.sha256, plan.loaded.card)
    run_pending(out, plan.cells, record, origin, Store.finished_replacement_keys, compute, progress,
                report=report, what="replacements")
    return ReplacementResults(out)


def _seed_inputs(plan: ReplacementPlan, seed: int, cache: dict):
    """The fit data, evaluation sets and the original's predictions of a seed (drawn once per run; cells come
    seed by seed, so only the current seed's are kept)."""
    if seed not in cache:
        cache.clear()
        model, config = plan.loaded.model, plan.config
        data = fit_data(model, config.n_fit, seed=seed)
        sets = evaluation_sets(plan.trojans, n_clean=config.n_eval, n_per_trojan=config.n_per_trojan, seed=seed)
        cache[seed] = (data, sets, original_predictions(model, sets))
    return cache[seed]


def _compute(plan: ReplacementPlan, cell: ReplacementCell, cache: dict) -> dict[str, Any]:
    """Fit one replacement and measure it (the constant predictor stands in for one over budget or failed)."""
    start = time.perf_counter()
    status, reason = "ok", None
    data, sets, original = _seed_inputs(plan, cell.seed, cache)
    constant = ConstantPredictor.most_frequent(data)
    if cell.label == ORIGINAL:
        replacement = NetworkReplacement(plan.loaded.model)
    elif cell.label == CONSTANT:
        replacement = constant
    else:
        try:
            with time_budget(plan.suite.cell_timeout):
                replacement = plan.methods[cell.label].replace(plan.loaded.model, data, cell.budget_parameters,
                                                               cell.seed)
        except BudgetError as exc:
            status, reason, replacement = "over_budget", str(exc)[:2000], constant
        except Exception as exc:  # noqa: BLE001 - a failing method is recorded, not raised
            status, reason, replacement = "failed", f"{type(exc).__name__}: {exc}"[:2000], constant
            log.warning("replacement %s failed: %s", cell.description, reason)
    measures = measure(replacement, sets, original, OBJECT_CLASSES)
    seconds = time.perf_counter() - start
    log.info("%s  %s (%.1f s)", cell.description, status, seconds)
    return {"key": cell.key, "method": cell.method, "label": cell.label, "role": cell.role, "params": cell.params,
            "budget": cell.budget, "budget_parameters": cell.budget_parameters, "seed": cell.seed, "status": status,
            "reason": reason, "seconds": seconds, "measures": measures}


class ReplacementResults:
    """The replacement results of a folder (those planned by its last replacement run with results), from the
    store alone."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        store = Store(self.folder, create=False)
        try:
            self.run, self.cells = last_run_and_cells(store, TASK, store.replacement_cells(), itemgetter("key"))
        finally:
            store.close()
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
        """Fidelity on one distribution: mean over trojans of the mean over seeds, interval and worst trojan."""
        scores = self._scores(label, budget, distribution)
        kinds = self.kinds if distribution in PER_TROJAN else {distribution: distribution}
        return summarize(scores, scores, kinds)

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
        """The replacement tables as text: area under fidelity vs log budget, fidelity per budget, explanations."""
        areas, statuses = self.areas(), self.statuses()
        width = max([24, *(len(label) + 2 for label in self.labels)])
        lines = [f"replacement: {self.description()}",
                 "area under fidelity vs log budget: mean (worst trojan)",
                 f"{'method':<{width}}" + "".join(f"{LABELS[d]:>18}" for d in DISTRIBUTIONS)]
        for label, values in areas.items():
            lines.append(f"{label:<{width}}" + "".join(f"{values[d]['mean']:>10.3f} ({values[d]['worst']:.3f})"
                                                      for d in DISTRIBUTIONS))
        lines += ["", "fidelity per budget (non-zero parameters): mean (worst trojan); * over budget or failed: "
                      "scored as the constant predictor",
                  f"{'method':<{width}}{'budget':>9}" + "".join(f"{LABELS[d]:>18}" for d in DISTRIBUTIONS)]
        for label in self.labels:
            for budget in self.budgets(label):
                flag = "*" if set(statuses[(label, budget)]) - {"ok"} else " "
                cells = "".join(f"{(s := self.summary(label, budget, d)).mean:>10.3f} ({s.worst:.3f})"
                                for d in DISTRIBUTIONS)
                lines.append(f"{label:<{width}}{budget:>8}{flag}{cells}")
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
