"""The localization task: can attribution tools point at a planted patch trigger?

After the attribution benchmark of Casper et al. (2023): every attribution method of a suite (the 16
Captum tools and the ``edge_detector``, ``uniform_map`` and ``random_map`` baselines by default) explains
the target class of every *patch* trojan of the suite's model on a fixed set of held-out triggered images,
and each map is scored against the patch's true footprint (:mod:`trojanbench.tasks.localization.metrics`: rank
correlation, pointing game, AUROC, all higher-is-better).

Order of work, as in :func:`trojanbench.run`: validate everything (suite, methods and hyperparameters, the
Captum extra, model, trojans) before any cell runs; skip cells already in the store; compute the rest,
committing each as it finishes.

**Cells.** A cell is one method (with its resolved hyperparameters) explaining one patch trojan's target
class on the ``n`` held-out triggered images drawn under one seed. Its key is the content hash of (task,
method, params, trojan spec, ``n``, seed, model sha256, code version), so a re-run skips finished cells
and a killed run resumes. A method that raises, returns an invalid map or goes past the suite's limits
(``cell_budget``, ``cell_timeout``) becomes a failed cell with its reason; it is stored with a flat map's scores
but never counted (a tool with a failed cell is shown as incomplete, not ranked). Each image set is recorded in
the store (PNG strips of the images and masks, and a sha256 of both).

**Statistics** (reusing :mod:`trojanbench.engine.stats`). Per method and metric: the mean over trojans of
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ...config import TrojanSpec, load_trojan_suite
from ...data import ImageFolderData
from ...engine.cells import Cell, code_version, content_key
from ...engine.execute import attempt, work_budget
from ...engine.loop import run_pending
from ...engine.own_data import open_run_model
from ...engine.provenance import provenance
from ...engine.suite import Plan, Suite, given_names, load_suite, with_overrides
from ...errors import ConfigError, require_extra
from ...imaging import to_uint8
from ...methods.attribution import AttributionMethod, CaptumAttribution
from ...models import LoadedModel
from ...registry import load_plugins
from .metrics import (
    METRICS,
    LocalizationSet,
    flat_map_scores,
    localization_set,
    make_attribution_method,
    score_attribution,
    set_digest,
)
from .results import TASK, LocalizationResults
from .store import LocalizationCellRow, LocalizationStore

log = logging.getLogger(__name__)

SUITE = "localization"
"""The shipped suite used when none is named (``assets/suites/localization.yaml``)."""
QUICK_IMAGES = 12
"""Images per trojan under ``quick``."""


@dataclass
class LocalizationPlan(Plan):
    """A validated localization run: the methods, the patch trojans and the model they explain."""

    methods: dict[str, AttributionMethod]
    trojans: list[TrojanSpec]
    loaded: LoadedModel
    data: ImageFolderData | None = None
    """A user's image folder the triggered images come from (``None``: the built-in world)."""


def set_key(cell: Cell) -> str:
    """Key of the image set a cell explains: the trojan, seed, size, code version and, on a user's folder, the
    folder's reference (not the method)."""
    payload = {**cell.payload(), "code_version": code_version()}  # the package's, whatever the method
    fields = ("trojan", "trigger_identity", "seed", "n_images", "code_version", "data")
    return content_key({"task": TASK, "set": {k: payload[k] for k in fields if k in payload}})


def _cell(name: str, method: AttributionMethod, trojan: TrojanSpec, seed: int, n_images: int, sha256: str,
          data: dict | None) -> Cell:
    cell = Cell(method=name, params=method.get_params(), trojan=trojan, seed=seed, n_images=n_images,
                model_sha256=sha256, role="baseline" if method.is_baseline else "tool",
                code_version=code_version(type(method)), data=data)
    return dataclasses.replace(cell, key=content_key({"task": TASK, **cell.payload()}))


def _resolve_suite(suite: Suite | str | Path | None, *, quick: bool, methods: Iterable[str] | None,
                   seeds: int | None, model: str | None, data: str | Path | None, image_size: int | None) -> Suite:
    if not isinstance(suite, Suite):
        suite = load_suite(SUITE if suite in (None, "default") else suite)
    suite = with_overrides(suite, methods=methods, seeds=seeds, quick=quick, model=model, data=data,
                           image_size=image_size, takes_data=True)
    if quick:
        suite = dataclasses.replace(suite, n_images=min(suite.n_images, QUICK_IMAGES))
    names = [spec.name for spec in suite.methods]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"Method(s) {twice} are listed more than once; list each method once.")
    return suite


