"""The removal task's runner: does a tool's output help remove a trojan? (see :mod:`trojanbench.tasks.removal`)

Order of work, as in :func:`trojanbench.run`: validate everything (suite, procedures and hyperparameters,
budgets, the audited and the clean model, trojans) before any edit runs; skip edits already in the store;
compute the rest in this process, committing each as it finishes.

**Edits (cells).** Each guided procedure (``unlearning``, ``pruning``) runs with every guidance source:
``none`` and ``random`` once per model (they do not depend on the trojan, so they are scored on every
trojan), ``oracle`` and each rediscovery method's images (read from this folder's store: run the
rediscovery task into the same ``--out`` first) once per trojan. Reference defences run once per model, or
once per trojan when they need its target class (Neural Cleanse); ``identity`` is the unedited model, the
anchor of every metric. On the **clean** model (the one the trojaned model was fine-tuned from) the same
procedures run with ``none``, ``random`` and ``oracle`` guidance: any change there is damage. A key is the
content hash of (task, procedure, params, source and its images' cell key, model, trojan, seed, budget, code
version); a procedure that raises or runs past ``cell_timeout`` becomes a failed edit with its reason.

**Statistics** (reusing :mod:`trojanbench.runner.stats`): per budget, procedure and source, the mean over
trojans of fidelity, DER, attack success, clean accuracy and relearned attack success, the worst trojan and
a 95% bootstrap interval over trojans (then seeds); a source's normalized score
``(source - random) / (oracle - random)`` on mean fidelity, with the same bootstrap; and each source minus
``random`` by fidelity (paired bootstrap): does any tool's guidance beat noise?
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from ..config import TrojanSpec, load_trojan_suite, load_yaml
from ..errors import ConfigError
from ..methods.editing import ImageGuidance, RemovalProcedure
from ..models import LoadedModel, load_model
from ..registry import load_plugins, make_method_of
from ..tasks.removal import (
    TriggerGuidance,
    budget_size,
    clean_set,
    defender_data,
    der,
    fidelity,
    measure,
    noise_images,
    normalized_score,
    relearn,
    training_set_size,
    triggered_set,
    TrojanMeasure,
)
from ..world import OBJECT_CLASSES
from .cells import code_version, content_key, trojan_record
from .execute import time_budget
from .pending import run_pending
from .stats import Comparison, Summary, _bootstrap_means, _grid, paired_comparison, summarize
from .store import REMOVAL_MEASURES, RemovalCellRow, Store, last_run_and_cells
from .suite import (
    Suite,
    check_number,
    first_of_each_kind,
    parse_suite_config,
    shipped_or_given,
    split_task_keys,
    with_overrides,
)

log = logging.getLogger(__name__)

TASK = "removal"
CONTROLS = ("none", "random")
ORACLE = "oracle"
ANCHOR = "identity"
PRIMARY_METRIC = "fidelity"
EXCLUDED_SOURCES = ("random_noise",)
"""Rediscovery methods not used as guidance: the store's noise duplicates the ``random`` control."""
QUICK_EVAL = 100


@dataclass(frozen=True)
class RemovalSuite:
    """A removal suite: the shared suite keys plus the removal's own (see ``assets/suites/removal.yaml``)."""

    suite: Suite
    budgets: tuple[str, ...] = ("1%",)
    clean_model: str | None = "clean"
    n_eval: int = 200
    n_clean_eval: int = 1000
    relearn_steps: int = 20
    relearn_lr: float = 0.003

    def to_dict(self) -> dict[str, Any]:
        return {**self.suite.to_dict(), "budgets": list(self.budgets), "clean_model": self.clean_model,
                "n_eval": self.n_eval, "n_clean_eval": self.n_clean_eval, "relearn_steps": self.relearn_steps,
                "relearn_lr": self.relearn_lr}


