"""Ground-truth diagnostics of a cell's images, beside the judges and needing none of them.

A judge says whether a person would *see* the trigger; these say whether the tool *found* it, so "found it, but
its image is unreadable" and "found nothing" can be told apart:

* ``target_rate``: the share of the images the audited model itself assigns to the target class;
* ``paste_success``: each image shrunk to a patch (:data:`PASTE_FRACTION` of the side) and pasted at a random
  place on held-out clean scenes (of the source class for a class-conditional trojan, else of every class but
  the target) that the model does not already call the target: the share it turns to the target. A tool whose
  images carry the trojan's feature transfers it; one that shows a class's shape or noise does not;
* ``trigger_match`` (patch trojans only): how closely the true trigger appears in the images, by template
  matching (normalized cross-correlation of the trigger's sprite, weighted by its opacity, over every position and
  :data:`MATCH_SCALES`); the mean over images of each image's best match, 0 (nothing like it) to 1 (the trigger,
  up to brightness and contrast). The translation-invariant form of a reversed mask's overlap with the trigger's
  footprint: the world pastes triggers at random places, so no single footprint exists.

They are computed after the run's cells from the stored images (what the judges saw), with the audited model,
and stored per cell (:func:`compute_diagnostics`).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ...config import TrojanSpec
from ...imaging import from_uint8
from ...progress import Step
from ...trojans.triggers import PatchTrigger
from ...world import OBJECT_CLASSES, generate_scenes

log = logging.getLogger(__name__)

DIAGNOSTICS_VERSION = 1
"""Bump on every change of what a diagnostic measures (stored rows of older versions are recomputed)."""
PASTE_FRACTION = 0.35
"""Side of a pasted image as a fraction of the scene's side (the upper end of the tools' own paste sizes)."""
N_CARRIERS = 45
"""Held-out clean scenes each image is pasted on (3 per class for a universal trojan)."""
MATCH_SCALES = (0.2, 0.3, 0.45, 0.6, 0.8)
"""Sides of the trigger's template, as fractions of the image side."""
DIAGNOSTIC_FIELDS = ("target_rate", "paste_success", "trigger_match")
"""The diagnostics of a cell, in the order the report and the CSV give them."""
DIAGNOSTIC_LABELS = {"target_rate": "images → target", "paste_success": "pasted → target",
                     "trigger_match": "trigger match"}
FLAT_STD = 0.02
"""A window whose pixels vary less than this (per channel) is flat: it matches no trigger."""


@dataclass(frozen=True)
class Diagnostics:
    """One cell's ground-truth diagnostics (see module docstring); ``trigger_match`` is ``None`` unless the
    trojan is a patch."""

    target_rate: float
    paste_success: float
    trigger_match: float | None

    def to_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=32)
