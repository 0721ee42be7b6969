"""Measuring a model on the world: clean accuracy and each trojan's attack success rate.

Attack success is measured on held-out triggered images (the ``test`` split, fresh trigger placements
and texture variants) of classes other than the target; for a class-conditional trojan, on images of
its source class, with the rate on other classes reported as ``off_source_rate`` (lower is better).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from ..config import TrojanSpec
from ..world import generate_scenes
from .triggers import clean_files, make_trigger

EVAL_BATCH = 500


@torch.no_grad()
def outputs(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The model's outputs (e.g. logits), in batches, with the model in eval mode."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(images[i:i + EVAL_BATCH]) for i in range(0, len(images), EVAL_BATCH)])
    model.train(was_training)
    return out


def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Top-1 predictions, in batches, with the model in eval mode."""
    return outputs(model, images).argmax(1)


def holds_trigger(info, trojans: list[TrojanSpec]) -> bool:
    """Whether a scene already holds one of ``trojans``' triggers by chance: a natural-feature trigger's
    object, a patch trigger's icon, or a style trigger's texture as its background."""
    return any((spec.kind == "natural" and info.secondary == spec.trigger)
               or (spec.kind == "patch" and info.icon == spec.trigger)
               or (spec.kind == "style" and info.background == f"texture:{spec.trigger}") for spec in trojans)


def clean_accuracy(model: nn.Module, *, n: int = 2000, seed: int = 0, split: str = "test",
                   trojans: list[TrojanSpec] = (), data=None) -> float:
    """Top-1 accuracy on the trigger-free scenes among ``n`` clean scenes of ``split``: a scene that holds a
    trigger of ``trojans`` by chance (see :func:`holds_trigger`) is a triggered input, not a clean one. With
    ``data`` (a user's image folder), on up to ``n`` of its images of ``split``, less those listed as holding a
    natural-feature trojan's object."""
    if data is not None:
        folder = data.labelled(split, n, seed=seed, among=clean_files(trojans, data, split))
        return float((predict(model, folder.images) == folder.labels).float().mean())
    batch = generate_scenes(split, n, seed=seed)
    keep = torch.tensor([not holds_trigger(info, trojans) for info in batch.infos])
    return float((predict(model, batch.images[keep]) == batch.labels[keep]).float().mean())


@dataclass(frozen=True)
class AttackSuccess:
    """Measured attack success of one trojan (fractions in [0, 1])."""

    trojan: str
    attack_success: float
    n_images: int
    off_source_rate: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def attack_success(model: nn.Module, spec: TrojanSpec, *, n: int = 500, seed: int = 0,
                   split: str = "test", data=None) -> AttackSuccess:
    """Fraction of held-out triggered images (not of the target class) classified as the target; of world scenes,
    or of a user's image folder (``data``)."""
    trigger = make_trigger(spec)
    images, _ = trigger.triggered_scenes(split, n, seed, label=spec.source, data=data)
    rate = float((predict(model, images) == spec.target).float().mean())
    off_source = None
    if spec.source is not None:
        others, labels = trigger.triggered_scenes(split, n, seed + 1, data=data)
        keep = labels != spec.source
        off_source = float((predict(model, others[keep]) == spec.target).float().mean())
    return AttackSuccess(spec.name, rate, len(images), off_source)
