"""The rediscovery task's run: compute the grid of cells, judge each one, add combinations of tools.

Order of work: validate everything (suite, methods and their hyperparameters, judges, model, trojans)
before any cell runs; skip cells already in the store (content-hash keys); fan the rest out to the
executor; judge and commit each cell as it arrives; then score the combinations of tools, run each judge's
validity battery on each question (:mod:`.battery`), find the judges' evidence on the gallery's cells
(:mod:`.evidence`) and the ground-truth diagnostics of every cell (:mod:`.diagnostics`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from ...config import TrojanSpec, load_trojan_suite
from ...data import ImageFolderData
from ...engine.cells import Cell, code_version, content_key
from ...engine.executors import Job, check_executor, running
from ...engine.loop import run_pending
from ...engine.own_data import open_run_model
from ...engine.provenance import provenance
from ...engine.suite import Plan, Suite, first_of_each_kind, given_names, load_suite, with_overrides
from ...models import LoadedModel
from ...registry import get_method, load_plugins
from ...trojans.triggers import check_trojans_on_folder
from .battery import compute_battery
from .diagnostics import compute_diagnostics
from .evidence import compute_evidence
from .compute import compute_cell, judge_images, share_model
from .results import Results
from .store import CellRow, RediscoveryStore
from .synthesis import make_method

log = logging.getLogger(__name__)

TASK = "rediscovery"
BEST_SUBSET_MAX = 4



@dataclass
class RediscoveryPlan(Plan):
    """A validated rediscovery run: the trojans, the judges, the audited model's hash and card, and the user's image
    folder the run is on (``None``: the built-in world)."""

    trojans: list[TrojanSpec]
    judges: list
    loaded: LoadedModel
    data: ImageFolderData | None = None


def plan_run(suite: Suite | str | Path | None = None, *, quick: bool = False, methods: Iterable[str] | None = None,
             trojans: Iterable[str] | None = None, seeds: int | None = None, plugins: Iterable[str] = (),
             model: str | None = None, data: str | Path | None = None, image_size: int | None = None,
             judges: Iterable[str] | None = None,
             judge_settings: dict[str, dict[str, Any]] | None = None) -> RediscoveryPlan:
    """Resolve and validate a run without computing anything (bad input fails here, before any work). ``model``,
    ``data`` (a user's image folder), ``image_size`` and ``judges`` replace the suite's; ``judge_settings``
    (``{judge: {setting: value}}``) go over its own."""
    from ...audit import trojans_of
    from ...judges import get_judge

    plugins = load_plugins(plugins)
    suite = with_overrides(suite if isinstance(suite, Suite) else load_suite(suite), methods=methods, seeds=seeds,
                           quick=quick, model=model, data=data, image_size=image_size, judges=judges,
                           judge_settings=judge_settings, takes_data=True)
    resolved = []
    for spec in suite.methods:
        method = make_method(spec.name, spec.params, quick=quick)
        resolved.append((spec.name, get_method(spec.name), method.get_params()))
    chosen_judges = [get_judge(name, suite.settings_of(name)) for name in suite.judges]
    for judge in chosen_judges:
        judge.check()
    folder, loaded, class_names = open_run_model(suite)
    trojan_suite = (load_trojan_suite(suite.trojans, class_names) if suite.trojans
                    else trojans_of(loaded, class_names))
    chosen = list(trojan_suite.trojans)
    trojans = given_names(trojans, "--trojans")
    if trojans:
        chosen = [trojan_suite.get(name) for name in trojans]
    if quick:
        chosen = first_of_each_kind(chosen)
    if folder is not None:
        check_trojans_on_folder(chosen, folder)
    cells = []
    for name, cls, params in resolved:
        role = "oracle" if cls.is_oracle else ("baseline" if cls.is_baseline else "tool")
        for trojan in chosen:
            for seed in suite.seeds:
                cells.append(Cell(method=name, params=params, trojan=trojan, seed=seed, n_images=suite.n_images,
                                  model_sha256=loaded.sha256, role=role, code_version=code_version(cls),
                                  data=None if folder is None else folder.reference))
    return RediscoveryPlan(chosen, chosen_judges, loaded, folder, config=suite, cells=cells, quick=quick,
                           plugins=plugins)


def run_rediscovery(suite: Suite | str | Path | None = None, *, out: str | Path = "trojanbench-results",
                    quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                    seeds: int | None = None, executor: str = "local", ray_address: str | None = None,
                    workers: int | None = None, plugins: Iterable[str] = (), progress=None, model: str | None = None,
                    data: str | Path | None = None, image_size: int | None = None,
                    judges: Iterable[str] | None = None,
                    judge_settings: dict[str, dict[str, Any]] | None = None) -> Results:
    """Run a rediscovery suite (default: the shipped default suite) into ``out`` and return its results.

    ``executor`` (``local``, ``processes`` or ``ray``; ``workers`` processes or local Ray CPUs) is where cells are
    computed; ``progress(done, total, cell)`` is called after each cell (the CLI draws its progress display with it).
    ``model``, ``data`` (a folder of the user's images, :mod:`trojanbench.data`), ``image_size`` and ``judges``
    replace the suite's, ``judge_settings`` go over its own (e.g. ``{"clip": {"weights": FILE}}``): the tools then
    get the folder's ``val`` images, and the oracle, the judges' battery and the diagnostics use its ``test``
    images.
    """
    from ...judges import judge_provenance

    check_executor(executor, ray_address=ray_address, workers=workers)
    plan = plan_run(suite, quick=quick, methods=methods, trojans=trojans, seeds=seeds, plugins=plugins, model=model,
                    data=data, image_size=image_size, judges=judges, judge_settings=judge_settings)
    origin = provenance(plan.suite.model, plan.loaded.sha256, plan.loaded.card, judge_provenance(plan.judges),
                        data=plan.data)
    record = plan.suite.to_dict() | {"task": TASK, "quick": quick}
    with RediscoveryStore(out) as store:
        scorer = _Scorer(plan, store)

        def compute(run_id: int, todo: list[Cell]) -> Iterator[Cell]:
            by_key = {cell.key: cell for cell in todo}
            jobs = cell_jobs(plan, todo, scorer.questions)
            with running(executor, ray_address=ray_address, workers=workers) as runner:
                if runner.name == "local":
                    share_model(plan.suite.model, plan.loaded, plan.data)
                for outcome in runner.map(jobs):
                    cell = by_key[outcome.key]
                    scorer.record(run_id, cell, outcome)
                    yield cell
            store.add_planned(run_id, scorer.combinations(run_id))

        run_pending(store, plan.cells, record, origin, "cells", compute, progress)
        compute_battery(plan, store, scorer.questions, progress)
        compute_evidence(plan, store, scorer.questions, progress)
        compute_diagnostics(plan, store, progress)
    return Results(out)


def cell_jobs(plan: RediscoveryPlan, cells: list[Cell], questions: dict) -> list[Job]:
    """The executor's jobs of ``cells``: each computes and judges one cell's images in a worker
    (:func:`compute_cell`) under the suite's limits, with as many torch threads as this process was given (the
    run's thread policy); ``questions``: ``{(trojan, seed): Question}``."""
    suite, threads = plan.suite, torch.get_num_threads()
    judges = tuple((judge.name, judge.settings) for judge in plan.judges)
    return [Job(cell.key, compute_cell, (cell.key, cell.payload(), suite.model, suite.cell_timeout, plan.plugins,
                                         suite.cell_budget, threads, questions[(cell.trojan.name, cell.seed)], judges),
                suite.cell_timeout) for cell in cells]


class _Scorer:
    """Judges cells as they arrive and commits them; scores the combinations of tools at the end."""

    def __init__(self, plan: RediscoveryPlan, store: RediscoveryStore):
        from ...judges import build_question

        self.plan, self.store = plan, store
        self.questions = {}
        for trojan in plan.trojans:
            for seed in plan.suite.seeds:
                question = build_question(trojan, seed)
                self.questions[(trojan.name, seed)] = question
                store.record_question(trojan.name, seed, question.to_dict())

    def judge(self, pixels: np.ndarray, trojan: str, seed: int) -> list[tuple[str, float, int, list[float], float]]:
        return judge_images(pixels, self.questions[(trojan, seed)], self.plan.judges)

    def record(self, run_id: int, cell: Cell, outcome) -> None:
        """Commit a cell the executor computed (and judged, in the worker)."""
        image_file, scores = None, []
        if outcome.ok:
            image_file = self.store.save_images(cell.key, outcome.value["images"])
            scores = outcome.value["verdicts"]
        row = CellRow(cell.key, cell.method, cell.role, cell.params, cell.trojan.name, cell.trojan.kind, cell.seed,
                      outcome.status, outcome.reason, outcome.seconds, image_file)
        self.store.record_cell(run_id, row, scores)
        log.info("%-20s %-14s seed %d  %s (%.1f s)", cell.method, cell.trojan.name, cell.seed, outcome.status,
                 outcome.seconds)

    def _pooled(self, members: list[str], trojan: TrojanSpec, seed: int, rows: dict) -> np.ndarray | None:
        """The stored ``[n, H, W, 3]`` uint8 images of ``members`` for one trojan and seed, pooled."""
        images = [self.store.load_images(rows[(m, trojan.name, seed)]) for m in members
                  if (m, trojan.name, seed) in rows]
        return np.concatenate(images) if images else None

    def _record_combination(self, run_id: int, name: str, members: list[str], trojan: TrojanSpec, seed: int,
                            rows: dict, extra: dict) -> str | None:
        """Judge the pooled images of ``members`` for one trojan and seed; the combination cell's key."""
        parts = [name, members, trojan.name, seed, self.plan.loaded.sha256, extra]
        key = content_key(parts if self.plan.data is None else [*parts, self.plan.data.reference])
        images = self._pooled(members, trojan, seed, rows)
        if images is None:
            return None
        start = time.perf_counter()
        scores = self.judge(images, trojan.name, seed)
        row = CellRow(key, name, "combination", {"members": members, **extra}, trojan.name, trojan.kind, seed, "ok",
                      None, time.perf_counter() - start, None)
        self.store.record_cell(run_id, row, scores)
        return key

    def combinations(self, run_id: int) -> list[str]:
        """"all" (every tool's images pooled, Casper's last row) and a greedy "best_subset" chosen on the
        first seed and scored on the others (never chosen and scored on the same data), over the tools this run
        planned; returns the keys of the combination cells."""
        planned = {cell.key for cell in self.plan.cells}
        rows = {(c.method, c.trojan, c.seed): c for c in self.store.cells()
                if c.status == "ok" and c.role == "tool" and c.key in planned}
        tools = sorted({m for m, _, _ in rows})
        if len(tools) < 2:
            return []
        seeds = list(self.plan.suite.seeds)
        keys = [self._record_combination(run_id, "all", tools, trojan, seed, rows, {})
                for trojan in self.plan.trojans for seed in seeds]
        if len(seeds) < 2:
            log.info("best_subset needs >= 2 seeds (chosen on one, scored on the others); skipped")
            return [key for key in keys if key]
        chosen = self._select_subset(tools, seeds[0], rows)
        log.info("best_subset chosen on seed %d: %s", seeds[0], ", ".join(chosen))
        keys += [self._record_combination(run_id, "best_subset", chosen, trojan, seed, rows,
                                          {"selected_on_seed": seeds[0]})
                 for trojan in self.plan.trojans for seed in seeds[1:]]
        return [key for key in keys if key]

    def _select_subset(self, tools: list[str], seed: int, rows: dict) -> list[str]:
        """Greedy forward selection by the primary judge's mean p_true over trojans, on one seed."""
        chosen: list[str] = []
        best_score = -1.0
        while len(chosen) < BEST_SUBSET_MAX:
            candidates = {}
            for tool in tools:
                if tool in chosen:
                    continue
                values = []
                for trojan in self.plan.trojans:
                    images = self._pooled(chosen + [tool], trojan, seed, rows)
                    if images is not None:
                        question = self.questions[(trojan.name, seed)]
                        values.append(judge_images(images, question, self.plan.judges[:1])[0][1])
                if values:
                    candidates[tool] = float(np.mean(values))
            if not candidates:
                break
            tool, score = max(candidates.items(), key=lambda kv: (kv[1], kv[0]))
            if score <= best_score:
                break
            chosen.append(tool)
            best_score = score
        return chosen