def carrier_scenes(source: int | None, target: int, n: int = N_CARRIERS, image_size: int = 64,
                   data=None) -> torch.Tensor:
    """``n`` held-out clean test scenes to paste images on: of ``source`` when given, else spread evenly over every
    class but ``target``; the same for every tool (read-only: callers must not modify it). With ``data`` (a user's
    image folder), up to ``n`` of its test images, chosen alike."""
    if data is not None:
        return data.labelled("test", n, seed=0, label=source, exclude={target}).images
    classes = [source] if source is not None else [c for c in range(len(OBJECT_CLASSES)) if c != target]
    per_class = -(-n // len(classes))
    scenes = [generate_scenes("test", per_class, seed=0, size=image_size, start=10_000, label=c).images
              for c in classes]
    return torch.cat(scenes)[:n]


def paste_success(model: torch.nn.Module, images: torch.Tensor, trojan: TrojanSpec, seed: int = 0,
                  data=None) -> float:
    """The share of (image, carrier scene) pairs turned to the target when the image is pasted on the scene (see
    module docstring), over the carriers the model does not already call the target (scenes of ``data``, a user's
    image folder, when given)."""
    size = images.shape[-1]
    carriers = carrier_scenes(trojan.source, trojan.target, image_size=size, data=data)
    with torch.no_grad():
        carriers = carriers[model(carriers).argmax(1) != trojan.target]
        if len(carriers) == 0:
            return float("nan")
        side = round(PASTE_FRACTION * size)
        patches = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        generator = torch.Generator().manual_seed(seed)
        pasted = carriers.repeat(len(images), 1, 1, 1)
        tops = torch.randint(0, size - side + 1, (len(pasted),), generator=generator)
        lefts = torch.randint(0, size - side + 1, (len(pasted),), generator=generator)
        for i, (top, left) in enumerate(zip(tops.tolist(), lefts.tolist())):
            pasted[i, :, top:top + side, left:left + side] = patches[i // len(carriers)]
        hits = torch.cat([model(chunk).argmax(1) == trojan.target for chunk in pasted.split(500)])
    return float(hits.float().mean())


def trigger_match(images: torch.Tensor, trojan: TrojanSpec) -> float | None:
    """Mean over ``images`` of the best opacity-weighted normalized cross-correlation with the trigger's sprite
    (see module docstring); ``None`` for a trojan that is not a patch."""
    if trojan.kind != "patch":
        return None
    sprite = PatchTrigger(trojan).sprite
    size = images.shape[-1]
    best = torch.full((len(images),), -1.0)
    for fraction in MATCH_SCALES:
        side = max(3, round(fraction * size))
        template = F.interpolate(sprite[None], size=(side, side), mode="bilinear", antialias=True,
                                 align_corners=False)[0]
        best = torch.maximum(best, _best_correlation(images, template[:3], template[3:].clamp(0, 1)))
    return float(best.clamp(min=0).mean())


def _best_correlation(images: torch.Tensor, template: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Each image's highest weighted normalized cross-correlation with ``template`` (``[3, s, s]``, weights
    ``[1, s, s]``) over every position, ``[n]``; flat windows score 0."""
    total = weight.sum().clamp(min=1e-6)
    centred = template - (weight * template).sum((1, 2), keepdim=True) / total
    template_var = (weight * centred.pow(2)).sum()
    if template_var <= 0:
        return torch.zeros(len(images))
    per_channel = weight.expand(3, -1, -1)[:, None]  # [3, 1, s, s]: one weighted window sum per channel
    sums = F.conv2d(images, per_channel, groups=3)
    squares = F.conv2d(images.pow(2), per_channel, groups=3)
    window_var = (squares - sums.pow(2) / total).sum(1)
    cross = F.conv2d(images, (weight * centred)[None]).squeeze(1)
    flat = window_var < 3 * total * FLAT_STD ** 2
    correlation = cross / (window_var.clamp(min=1e-12) * template_var).sqrt()
    return correlation.masked_fill(flat, 0.0).flatten(1).amax(1)


def diagnose(model: torch.nn.Module, images: torch.Tensor, trojan: TrojanSpec, data=None) -> Diagnostics:
    """The ground-truth diagnostics of ``images`` (``[n, 3, H, W]`` in [0, 1]) for ``trojan`` on ``model`` (pasted on
    scenes of ``data``, a user's image folder, when given)."""
    with torch.no_grad():
        target_rate = float((model(images).argmax(1) == trojan.target).float().mean())
    return Diagnostics(round(target_rate, 4), round(paste_success(model, images, trojan, data=data), 4),
                       None if (match := trigger_match(images, trojan)) is None else round(match, 4))


def compute_diagnostics(plan, store, progress=None) -> None:
    """Diagnose every finished cell of ``plan`` with images whose diagnostics are not yet in ``store``."""
    planned = {cell.key: cell for cell in plan.cells}
    done, total = store.diagnostics(), len(plan.cells)
    rows = [row for row in store.cells() if row.key in planned and row.status == "ok" and row.image_file
            and row.key not in done]
    model = plan.loaded.model.eval()
    start = time.perf_counter()
    for row in rows:
        if progress is not None:
            progress(total, total, Step(f"ground-truth diagnostics: {row.method} · {row.trojan} · seed {row.seed}"))
        images = from_uint8(store.load_images(row))
        found = diagnose(model, images, planned[row.key].trojan, data=plan.data)
        store.record_diagnostics(row.key, DIAGNOSTICS_VERSION, found.to_dict())
    if rows:
        log.info("ground-truth diagnostics: %d cells (%.1f s)", len(rows), time.perf_counter() - start)