def parse_removal_suite(raw: Any, *, base_dir: Path | None = None) -> RemovalSuite:
    """Validate a raw mapping into a :class:`RemovalSuite` (shared keys as in any suite)."""
    shared, own = split_task_keys(raw, {f.name for f in dataclasses.fields(RemovalSuite)} - {"suite"})
    suite = parse_suite_config(shared, base_dir=base_dir)
    budgets = own.get("budgets", ["1%"])
    if not isinstance(budgets, list) or not budgets or len(set(map(str, budgets))) != len(budgets):
        raise ConfigError(f"'budgets' must be a non-empty list of distinct data budgets (e.g. ['100', '1%', '5%']). "
                          f"Got {budgets!r}.")
    clean = own.get("clean_model", "clean")
    if clean is not None and (not isinstance(clean, str) or not clean):
        raise ConfigError(f"'clean_model' must be null or a zoo name / checkpoint path. Got {clean!r}.")
    numbers = {name: check_number(name, own.get(name, getattr(RemovalSuite, name)), kind, low)
               for name, kind, low in (("n_eval", int, 10), ("n_clean_eval", int, 50), ("relearn_steps", int, 0),
                                       ("relearn_lr", float, 0.0))}
    return RemovalSuite(suite, tuple(str(b) for b in budgets), clean, **numbers)


def load_removal_suite(reference: str | Path | None = None) -> RemovalSuite:
    """A removal suite from a YAML file, or the shipped ``removal`` suite."""
    path = shipped_or_given(reference, "removal")
    return parse_removal_suite(load_yaml(path), base_dir=path.parent)


@dataclass(frozen=True)
class RemovalCell:
    """One edit (see the module docstring)."""

    procedure: str
    params: dict[str, Any]
    role: str
    source: str
    model_role: str
    trojan: TrojanSpec | None
    seed: int
    budget: str
    key: str
    guidance_key: str | None = None
    """The rediscovery cell whose images guide this edit (tool sources only)."""

    @property
    def label(self) -> str:
        guided = f" <- {self.source}" if self.source != "-" else ""
        scope = self.trojan.name if self.trojan else "all trojans"
        return f"{self.procedure}{guided} · {scope} · {self.model_role} · {self.budget} · seed {self.seed}"


@dataclass
class RemovalPlan:
    """A validated removal run."""

    config: RemovalSuite
    procedures: dict[str, RemovalProcedure]
    trojans: list[TrojanSpec]
    models: dict[str, LoadedModel]
    cells: list[RemovalCell]
    guidance: dict[str, Any]
    """``{rediscovery cell key: CellRow}`` for the tool sources used."""
    missing_tools: list[str] = field(default_factory=list)
    quick: bool = False
    plugins: tuple[str, ...] = ()

    @property
    def suite(self) -> Suite:
        return self.config.suite


def make_procedure(name: str, params: dict[str, Any] | None = None, *, quick: bool = False) -> RemovalProcedure:
    """Instantiate a registered removal procedure with ``params`` over its defaults (``quick_params`` first)."""
    return make_method_of(name, params, RemovalProcedure, "a removal procedure", quick=quick)


def _sources(procedure: RemovalProcedure, model_role: str, trojans: list[TrojanSpec],
             tools: dict[tuple[str, str], Any]) -> list[tuple[str, TrojanSpec | None, str | None]]:
    """``(source, trojan or None, guidance cell key)`` of each edit one procedure makes on one model."""
    if not procedure.uses_guidance:
        scopes = trojans if procedure.per_target else [None]
        return [("-", trojan, None) for trojan in scopes]
    out = [(control, None, None) for control in CONTROLS]
    out += [(ORACLE, trojan, None) for trojan in trojans]
    if model_role == "trojaned":
        out += [(method, trojan, row.key) for (method, name), row in sorted(tools.items())
                for trojan in trojans if trojan.name == name]
    return out


