"""Computing one rediscovery cell in a worker: build the method, run it within its limits, check its images and
judge them there (so that the driver only records, and judging runs in parallel with the executor's workers).

Any failure (an exception, NaN, wrong shape, values out of range, a limit exceeded, a modified ``Target``)
becomes a ``failed`` outcome with the reason; it never stops the run. Workers keep the audited
:class:`~trojanbench.methods.Target` (built once per model) between cells, and check after each cell that the
method left it as it was (:mod:`trojanbench.engine.isolation`); one it changed is rebuilt for the next cell.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np
import torch

from ...engine.cells import trojan_from_payload
from ...engine.execute import Outcome, attempt, time_budget, work_budget
from ...engine.isolation import changed_parts, fingerprint
from ...errors import MethodError
from ...imaging import from_uint8, to_uint8
from ...judges.base import Judge
from ...registry import load_plugins
from .synthesis import make_method, synthesize_for_trojan

_targets: dict[str, tuple[Any, dict[str, str]]] = {}
_shared: dict[str, tuple[Any, Any]] = {}


def _target_key(model_ref: str, data_ref: dict | None) -> str:
    return model_ref if data_ref is None else f"{model_ref}|{data_ref['root']}|{data_ref['image_size']}"


def share_model(model_ref: str, loaded: Any, data: Any = None) -> None:
    """Hand the driver's loaded model (and image folder, if any) to the cells computed in its own process (the
    local executor), so that they are not loaded again; the :class:`~trojanbench.methods.Target` freezes a copy."""
    key = _target_key(model_ref, None if data is None else data.reference)
    if key not in _targets:
        _shared[key] = (loaded, data)


def shared_target(model_ref: str, data_ref: dict | None = None):
    """The frozen audited model with the auditor's data (of the built-in world, or of the image folder
    ``data_ref`` names), built once per worker, model and data, and its fingerprint."""
    key = _target_key(model_ref, data_ref)
    if key not in _targets:
        from ...methods import Target
        from ...models import load_model

        loaded, data = _shared.pop(key, (None, None))
        if data_ref is None:
            target = Target.from_model(loaded if loaded is not None else load_model(model_ref))
        else:
            from ...data import ImageFolderData

            if data is None:
                data = ImageFolderData.open(data_ref["root"], image_size=data_ref["image_size"], workers=0)
            target = Target.from_image_folder(loaded if loaded is not None else load_model(model_ref), data)
        _targets[key] = (target, fingerprint(target))
    return _targets[key]


def judge_images(pixels: np.ndarray, question: Any, judges: Iterable[Judge]) -> list[tuple[str, float, int, list,
                                                                                        float]]:
    """Each judge's verdict on ``[n, H, W, 3]`` uint8 images (the stored images, so that a report regenerated from
    the store judges exactly what was judged): ``(judge, p_true, top-1 hit, probabilities, seconds)``."""
    from ...judges import top1_hit

    images = from_uint8(pixels)
    verdicts = []
    for judge in judges:
        start = time.perf_counter()
        probabilities = judge.score(images, question)
        truth = question.truth_index
        verdicts.append((judge.name, float(probabilities[truth]), top1_hit(probabilities, truth),
                         [round(float(p), 6) for p in probabilities], time.perf_counter() - start))
    return verdicts


def compute_cell(key: str, payload: dict[str, Any], model_ref: str, timeout: float | None,
                 plugins: tuple[str, ...] = (), budget: int | None = None, threads: int | None = None,
                 question: Any = None, judges: tuple[tuple[str, dict], ...] = ()) -> Outcome:
    """Run one cell under its wall-clock guard ``timeout`` and work ``budget`` (images through the audited
    model), with ``threads`` torch threads, and judge its images on ``question`` by ``judges`` (``(name,
    settings)`` pairs): its value is ``{"images": [n, H, W, 3] uint8, "verdicts": judge_images(...)}``; never
    raises for a method's failure."""
    from ...judges import get_judge

    load_plugins(plugins)
    if threads:
        torch.set_num_threads(threads)

    def work():
        target, before = shared_target(model_ref, payload.get("data"))
        method = make_method(payload["method"], payload["params"])
        try:
            with time_budget(timeout), work_budget(target.model, budget):
                images = synthesize_for_trojan(method, target, trojan_from_payload(payload["trojan"]),
                                               n_images=payload["n_images"], seed=payload["seed"])
        finally:
            changed = changed_parts(before, fingerprint(target))
            if changed:
                del _targets[_target_key(model_ref, payload.get("data"))]  # the next cell gets a fresh copy
        if changed:
            raise MethodError(f"the method modified the Target it was handed ({', '.join(changed)}); a method must "
                              f"not modify its inputs (copy what it changes)")
        pixels = to_uint8(images)
        chosen = [get_judge(name, settings) for name, settings in judges]
        return {"images": pixels, "verdicts": judge_images(pixels, question, chosen) if question else []}

    return attempt(work, timeout=None, what=f"cell {key} ({payload['method']}, {payload['trojan']['name']}, "
                                            f"seed {payload['seed']})", key=key)
