"""The removal task: does a tool's output help remove a trojan? (scoring in :mod:`.metrics`)

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

**Statistics** (reusing :mod:`trojanbench.engine.stats`): per budget, procedure and source, the mean over
trojans of fidelity, DER, attack success, clean accuracy and relearned attack success, the worst trojan and
a 95% bootstrap interval over trojans (then seeds); a source's normalized score
``(source - random) / (oracle - random)`` on mean fidelity, with the same bootstrap; and each source minus
``random`` by fidelity (paired bootstrap): does any tool's guidance beat noise?
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator

from ...config import TrojanSpec, load_trojan_suite
from ...data import ImageFolderData
from ...engine.cells import code_version, content_key, trojan_record
from ...engine.execute import attempt, time_budget
from ...engine.loop import run_pending
from ...engine.own_data import open_run_model
from ...engine.provenance import provenance
from ...imaging import from_uint8
from ...engine.suite import Plan, TaskSuite, first_of_each_kind, given_names, with_overrides
from ...errors import ConfigError
from ...methods.editing import ImageGuidance, RemovalProcedure
from ...models import LoadedModel, load_model
from ...params import InstanceOf, Interval
from ...registry import load_plugins, make_method_of
from ...trojans.triggers import check_trojans_on_folder
from .metrics import (
    TriggerGuidance,
    budget_size,
    clean_set,
    defender_data,
    measure,
    noise_images,
    relearn,
    training_set_size,
    triggered_set,
)
from .results import ANCHOR, ORACLE, TASK, RemovalResults
from .store import RemovalCellRow, RemovalStore

log = logging.getLogger(__name__)

CONTROLS = ("none", "random")
EXCLUDED_SOURCES = ("random_noise",)
"""Rediscovery methods not used as guidance: the store's noise duplicates the ``random`` control."""
QUICK_EVAL = 100


