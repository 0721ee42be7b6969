"""The editing task: can an editor implant a new rule cleanly? (scoring in :mod:`.metrics`)

Each editor of the suite (``rank_one_rewrite`` with all, guided or random units, and ``finetune_rule``; a
method listed with parameters is shown as ``name[key=value]``) implants each rule of the suite's rule file
into the suite's model (the clean model by default) from ``n_images`` exemplars and the defender's clean
images, once per seed. Validation first, content-hash keys, resume and failed edits recorded with their
reason, as in the other tasks.

**Statistics**: per editor, the mean over rules (of the mean over seeds) of each measure with its 95%
bootstrap interval over rules then seeds and the worst rule; the unedited model is the anchor row.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator

from ...config import TrojanSpec, load_trojan_suite
from ...engine.cells import code_version, content_key, trojan_record
from ...engine.execute import attempt, time_budget
from ...engine.loop import run_pending
from ...engine.provenance import provenance
from ...engine.store import Store
from ...engine.suite import Plan, TaskSuite, given_names, with_overrides
from ...errors import ConfigError
from ...methods.editing import RuleEditor
from ...models import LoadedModel, load_model
from ...params import Interval
from ...registry import load_plugins, make_method_of
from ...world import OBJECT_CLASSES
from ..removal.metrics import budget_size, clean_set, defender_data, training_set_size
from .metrics import check_rule, edit_size, exemplars, measure_rule, rule_tests
from .results import EDITING_CELLS, TASK, EditingResults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EditingSuite(TaskSuite):
    """An editing suite: the shared keys (``trojans`` is the rule file) plus the defender's ``budget`` and the
    held-out images per measure (``n_eval``); ``n_images`` is the number of exemplars."""

    budget: str = "1%"
    n_eval: int = 200
    n_clean_eval: int = 1000
    task: ClassVar[str] = "editing"
    constraints: ClassVar[dict] = {"n_eval": Interval(int, 10, None), "n_clean_eval": Interval(int, 50, None)}
    converters: ClassVar[dict] = {"budget": str}  # checked against the model's training set when planned


@dataclass(frozen=True)
class EditingCell:
    label: str
    editor: str
    params: dict[str, Any]
    role: str
    rule: TrojanSpec
    seed: int
    key: str

    @property
    def description(self) -> str:
        return f"{self.label} · rule {self.rule.name} · seed {self.seed}"


@dataclass
class EditingPlan(Plan):
    """A validated editing run: the editors, the rules and the model they edit."""

    editors: dict[str, RuleEditor]
    rules: list[TrojanSpec]
    loaded: LoadedModel


def plan_editing(suite: EditingSuite | str | Path | None = None, *, quick: bool = False,
                 methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None, seeds: int | None = None,
                 plugins: Iterable[str] = ()) -> EditingPlan:
    """Resolve and validate an editing run (``trojans`` selects rules by name) without computing anything."""
    from ...audit import check_world_classifier

    plugins = load_plugins(plugins)
    config = suite if isinstance(suite, EditingSuite) else EditingSuite.load(suite)
    base = with_overrides(config.suite, methods=methods, seeds=seeds, quick=quick)
    if quick:
        config = dataclasses.replace(config, n_eval=min(config.n_eval, 100), n_clean_eval=min(config.n_clean_eval, 400))
    config = dataclasses.replace(config, suite=base)
    editors = {spec.label: make_method_of(spec.name, spec.params, RuleEditor, "a rule editor", quick=quick)
               for spec in base.methods}
    if base.trojans is None:
        raise ConfigError("An editing suite needs 'trojans': a rule file (trojan-spec YAML of patch or style rules).")
    rule_suite = load_trojan_suite(base.trojans, OBJECT_CLASSES)
    trojans = given_names(trojans, "--trojans")
    rules = [rule_suite.get(name) for name in trojans] if trojans else list(rule_suite.trojans)
    for rule in rules:
        check_rule(rule)
    loaded = load_model(base.model)
    check_world_classifier(loaded)
    budget_size(config.budget, training_set_size(loaded.card))
    cells = []
    for label, editor in editors.items():
        role = "baseline" if editor.is_baseline else "editor"
        for rule in rules:
            for seed in base.seeds:
                payload = {"task": TASK, "editor": editor.name, "params": editor.get_params(),
                           "rule": trojan_record(rule), "seed": seed, "model": loaded.sha256,
                           "budget": config.budget, "n_images": base.n_images, "n_eval": config.n_eval,
                           "n_clean_eval": config.n_clean_eval, "code_version": code_version(type(editor))}
                cells.append(EditingCell(label, editor.name, editor.get_params(), role, rule, seed,
                                         content_key(payload)))
    return EditingPlan(editors, rules, loaded, config=config, cells=cells, quick=quick, plugins=plugins)


def run_editing(suite: EditingSuite | str | Path | None = None, *, out: str | Path = "trojanbench-results",
                quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                seeds: int | None = None, plugins: Iterable[str] = (),
                progress: Callable[[int, int, EditingCell], None] | None = None) -> EditingResults:
    """Run the editing task (default: the shipped ``editing`` suite) into ``out`` and return its results."""
    plan = plan_editing(suite, quick=quick, methods=methods, trojans=trojans, seeds=seeds, plugins=plugins)
    record = plan.config.to_dict() | {"task": TASK, "quick": quick, "rules": {r.name: r.kind for r in plan.rules}}
    origin = provenance(plan.suite.model, plan.loaded.sha256, plan.loaded.card)
    with Store(out, cell_tables=(EDITING_CELLS,)) as store:

        def compute(run_id: int, todo: list[EditingCell]) -> Iterator[EditingCell]:
            data, cache = defender_data(budget_size(plan.config.budget, training_set_size(plan.loaded.card))), {}
            for cell in todo:
                store.record_json_cell(EDITING_CELLS.name, run_id, _compute(plan, cell, data, cache))
                yield cell

        run_pending(store, plan.cells, record, origin, EDITING_CELLS.name, compute, progress, what="rule edits")
    return EditingResults(out)


def _compute(plan: EditingPlan, cell: EditingCell, data, cache: dict) -> dict[str, Any]:
    """Implant one rule and measure the model before and after (test images and unedited measures cached per
    rule and seed)."""
    def work() -> dict[str, Any]:
        clean = cache.setdefault(("clean", cell.seed), clean_set(plan.config.n_clean_eval, [], seed=cell.seed))
        tests_key, before_key = ("tests", cell.rule.name, cell.seed), ("before", cell.rule.name, cell.seed)
        if tests_key not in cache:
            cache[tests_key] = rule_tests(cell.rule, plan.config.n_eval, seed=cell.seed)
            cache[before_key] = measure_rule(plan.loaded.model, cache[tests_key], clean)
        carriers, plain = exemplars(cell.rule, plan.suite.n_images, seed=cell.seed)
        with time_budget(plan.suite.cell_timeout):
            edited = plan.editors[cell.label].implant(plan.loaded.model, data, carriers, plain, cell.rule.target,
                                                      cell.seed)
        after = measure_rule(edited, cache[tests_key], clean)
        return {"before": cache[before_key], "after": after, **edit_size(plan.loaded.model, edited)}

    outcome = attempt(work, timeout=None, what=f"rule edit {cell.description}")
    log.info("%s  %s (%.1f s)", cell.description, outcome.status, outcome.seconds)
    return {"key": cell.key, "editor": cell.editor, "label": cell.label, "role": cell.role, "params": cell.params,
            "rule": cell.rule.name, "kind": cell.rule.kind, "seed": cell.seed, "status": outcome.status,
            "reason": outcome.reason, "seconds": outcome.seconds, "measures": outcome.value if outcome.ok else {}}
