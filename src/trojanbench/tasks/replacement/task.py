"""The replacement task: simpler models at fixed parameter budgets (scoring in :mod:`.metrics`).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator

from ...config import TrojanSpec, load_trojan_suite
from ...engine.cells import code_version, content_key
from ...engine.execute import attempt, time_budget
from ...engine.loop import run_pending
from ...engine.provenance import provenance
from ...engine.store import Store
from ...engine.suite import Plan, TaskSuite, given_names, with_overrides
from ...errors import ConfigError
from ...methods.replacement import BudgetError, ConstantPredictor, NetworkReplacement, ReplacementMethod
from ...methods.replacement import count_nonzero_parameters
from ...models import LoadedModel, load_model
from ...params import Interval
from ...registry import load_plugins, make_method_of
from ...world import OBJECT_CLASSES
from .metrics import evaluation_sets, fit_data, measure, original_predictions, parameter_budget
from .results import CONSTANT, ORIGINAL, REPLACEMENT_CELLS, TASK, ReplacementResults

log = logging.getLogger(__name__)


def _parameter_budgets(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"'budgets' must be a list of parameter budgets (e.g. ['1%', '3%', '10%']). Got {value!r}.")
    return tuple(map(str, value))


@dataclass(frozen=True)
class ReplacementSuite(TaskSuite):
    """A replacement suite: the shared keys plus the parameter ``budgets``, the fit images (``n_fit``) and the
    test images per distribution (``n_eval`` clean and OOD, ``n_per_trojan`` triggered and near-miss)."""

    budgets: tuple[str, ...] = ("1%", "3%", "10%")
    n_fit: int = 16000
    n_eval: int = 500
    n_per_trojan: int = 60
    task: ClassVar[str] = "replacement"
    constraints: ClassVar[dict] = {"n_fit": Interval(int, 100, None), "n_eval": Interval(int, 20, None),
                                   "n_per_trojan": Interval(int, 6, None)}
    converters: ClassVar[dict] = {"budgets": _parameter_budgets}  # sizes checked against the model when planned


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
class ReplacementPlan(Plan):
    """A validated replacement run: the methods, the trojans measured and the model replaced."""

    methods: dict[str, ReplacementMethod]
    trojans: list[TrojanSpec]
    loaded: LoadedModel


def plan_replacement(suite: ReplacementSuite | str | Path | None = None, *, quick: bool = False,
                     methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                     seeds: int | None = None, budgets: Iterable[str] | None = None,
                     plugins: Iterable[str] = ()) -> ReplacementPlan:
    """Resolve and validate a replacement run without computing anything."""
    from ...audit import check_world_classifier, trojans_of

    plugins = load_plugins(plugins)
    config = suite if isinstance(suite, ReplacementSuite) else ReplacementSuite.load(suite)
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
    trojans = given_names(trojans, "--trojans")
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
    return ReplacementPlan(built, chosen, loaded, config=config, cells=cells, quick=quick, plugins=plugins)


def run_replacement(suite: ReplacementSuite | str | Path | None = None, *, out: str | Path = "trojanbench-results",
                    quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                    seeds: int | None = None, budgets: Iterable[str] | None = None, plugins: Iterable[str] = (),
                    progress: Callable[[int, int, ReplacementCell], None] | None = None) -> ReplacementResults:
    """Run the replacement task (default: the shipped ``replacement`` suite) into ``out`` and return its results."""
    plan = plan_replacement(suite, quick=quick, methods=methods, trojans=trojans, seeds=seeds, budgets=budgets,
                            plugins=plugins)
    record = plan.config.to_dict() | {"task": TASK, "quick": quick,
                                      "trojan_kinds": {t.name: t.kind for t in plan.trojans}}
    origin = provenance(plan.suite.model, plan.loaded.sha256, plan.loaded.card)
    with Store(out, cell_tables=(REPLACEMENT_CELLS,)) as store:

        def compute(run_id: int, todo: list[ReplacementCell]) -> Iterator[ReplacementCell]:
            cache: dict = {}
            for cell in todo:
                store.record_json_cell(REPLACEMENT_CELLS.name, run_id, _compute(plan, cell, cache))
                yield cell

        run_pending(store, plan.cells, record, origin, REPLACEMENT_CELLS.name, compute, progress,
                    what="replacements")
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
    data, sets, original = _seed_inputs(plan, cell.seed, cache)
    constant = ConstantPredictor.most_frequent(data)
    status, reason = "ok", None
    if cell.label == ORIGINAL:
        replacement = NetworkReplacement(plan.loaded.model)
    elif cell.label == CONSTANT:
        replacement = constant
    else:
        def fit():
            try:
                with time_budget(plan.suite.cell_timeout):
                    return plan.methods[cell.label].replace(plan.loaded.model, data, cell.budget_parameters, cell.seed)
            except BudgetError as exc:  # not a failure: the method says it cannot fit the budget
                return exc

        outcome = attempt(fit, timeout=None, what=f"replacement {cell.description}")
        replacement = outcome.value
        if not outcome.ok:
            status, reason, replacement = "failed", outcome.reason, constant
        elif isinstance(replacement, BudgetError):
            status, reason, replacement = "over_budget", str(replacement)[:2000], constant
    measures = measure(replacement, sets, original, OBJECT_CLASSES)
    seconds = time.perf_counter() - start
    log.info("%s  %s (%.1f s)", cell.description, status, seconds)
    return {"key": cell.key, "method": cell.method, "label": cell.label, "role": cell.role, "params": cell.params,
            "budget": cell.budget, "budget_parameters": cell.budget_parameters, "seed": cell.seed, "status": status,
            "reason": reason, "seconds": seconds, "measures": measures}