def _data_budgets(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or len(set(map(str, value))) != len(value):
        raise ConfigError(f"'budgets' must be a non-empty list of distinct data budgets (e.g. ['100', '1%', '5%']). "
                          f"Got {value!r}.")
    return tuple(str(b) for b in value)


@dataclass(frozen=True)
class RemovalSuite(TaskSuite):
    """A removal suite: the shared suite keys plus the removal's own (see ``assets/suites/removal.yaml``)."""

    budgets: tuple[str, ...] = ("1%",)
    clean_model: str | None = "clean"
    n_eval: int = 200
    n_clean_eval: int = 1000
    relearn_steps: int = 20
    relearn_lr: float = 0.003
    task: ClassVar[str] = "removal"
    constraints: ClassVar[dict] = {"clean_model": InstanceOf(str, optional=True), "n_eval": Interval(int, 10, None),
                                   "n_clean_eval": Interval(int, 50, None), "relearn_steps": Interval(int, 0, None),
                                   "relearn_lr": Interval(float, 0.0, None)}
    converters: ClassVar[dict] = {"budgets": _data_budgets}


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
class RemovalPlan(Plan):
    """A validated removal run."""

    procedures: dict[str, RemovalProcedure]
    trojans: list[TrojanSpec]
    models: dict[str, LoadedModel]
    guidance: dict[str, Any]
    """``{rediscovery cell key: CellRow}`` for the tool sources used."""
    missing_tools: list[str] = field(default_factory=list)
    data: ImageFolderData | None = None
    """A user's image folder the defender's and the measured images come from (``None``: the built-in world)."""


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
                 plugins: Iterable[str] = (), model: str | None = None, data: str | Path | None = None,
                 image_size: int | None = None) -> RemovalPlan:
    """Resolve and validate a removal run without computing anything (bad input fails here). ``model``, ``data``
    (a user's image folder) and ``image_size`` replace the suite's; on a folder the clean model is used only when
    the suite names a checkpoint of it (``clean_model: PATH.safetensors``)."""
    from ...audit import check_world_classifier, trojans_of
    from ...models import check_outputs

    plugins = load_plugins(plugins)
    config = suite if isinstance(suite, RemovalSuite) else RemovalSuite.load(suite)
    base = with_overrides(config.suite, methods=methods, seeds=seeds, quick=quick, model=model, data=data,
                          image_size=image_size, takes_data=True)
    if quick:
        config = dataclasses.replace(config, n_eval=min(config.n_eval, QUICK_EVAL),
                                     n_clean_eval=min(config.n_clean_eval, 4 * QUICK_EVAL),
                                     relearn_steps=config.relearn_steps // 2)
    config = dataclasses.replace(config, suite=base, budgets=tuple(budgets) if budgets else config.budgets)
    procedures = {spec.name: make_procedure(spec.name, spec.params, quick=quick) for spec in base.methods}
    procedures.setdefault(ANCHOR, make_procedure(ANCHOR))  # the unedited model: every metric's reference
    folder, trojaned, class_names = open_run_model(base)
    models = {"trojaned": trojaned}
    if folder is None:
        if config.clean_model:
            models["clean"] = load_model(config.clean_model)
            check_world_classifier(models["clean"])
    else:
        if config.clean_model and config.clean_model.endswith(".safetensors"):
            models["clean"] = load_model(config.clean_model)
            check_outputs(models["clean"], folder.num_classes, folder.image_size,
                          "the clean model needs one output per class of the folder")
        else:  # a zoo name: the world's clean model, not the one this folder's model was fine-tuned from
            config = dataclasses.replace(config, clean_model=None)
    sizes = {budget: budget_size(budget, training_set_size(models["trojaned"].card)) for budget in config.budgets}
    trojan_suite = (load_trojan_suite(base.trojans, class_names) if base.trojans
                    else trojans_of(models["trojaned"], class_names))
    trojans = given_names(trojans, "--trojans")
    chosen = [trojan_suite.get(name) for name in trojans] if trojans else list(trojan_suite.trojans)
    if quick and not trojans:
        chosen = first_of_each_kind(chosen)
    if not chosen:
        raise ConfigError(f"Model {base.model!r} has no trojans to remove; give a trojan spec ('trojans:' in the suite).")
    if folder is not None:
        check_trojans_on_folder(chosen, folder)
    with RemovalStore(out) as store:
        found = store.rediscovery_images(models["trojaned"].sha256)
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
                        if folder is not None:
                            payload["data"] = folder.reference
                        cells.append(RemovalCell(name, procedure.get_params(), role, source, model_role, trojan, seed,
                                                 budget, content_key(payload), guidance_key))
    if missing:
        log.warning("No rediscovery images of this model in %s for trojan(s) %s: only the controls and the oracle "
                    "guide their removal. Run `trojanbench run --out %s` first to score tools.", out,
                    ", ".join(sorted(missing)), out)
    return RemovalPlan(procedures, chosen, models, guidance, sorted(missing), folder, config=config, cells=cells,
                       quick=quick, plugins=plugins)


def run_removal(suite: RemovalSuite | str | Path | None = None, *, out: str | Path = "trojanbench-results",
                quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                seeds: int | None = None, budgets: Iterable[str] | None = None, plugins: Iterable[str] = (),
                progress: Callable[[int, int, RemovalCell], None] | None = None, model: str | None = None,
                data: str | Path | None = None, image_size: int | None = None) -> RemovalResults:
    """Run the removal task (default: the shipped ``removal`` suite) into ``out`` and return its results.

    Tool guidance is read from the rediscovery results already in ``out`` (same model); ``progress(done,
    total, cell)`` is called after each edit. ``model``, ``data`` (a folder of the user's images) and ``image_size``
    replace the suite's: the defender then gets the folder's ``val`` images and everything is measured on its
    ``test`` images.
    """

    plan = plan_removal(suite, out=out, quick=quick, methods=methods, trojans=trojans, seeds=seeds, budgets=budgets,
                        plugins=plugins, model=model, data=data, image_size=image_size)
    record = plan.config.to_dict() | {"task": TASK, "quick": quick, "trojan_names": [t.name for t in plan.trojans],
                                      "missing_tools": plan.missing_tools,
                                      "trojan_kinds": {t.name: t.kind for t in plan.trojans},
                                      "source_roles": {row.method: row.role for row in plan.guidance.values()}}

    origin = provenance(plan.suite.model, plan.models["trojaned"].sha256, plan.models["trojaned"].card,
                        data=plan.data)
    with RemovalStore(out) as store:
        workbench = _Workbench(plan, store)

        def compute(run_id: int, todo: list[RemovalCell]) -> Iterator[RemovalCell]:
            for cell in todo:
                store.record_removal_cell(run_id, *workbench.compute(cell))
                yield cell

        run_pending(store, plan.cells, record, origin, "removal_cells", compute, progress, what="removal edits")
    return RemovalResults(out)


class _Workbench:
    """Data shared by the edits of a run, built once: defender data per (budget, seed), test sets per seed."""

    def __init__(self, plan: RemovalPlan, store: RemovalStore):
        self.plan, self.store = plan, store
        self.n_train = training_set_size(plan.models["trojaned"].card)
        self.cache: dict[tuple, Any] = {}

    def _once(self, key: tuple, build: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]

    def defender(self, budget: str, seed: int):
        return self._once(("defender", budget, seed),
                          lambda: defender_data(budget_size(budget, self.n_train), seed=seed, folder=self.plan.data))

    def clean(self, seed: int):
        return self._once(("clean", seed), lambda: clean_set(self.plan.config.n_clean_eval, self.plan.trojans,
                                                             seed=seed, folder=self.plan.data))

    def triggered(self, trojan: TrojanSpec, seed: int):
        return self._once(("triggered", trojan.name, seed),
                          lambda: triggered_set(trojan, self.plan.config.n_eval, seed=seed, folder=self.plan.data))

    def guidance(self, cell: RemovalCell):
        if cell.source == "none" or cell.source == "-":
            return None
        size = 64 if self.plan.data is None else self.plan.data.image_size
        if cell.source == "random":
            return ImageGuidance("random", noise_images(self.plan.suite.n_images, cell.seed, size))
        if cell.source == ORACLE:
            return TriggerGuidance(cell.trojan, seed=cell.seed, size=size, folder=self.plan.data)
        pixels = self.store.load_images(self.plan.guidance[cell.guidance_key])
        return ImageGuidance(cell.source, from_uint8(pixels))

    def compute(self, cell: RemovalCell) -> tuple[RemovalCellRow, dict[str, dict[str, float]]]:
        """Edit, measure on each trojan the edit is scored for, and relearn (trojaned model only)."""
        outcome = attempt(lambda: self._edit_and_measure(cell), timeout=None,
                          what=f"removal edit {cell.key} ({cell.label})")
        log.info("%s  %s (%.1f s)", cell.label, outcome.status, outcome.seconds)
        row = RemovalCellRow(cell.key, cell.procedure, cell.role, cell.params, cell.source, cell.model_role,
                             cell.trojan.name if cell.trojan else None, cell.seed, cell.budget, outcome.status,
                             outcome.reason, outcome.seconds)
        return row, outcome.value if outcome.ok else {}

    def _edit_and_measure(self, cell: RemovalCell) -> dict[str, dict[str, float]]:
        """``{trojan: measures}``: the edit (within the suite's wall-clock guard), then its measures on each trojan."""
        model = self.plan.models[cell.model_role].model
        trojans = [cell.trojan] if cell.trojan else self.plan.trojans
        with time_budget(self.plan.suite.cell_timeout):
            target = cell.trojan.target if cell.trojan else 0
            edited = self.plan.procedures[cell.procedure].remove(
                model, self.defender(cell.budget, cell.seed), self.guidance(cell), target, cell.seed)
        clean = self.clean(cell.seed)
        accuracy = measure(edited, clean, self.triggered(trojans[0], cell.seed)).clean_accuracy
        scores = {}
        for trojan in trojans:
            measured = measure(edited, clean, self.triggered(trojan, cell.seed), clean_accuracy=accuracy)
            relearned = math.nan
            if cell.model_role == "trojaned" or cell.procedure == ANCHOR:
                again = relearn(edited, trojan, self.defender(cell.budget, cell.seed),
                                steps=self.plan.config.relearn_steps, lr=self.plan.config.relearn_lr, seed=cell.seed)
                relearned = measure(again, clean, self.triggered(trojan, cell.seed), accuracy).attack_success
            scores[trojan.name] = {**dataclasses.asdict(measured), "relearned_attack_success": relearned}
        return scores