def plan_removal(suite: RemovalSuite | str | Path | None = None, *, out: str | Path = "trojanbench-results",
                 quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                 seeds: int | None = None, budgets: Iterable[str] | None = None,
                 plugins: Iterable[str] = ()) -> RemovalPlan:
    """Resolve and validate a removal run without computing anything (bad input fails here)."""
    from ..audit import check_world_classifier, trojans_of

    plugins = load_plugins(plugins)
    config = suite if isinstance(suite, RemovalSuite) else load_removal_suite(suite)
    base = with_overrides(config.suite, methods=methods, seeds=seeds, quick=quick)
    if quick:
        config = dataclasses.replace(config, n_eval=min(config.n_eval, QUICK_EVAL),
                                     n_clean_eval=min(config.n_clean_eval, 4 * QUICK_EVAL),
                                     relearn_steps=config.relearn_steps // 2)
    config = dataclasses.replace(config, suite=base, budgets=tuple(budgets) if budgets else config.budgets)
    procedures = {spec.name: make_procedure(spec.name, spec.params, quick=quick) for spec in base.methods}
    procedures.setdefault(ANCHOR, make_procedure(ANCHOR))  # the unedited model: every metric's reference
    models = {"trojaned": load_model(base.model)}
    check_world_classifier(models["trojaned"])
    if config.clean_model:
        models["clean"] = load_model(config.clean_model)
        check_world_classifier(models["clean"])
    sizes = {budget: budget_size(budget, training_set_size(models["trojaned"].card)) for budget in config.budgets}
    trojan_suite = load_trojan_suite(base.trojans, OBJECT_CLASSES) if base.trojans else trojans_of(models["trojaned"])
    chosen = [trojan_suite.get(name) for name in trojans] if trojans else list(trojan_suite.trojans)
    if quick and not trojans:
        chosen = first_of_each_kind(chosen)
    if not chosen:
        raise ConfigError(f"Model {base.model!r} has no trojans to remove; give a trojan spec ('trojans:' in the suite).")
    store = Store(out)
    try:
        found = store.rediscovery_images(models["trojaned"].sha256)
    finally:
        store.close()
    cells, guidance, missing = [], {}, set()
    for seed in base.seeds:
        tools = {(m, t): row for (m, t, s), row in found.items()
                 if s == seed and row.role in ("tool", "baseline") and m not in EXCLUDED_SOURCES}
        missing |= {t.name for t in chosen if not any(name == t.name for _, name in tools)}
        guidance.update({row.key: row for row in tools.values()})
        for budget in config.budgets:
            for model_role, loaded in models.items():
                for name, procedure in procedures.items():
                    role = "baseline" if procedure.is_baseline else "procedure"
                    for source, trojan, guidance_key in _sources(procedure, model_role, chosen, tools):
                        payload = {"task": TASK, "procedure": name, "params": procedure.get_params(), "source": source,
                                   "guidance": guidance_key, "model": loaded.sha256, "model_role": model_role,
                                   "trojan": trojan_record(trojan), "seed": seed,
                                   "budget": sizes[budget], "n_eval": config.n_eval,
                                   "n_clean_eval": config.n_clean_eval, "relearn": [config.relearn_steps,
                                                                                     config.relearn_lr],
                                   "n_guidance": base.n_images, "code_version": code_version(type(procedure))}
                        cells.append(RemovalCell(name, procedure.get_params(), role, source, model_role, trojan, seed,
                                                 budget, content_key(payload), guidance_key))
    if missing:
        log.warning("No rediscovery images of this model in %s for trojan(s) %s: only the controls and the oracle "
                    "guide their removal. Run `trojanbench run --out %s` first to score tools.", out,
                    ", ".join(sorted(missing)), out)
    return RemovalPlan(config, procedures, chosen, models, cells, guidance, sorted(missing), quick, plugins=plugins)


def run_removal(suite: RemovalSuite | str | Path | None = None, *, out: str | Path = "trojanbench-results",
                quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                seeds: int | None = None, budgets: Iterable[str] | None = None, plugins: Iterable[str] = (),
                progress: Callable[[int, int, RemovalCell], None] | None = None,
                report: bool = True) -> "RemovalResults":
    """Run the removal task (default: the shipped ``removal`` suite) into ``out`` and return its results.

    Tool guidance is read from the rediscovery results already in ``out`` (same model); ``progress(done,
    total, cell)`` is called after each edit. With ``report``, the HTML report and exports are rewritten.
    """
    from .run import provenance

    plan = plan_removal(suite, out=out, quick=quick, methods=methods, trojans=trojans, seeds=seeds, budgets=budgets,
                        plugins=plugins)
    record = plan.config.to_dict() | {"task": TASK, "quick": quick, "trojan_names": [t.name for t in plan.trojans],
                                      "cell_keys": [cell.key for cell in plan.cells],
                                      "missing_tools": plan.missing_tools,
                                      "trojan_kinds": {t.name: t.kind for t in plan.trojans},
                                      "source_roles": {row.method: row.role for row in plan.guidance.values()}}

    def compute(store: Store, run_id: int, todo: list[RemovalCell]) -> Iterator[RemovalCell]:
        workbench = _Workbench(plan, store)
        for cell in todo:
            store.record_removal_cell(run_id, *workbench.compute(cell))
            yield cell

    origin = provenance(plan.suite.model, plan.models["trojaned"].sha256, plan.models["trojaned"].card)
    run_pending(out, plan.cells, record, origin, Store.finished_removal_keys, compute, progress,
                report=report, what="removal edits")
    return RemovalResults(out)


class _Workbench:
    """Data shared by the edits of a run, built once: defender data per (budget, seed), test sets per seed."""

    def __init__(self, plan: RemovalPlan, store: Store):
        self.plan, self.store = plan, store
        self.n_train = training_set_size(plan.models["trojaned"].card)
        self.cache: dict[tuple, Any] = {}

    def _once(self, key: tuple, build: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]

    def defender(self, budget: str, seed: int):
        return self._once(("defender", budget, seed), lambda: defender_data(budget_size(budget, self.n_train), seed=seed))

    def clean(self, seed: int):
        return self._once(("clean", seed), lambda: clean_set(self.plan.config.n_clean_eval, self.plan.trojans, seed=seed))

    def triggered(self, trojan: TrojanSpec, seed: int):
        return self._once(("triggered", trojan.name, seed),
                          lambda: triggered_set(trojan, self.plan.config.n_eval, seed=seed))

    def guidance(self, cell: RemovalCell):
        if cell.source == "none" or cell.source == "-":
            return None
        if cell.source == "random":
            return ImageGuidance("random", noise_images(self.plan.suite.n_images, cell.seed))
        if cell.source == ORACLE:
            return TriggerGuidance(cell.trojan, seed=cell.seed)
        pixels = self.store.load_images(self.plan.guidance[cell.guidance_key])
        return ImageGuidance(cell.source, torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)

    def compute(self, cell: RemovalCell) -> tuple[RemovalCellRow, dict[str, dict[str, float]]]:
        """Edit, measure on each trojan the edit is scored for, and relearn (trojaned model only)."""
        start = time.perf_counter()
        model = self.plan.models[cell.model_role].model
        trojans = [cell.trojan] if cell.trojan else self.plan.trojans
        status, reason, scores = "ok", None, {}
        try:
            with time_budget(self.plan.suite.cell_timeout):
                target = cell.trojan.target if cell.trojan else 0
                edited = self.plan.procedures[cell.procedure].remove(
                    model, self.defender(cell.budget, cell.seed), self.guidance(cell), target, cell.seed)
            clean = self.clean(cell.seed)
            accuracy = measure(edited, clean, self.triggered(trojans[0], cell.seed)).clean_accuracy
            for trojan in trojans:
                measured = measure(edited, clean, self.triggered(trojan, cell.seed), clean_accuracy=accuracy)
                relearned = math.nan
                if cell.model_role == "trojaned" or cell.procedure == ANCHOR:
                    again = relearn(edited, trojan, self.defender(cell.budget, cell.seed),
                                    steps=self.plan.config.relearn_steps, lr=self.plan.config.relearn_lr,
                                    seed=cell.seed)
                    relearned = measure(again, clean, self.triggered(trojan, cell.seed), accuracy).attack_success
                scores[trojan.name] = {**dataclasses.asdict(measured), "relearned_attack_success": relearned}
        except Exception as exc:  # noqa: BLE001 - a failing procedure is recorded, not raised
            status, reason, scores = "failed", f"{type(exc).__name__}: {exc}"[:2000], {}
            log.warning("removal edit %s (%s) failed: %s", cell.key, cell.label, reason)
        seconds = time.perf_counter() - start
        log.info("%s  %s (%.1f s)", cell.label, status, seconds)
        row = RemovalCellRow(cell.key, cell.procedure, cell.role, cell.params, cell.source, cell.model_role,
                             cell.trojan.name if cell.trojan else None, cell.seed, cell.budget, status, reason, seconds)
        return row, scores


# --- reading results back ------------------------------------------------------------------------------------

METRICS = ("fidelity", "der", "attack_success", "clean_accuracy", "robust_accuracy", "relearned_attack_success")
HIGHER_IS_BETTER = {"fidelity": True, "der": True, "attack_success": False, "clean_accuracy": True,
                    "robust_accuracy": True, "relearned_attack_success": False}
METRIC_LABELS = {"fidelity": "fidelity", "der": "DER", "attack_success": "ASR after", "clean_accuracy": "acc after",
                 "robust_accuracy": "robust acc", "relearned_attack_success": "ASR relearned"}


@dataclass(frozen=True)
class Normalized:
    """``(source - random) / (oracle - random)`` on mean fidelity, with a 95% bootstrap interval (NaN: the
    oracle beats random by too little to normalize by)."""

    value: float
    ci_low: float
    ci_high: float
    n_trojans: int


def normalized_interval(source: dict, random: dict, oracle: dict) -> Normalized:
    """:func:`~trojanbench.tasks.removal.normalized_score` of the means over the cells all three share, and its
    bootstrap over trojans then seeds (the same resamples for all three: paired)."""
    shared = sorted(set(source) & set(random) & set(oracle))
    if not shared:
        return Normalized(math.nan, math.nan, math.nan, 0)
    grids = [_grid({cell: values[cell] for cell in shared})[1] for values in (source, random, oracle)]
    value = normalized_score(*(float(np.nanmean(g)) for g in grids))
    boots = [_bootstrap_means(g) for g in grids]
    gap = boots[2] - boots[1]
    ratios = np.where(gap >= 0.05, (boots[0] - boots[1]) / np.where(gap == 0, 1, gap), np.nan)
    finite = ratios[np.isfinite(ratios)]
    low, high = (np.percentile(finite, [2.5, 97.5]) if len(finite) > len(ratios) // 2 else (math.nan, math.nan))
    return Normalized(value, float(low), float(high), len({t for t, _ in shared}))


class RemovalResults:
    """The removal results of a folder (those planned by its last removal run with results), from the store alone."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        store = Store(self.folder, create=False)
        try:
            self.run, self.cells = last_run_and_cells(store, TASK, store.removal_cells(), lambda cell: cell.key)
            scores = store.removal_scores()
        finally:
            store.close()
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
        """``{(procedure, source): {metric: Summary}}``: mean over trojans, 95% interval, worst (lowest) trojan."""
        kinds = {t: self.kinds.get(t, "?") for t in self.trojans}
        out: dict[tuple[str, str], dict[str, Summary]] = {}
        for entry, values in self.per_trojan(budget, model_role).items():
            out[entry] = {metric: summarize(cells, cells, kinds) for metric, cells in values.items()
                          if cells and all(np.isfinite(v) for v in cells.values())}
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
        """Each guided source minus ``random`` guidance of the same procedure, by fidelity (paired bootstrap)."""
        values = self.per_trojan(budget)
        out = {}
        for (procedure, source), metrics in values.items():
            random = values.get((procedure, "random"))
            if source in ("-", "random") or random is None:
                continue
            out[(procedure, source)] = paired_comparison(f"{procedure} <- {source}", f"{procedure} <- random",
                                                         metrics[PRIMARY_METRIC], random[PRIMARY_METRIC])
        return out

    def source_roles(self) -> dict[str, str]:
        """``{source: control | oracle | tool | baseline}`` of the guided edits."""
        roles = {"none": "control", "random": "control", ORACLE: "oracle", "-": "defence"}
        provenance = self.run["suite"].get("source_roles", {}) if self.run else {}
        return {cell.source: roles.get(cell.source, provenance.get(cell.source, "tool")) for cell in self.cells}

    def rows(self, budget: str) -> list[dict[str, Any]]:
        """Display rows for one budget: per procedure, the oracle, tools by normalized score, the controls; then
        the reference defences and the unedited anchor."""
        summaries, normalized, versus = self.summaries(budget), self.normalized(budget), self.versus_random(budget)
        roles, procedure_roles = self.source_roles(), {c.procedure: c.role for c in self.cells}
        clean = self.summaries(budget, "clean")
        failed: dict[tuple[str, str], int] = {}
        for cell in self.cells:
            if cell.budget == budget and cell.status != "ok":
                failed[(cell.procedure, cell.source)] = failed.get((cell.procedure, cell.source), 0) + 1
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
                listed = ", ".join(f"{c.a.split(' <- ')[1]} {c.mean_difference:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
                                   for c in winners)
                sentences.append(f"{procedure}: {len(winners)} of {len(tools)} guidance sources beat random guidance "
                                 f"by fidelity (paired 95% interval above 0): {listed}.")
            else:
                best = max(tools.values(), key=lambda c: c.mean_difference)
                sentences.append(f"{procedure}: no guidance source beats random guidance by fidelity; the closest, "
                                 f"{best.a.split(' <- ')[1]}, differs by {best.mean_difference:+.3f} "
                                 f"[{best.ci_low:+.3f}, {best.ci_high:+.3f}].")
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
        """The removal tables as text, one per budget."""
        lines = [f"removal: {self.description()}",
                 "mean over trojans [95% bootstrap interval] (worst trojan); normalized = (source - random) / "
                 "(oracle - random) on fidelity"]
        for budget in self.budgets:
            rows = self.rows(budget)
            damage = self.clean_damage(budget)
            width = max([28, *(len(r["label"]) + 2 for r in rows)])
            lines += ["", f"budget {budget}",
                      f"{'edit':<{width}}{'fidelity [95% CI] worst':<28}{'DER':>6}{'ASR':>7}{'acc':>7}{'relearn':>9}"
                      f"{'normalized [95% CI]':>24}{'clean-model dAcc':>18}"]
            for row in rows:
                metrics = row["metrics"]
                if not metrics:
                    lines.append(f"{row['label']:<{width}}failed ({row['failed']} edit(s))")
                    continue
                fid = metrics.get("fidelity")
                fid_text = (f"{fid['mean']:6.3f} [{fid['ci_low']:5.2f}, {fid['ci_high']:5.2f}] {fid['worst']:6.3f}"
                            if fid else "")
                norm = row["normalized"]
                norm_text = (f"{norm.value:6.2f} [{norm.ci_low:5.2f}, {norm.ci_high:5.2f}]"
                             if norm and np.isfinite(norm.value) else "")
                relearned = metrics.get("relearned_attack_success", {}).get("mean", math.nan)
                change = damage.get((row["procedure"], row["source"]))
                lines.append(f"{row['label']:<{width}}{fid_text:<28}{_mean(metrics, 'der'):>6.3f}"
                             f"{_mean(metrics, 'attack_success'):>7.3f}{_mean(metrics, 'clean_accuracy'):>7.3f}"
                             f"{relearned:>9.3f}{norm_text:>24}{'' if change is None else f'{change:+.3f}':>18}")
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
