"""The editing task's runner: can an editor implant a new rule cleanly? (see :mod:`trojanbench.tasks.editing`)

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
import math
import time
from operator import itemgetter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..config import TrojanSpec, load_trojan_suite, load_yaml
from ..errors import ConfigError
from ..methods.editing import RuleEditor
from ..models import LoadedModel, load_model
from ..registry import load_plugins, make_method_of
from ..tasks.editing import check_rule, edit_size, exemplars, measure_rule, rule_tests
from ..tasks.removal import budget_size, clean_set, defender_data, training_set_size
from ..world import OBJECT_CLASSES
from .cells import code_version, content_key, trojan_record
from .execute import time_budget
from .pending import run_pending
from .stats import Summary, summarize
from .store import Store, last_run_and_cells
from .suite import (
    Suite,
    check_number,
    parse_suite_config,
    shipped_or_given,
    split_task_keys,
    with_overrides,
)

log = logging.getLogger(__name__)

TASK = "editing"
UNEDITED = "unedited"
MEASURES = ("success", "target_kept", "near_miss", "clean_accuracy_change", "relative_change", "changed_parameters")
HIGHER_IS_BETTER = {"success": True, "target_kept": True, "near_miss": False, "clean_accuracy_change": True,
                    "relative_change": False, "changed_parameters": False}
LABELS = {"success": "success", "target_kept": "target kept", "near_miss": "near-miss", "clean_accuracy_change":
          "clean dAcc", "relative_change": "edit size", "changed_parameters": "params changed"}


@dataclass(frozen=True)
class EditingSuite:
    """An editing suite: the shared keys (``trojans`` is the rule file) plus the defender's ``budget`` and the
    held-out images per measure (``n_eval``); ``n_images`` is the number of exemplars."""

    suite: Suite
    budget: str = "1%"
    n_eval: int = 200
    n_clean_eval: int = 1000

    def to_dict(self) -> dict[str, Any]:
        return {**self.suite.to_dict(), "budget": self.budget, "n_eval": self.n_eval, "n_clean_eval": self.n_clean_eval}


def load_editing_suite(reference: str | Path | None = None) -> EditingSuite:
    """An editing suite from a YAML file, or the shipped ``editing`` suite."""
    path = shipped_or_given(reference, "editing")
    shared, own = split_task_keys(load_yaml(path), ("budget", "n_eval", "n_clean_eval"))
    suite = parse_suite_config(shared, base_dir=path.parent)
    return EditingSuite(suite, str(own.get("budget", EditingSuite.budget)),
                        check_number("n_eval", own.get("n_eval", EditingSuite.n_eval), int, 10),
                        check_number("n_clean_eval", own.get("n_clean_eval", EditingSuite.n_clean_eval), int, 50))


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
class EditingPlan:
    config: EditingSuite
    editors: dict[str, RuleEditor]
    rules: list[TrojanSpec]
    loaded: LoadedModel
    cells: list[EditingCell]
    quick: bool = False
    plugins: tuple[str, ...] = ()

    @property
    def suite(self) -> Suite:
        return self.config.suite


def plan_editing(suite: EditingSuite | str | Path | None = None, *, quick: bool = False,
                 methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None, seeds: int | None = None,
                 plugins: Iterable[str] = ()) -> EditingPlan:
    """Resolve and validate an editing run (``trojans`` selects rules by name) without computing anything."""
    from ..audit import check_world_classifier

    plugins = load_plugins(plugins)
    config = suite if isinstance(suite, EditingSuite) else load_editing_suite(suite)
    base = with_overrides(config.suite, methods=methods, seeds=seeds, quick=quick)
    if quick:
        config = dataclasses.replace(config, n_eval=min(config.n_eval, 100), n_clean_eval=min(config.n_clean_eval, 400))
    config = dataclasses.replace(config, suite=base)
    editors = {spec.label: make_method_of(spec.name, spec.params, RuleEditor, "a rule editor", quick=quick)
               for spec in base.methods}
    if base.trojans is None:
        raise ConfigError("An editing suite needs 'trojans': a rule file (trojan-spec YAML of patch or style rules).")
    rule_suite = load_trojan_suite(base.trojans, OBJECT_CLASSES)
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
    return EditingPlan(config, editors, rules, loaded, cells, quick, plugins=plugins)


def run_editing(suite: EditingSuite | str | Path | None = None, *, out: str | Path = "trojanbench-results",
                quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                seeds: int | None = None, plugins: Iterable[str] = (),
                progress: Callable[[int, int, EditingCell], None] | None = None,
                report: bool = True) -> "EditingResults":
    """Run the editing task (default: the shipped ``editing`` suite) into ``out`` and return its results."""
    from .run import provenance

    plan = plan_editing(suite, quick=quick, methods=methods, trojans=trojans, seeds=seeds, plugins=plugins)
    record = plan.config.to_dict() | {"task": TASK, "quick": quick, "rules": {r.name: r.kind for r in plan.rules},
                                      "cell_keys": [cell.key for cell in plan.cells]}

    def compute(store: Store, run_id: int, todo: list[EditingCell]) -> Iterator[EditingCell]:
        data, cache = defender_data(budget_size(plan.config.budget, training_set_size(plan.loaded.card))), {}
        for cell in todo:
            store.record_editing_cell(run_id, _compute(plan, cell, data, cache))
            yield cell

    origin = provenance(plan.suite.model, plan.loaded.sha256, plan.loaded.card)
    run_pending(out, plan.cells, record, origin, Store.finished_editing_keys, compute, progress,
                report=report, what="rule edits")
    return EditingResults(out)


def _compute(plan: EditingPlan, cell: EditingCell, data, cache: dict) -> dict[str, Any]:
    """Implant one rule and measure the model before and after (test images and unedited measures cached per
    rule and seed)."""
    start = time.perf_counter()
    status, reason, measures = "ok", None, {}
    try:
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
        measures = {"before": cache[before_key], "after": after, **edit_size(plan.loaded.model, edited)}
    except Exception as exc:  # noqa: BLE001 - a failing editor is recorded, not raised
        status, reason = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("rule edit %s failed: %s", cell.description, reason)
    seconds = time.perf_counter() - start
    log.info("%s  %s (%.1f s)", cell.description, status, seconds)
    return {"key": cell.key, "editor": cell.editor, "label": cell.label, "role": cell.role, "params": cell.params,
            "rule": cell.rule.name, "kind": cell.rule.kind, "seed": cell.seed, "status": status, "reason": reason,
            "seconds": seconds, "measures": measures}


class EditingResults:
    """The editing results of a folder (those planned by its last editing run with results), from the store alone."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        store = Store(self.folder, create=False)
        try:
            self.run, self.cells = last_run_and_cells(store, TASK, store.editing_cells(), itemgetter("key"))
        finally:
            store.close()
        self.kinds = {cell["rule"]: cell["kind"] for cell in self.cells}

    def __bool__(self) -> bool:
        return bool(self.cells)

    def per_rule(self) -> dict[str, dict[str, dict[tuple[str, int], float]]]:
        """``{label: {measure: {(rule, seed): value}}}``, with the unedited model as the ``unedited`` row."""
        out: dict[str, dict[str, dict[tuple[str, int], float]]] = {}
        for cell in self.cells:
            if cell["status"] != "ok":
                continue
            m, where = cell["measures"], (cell["rule"], cell["seed"])
            before, after = m["before"], m["after"]
            rows = {cell["label"]: {**after, "clean_accuracy_change": after["clean_accuracy"] - before["clean_accuracy"],
                                    "relative_change": m["relative_change"],
                                    "changed_parameters": m["changed_parameters"]},
                    UNEDITED: {**before, "clean_accuracy_change": 0.0, "relative_change": 0.0,
                               "changed_parameters": 0}}
            for label, values in rows.items():
                for measure in MEASURES:
                    out.setdefault(label, {}).setdefault(measure, {})[where] = float(values[measure])
        return out

    def summaries(self) -> dict[str, dict[str, Summary]]:
        """``{label: {measure: Summary}}`` over rules then seeds (worst = lowest value)."""
        return {label: {measure: summarize(cells, cells, self.kinds) for measure, cells in values.items()
                        if all(math.isfinite(v) for v in cells.values())}
                for label, values in self.per_rule().items()}

    def rows(self) -> list[dict[str, Any]]:
        """Editors by mean success, the unedited anchor last."""
        summaries = self.summaries()
        roles = {cell["label"]: cell["role"] for cell in self.cells} | {UNEDITED: "anchor"}
        failed = {label: sum(c["status"] != "ok" for c in self.cells if c["label"] == label) for label in roles}
        def success(label: str) -> float:
            summary = summaries.get(label, {}).get("success")
            return summary.mean if summary is not None else -math.inf

        order = sorted(set(summaries) | {label for label, n in failed.items() if n},
                       key=lambda label: (label == UNEDITED, -success(label), label))
        return [{"label": label, "role": roles.get(label, "editor"), "failed": failed.get(label, 0),
                 "metrics": {m: dataclasses.asdict(s) for m, s in summaries.get(label, {}).items()}} for label in order]

    def description(self) -> str:
        suite = self.run["suite"] if self.run else {}
        rules = suite.get("rules", {})
        return (f"{len(rules)} rule(s) ({', '.join(rules)}) on model {suite.get('model')}, {suite.get('n_images')} "
                f"exemplars each, budget {suite.get('budget')}, seed(s) {suite.get('seeds')}"
                f"{', quick settings' if suite.get('quick') else ''}")

    def table(self) -> str:
        """The editing table as text: per editor, mean [95% interval] of success, then the side effects."""
        rows = self.rows()
        width = max([28, *(len(r["label"]) + 2 for r in rows)])
        lines = [f"editing: {self.description()}", "mean over rules [95% bootstrap interval] (worst rule)",
                 f"{'editor':<{width}}{'success':<30}" + "".join(f"{LABELS[m]:>15}" for m in MEASURES[1:])]
        for row in rows:
            m = row["metrics"]
            if "success" not in m:
                lines.append(f"{row['label']:<{width}}failed ({row['failed']} edit(s))")
                continue
            s = m["success"]
            lines.append(f"{row['label']:<{width}}{s['mean']:6.3f} [{s['ci_low']:5.2f}, {s['ci_high']:5.2f}] "
                         f"{s['worst']:6.3f}   " + "".join(_cell(m, k) for k in MEASURES[1:]))
        return "\n".join(lines)


def _cell(metrics: dict, measure: str) -> str:
    if measure not in metrics:
        return f"{'':>15}"
    value = metrics[measure]["mean"]
    return f"{value:>15.0f}" if measure == "changed_parameters" else f"{value:>15.3f}"


def load_editing_results(folder: str | Path) -> EditingResults:
    """Open the editing results of a folder written by :func:`run_editing`."""
    return EditingResults(folder)