def _patch_trojans(suite: Suite, loaded: LoadedModel, names: Iterable[str] | None,
                   class_names: tuple[str, ...]) -> list[TrojanSpec]:
    """The suite's patch trojans (or the named ones, which must be patch trojans)."""
    from ...audit import trojans_of

    trojan_suite = (load_trojan_suite(suite.trojans, class_names) if suite.trojans
                    else trojans_of(loaded, class_names))
    patches = [spec.name for spec in trojan_suite.trojans if spec.kind == "patch"]
    names = given_names(names, "--trojans")
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
                      seeds: int | None = None, plugins: Iterable[str] = (), model: str | None = None,
                      data: str | Path | None = None, image_size: int | None = None) -> LocalizationPlan:
    """Resolve and validate a localization run without computing anything (bad input fails here).

    ``suite`` defaults to the shipped ``localization`` suite (``"default"`` means the same);
    ``quick`` keeps the first seed, at most :data:`QUICK_IMAGES` images per trojan and the methods'
    ``quick_params``. ``model``, ``data`` (a user's image folder, whose ``test`` images are then triggered) and
    ``image_size`` replace the suite's.
    """

    plugins = load_plugins(plugins)
    suite = _resolve_suite(suite, quick=quick, methods=methods, seeds=seeds, model=model, data=data,
                           image_size=image_size)
    resolved = {spec.name: make_attribution_method(spec.name, spec.params, quick=quick) for spec in suite.methods}
    if any(isinstance(method, CaptumAttribution) for method in resolved.values()):
        require_extra("captum.attr", "captum", "The Captum attribution methods")
    folder, loaded, class_names = open_run_model(suite)
    chosen = _patch_trojans(suite, loaded, trojans, class_names)
    reference = None if folder is None else folder.reference
    cells = [_cell(name, method, trojan, seed, suite.n_images, loaded.sha256, reference)
             for name, method in resolved.items() for trojan in chosen for seed in suite.seeds]
    return LocalizationPlan(resolved, chosen, loaded, folder, config=suite, cells=cells, quick=quick,
                            plugins=plugins)


def run_localization(suite: Suite | str | Path | None = None, *, out: str | Path = "trojanbench-results",
                     quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                     seeds: int | None = None, plugins: Iterable[str] = (),
                     progress: Callable[[int, int, Cell], None] | None = None, model: str | None = None,
                     data: str | Path | None = None, image_size: int | None = None) -> LocalizationResults:
    """Run the localization task (default: the shipped ``localization`` suite) and return its results.

    Results go into ``out/results.sqlite`` beside any other task's; ``progress(done, total, cell)`` is called after
    each cell. ``model``, ``data`` (a folder of the user's images, :mod:`trojanbench.data`) and ``image_size``
    replace the suite's: the patch is then pasted on the folder's ``test`` images.
    """
    plan = plan_localization(suite, quick=quick, methods=methods, trojans=trojans, seeds=seeds, plugins=plugins,
                             model=model, data=data, image_size=image_size)
    record = plan.suite.to_dict() | {"task": TASK, "quick": quick, "patch_trojans": [t.name for t in plan.trojans]}
    origin = provenance(plan.suite.model, plan.loaded.sha256, plan.loaded.card, data=plan.data)
    with LocalizationStore(out) as store:
        run_pending(store, plan.cells, record, origin, "localization_cells",
                    lambda run_id, todo: _compute(plan, store, run_id, todo), progress, what="localization cells")
    return LocalizationResults(out)


def _compute(plan: LocalizationPlan, store: LocalizationStore, run_id: int, todo: list[Cell]) -> Iterator[Cell]:
    """Compute and commit ``todo``, drawing each image set once (only if one of its cells is left)."""
    groups: dict[str, list[Cell]] = {}
    for cell in todo:
        groups.setdefault(set_key(cell), []).append(cell)
    for key, cells in groups.items():
        data = _record_set(store, key, cells[0], plan.data)
        for cell in cells:
            status, reason, seconds, scores = _score_cell(plan, cell, data)
            row = LocalizationCellRow(cell.key, key, cell.method, cell.role, cell.params, cell.trojan.name,
                                      cell.seed, cell.n_images, status, reason, seconds)
            store.record_localization_cell(run_id, row, scores)
            log.info("%-24s %-14s seed %d  %s  AUROC %.3f  (%.1f s)", cell.method, cell.trojan.name, cell.seed,
                     status, float(np.nanmean(scores["auroc"])), seconds)
            yield cell


def _record_set(store: LocalizationStore, key: str, cell: Cell, folder: ImageFolderData | None) -> LocalizationSet:
    """Draw a cell's held-out triggered images (world scenes, or the ``folder``'s test images) and record them
    (PNG strips of images and masks, sha256)."""
    data = localization_set(cell.trojan, n=cell.n_images, seed=cell.seed, data=folder)
    image_file = store.save_images(key, to_uint8(data.images))
    mask_file = store.save_images(f"{key}-mask", to_uint8(data.masks[:, None].expand(-1, 3, -1, -1)))
    store.record_localization_set(key, cell.trojan.name, cell.trojan.target, cell.seed, cell.n_images,
                                  set_digest(data), image_file, mask_file)
    return data


def _score_cell(plan: LocalizationPlan, cell: Cell,
                data: LocalizationSet) -> tuple[str, str | None, float, dict[str, np.ndarray]]:
    """``(status, reason, seconds, per-image scores)``; a failure is scored as a flat map, never raised."""
    def work():
        with work_budget(plan.loaded.model, plan.suite.cell_budget):
            return score_attribution(plan.methods[cell.method], plan.loaded.model, cell.trojan, seed=cell.seed,
                                     data=data)

    outcome = attempt(work, timeout=plan.suite.cell_timeout,
                      what=f"localization cell {cell.key} ({cell.method}, {cell.trojan.name})")
    if outcome.ok:
        result = outcome.value
        return "ok", None, result["seconds"], {metric: result[metric] for metric in METRICS}
    return "failed", outcome.reason, outcome.seconds, flat_map_scores(data)
