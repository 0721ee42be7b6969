"""The editing family's removal procedures: edits of a trojaned model meant to remove a trojan, guided or not.

A :class:`RemovalProcedure` has an inert constructor and declared hyperparameters like every
:class:`~trojanbench.methods.base.Method`, and one entry point, :meth:`RemovalProcedure.remove`: from a
model, the defender's clean data (:class:`DefenderData`), optional :class:`Guidance` (what a tool's output,
or the true trigger, or noise, says the trojan looks like) and the trojan's target class, it returns an
edited *copy* of the model (the input model is never changed). Everything is seeded.

Guidance is uniform across sources: it turns a batch of the defender's clean images into *guided* versions
(a tool's image pasted or blended in, the true trigger applied, ...) that keep their correct labels. The
unlearning procedure trains on them at their correct labels; the pruning procedure ranks units by how much
more the guided images activate them than the same clean images do.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import ConfigError
from ...params import Interval, require
from ..base import Method
from ..synthesis._common import paste_patches

FINETUNE_BATCH = 32


@dataclass(frozen=True)
class DefenderData:
    """The defender's clean labelled images (``defense`` split, never test data): ``images``/``labels`` to
    train on, and a held-out ``val_images``/``val_labels`` part for choosing thresholds by clean accuracy
    (no defence may look at attack success or test data). On a user's image folder they are its ``val`` images,
    and ``folder`` is that :class:`~trojanbench.data.ImageFolderData` (``None``: the built-in world)."""

    images: torch.Tensor
    labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    folder: Any = None

    @property
    def class_names(self) -> tuple[str, ...]:
        from ...world import OBJECT_CLASSES

        return tuple(OBJECT_CLASSES) if self.folder is None else tuple(self.folder.class_names)

    def __post_init__(self):
        if len(self.images) < 1 or len(self.images) != len(self.labels):
            raise ConfigError(f"DefenderData needs >= 1 image with one label each. Got {len(self.images)} images "
                              f"and {len(self.labels)} labels.")


class Guidance:
    """Makes guided versions of clean images (same labels unless the guidance replaces the scene)."""

    name: str = "guidance"

    def guide(self, images: torch.Tensor, labels: torch.Tensor,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class ImageGuidance(Guidance):
    """A tool's images (or noise) as guidance: each clean image gets one guidance image, either pasted as a
    patch (side ``paste_scale`` of the image, at a random place) or blended over the whole image (weight
    ``blend_weight``), with equal odds, so no trigger kind is assumed."""

    paste_scale = (0.25, 0.45)
    blend_weight = (0.3, 0.6)

    def __init__(self, name: str, images: torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3 or len(images) < 1:
            raise ConfigError(f"Guidance {name!r} needs images [n, 3, H, W] with n >= 1. Got {tuple(images.shape)}.")
        self.name, self.images = name, images.float().clamp(0, 1)

    def guide(self, images, labels, generator):
        n, _, height, width = images.shape
        sources = self.images[torch.randint(0, len(self.images), (n,), generator=generator)]
        if sources.shape[-2:] != (height, width):
            sources = F.interpolate(sources, size=(height, width), mode="bilinear", antialias=True,
                                    align_corners=False)
        pasted = torch.rand(n, generator=generator) < 0.5
        low, high = self.blend_weight
        weight = (low + (high - low) * torch.rand(n, 1, 1, 1, generator=generator))
        out = (1 - weight) * images + weight * sources
        if pasted.any():
            out[pasted] = paste_patches(images[pasted], sources[pasted], generator, scale=self.paste_scale)
        return out, labels


def penultimate_layer(model: nn.Module) -> nn.Linear:
    """The model's last ``nn.Linear``: its inputs are the penultimate units that pruning acts on."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"Pruning needs a model whose last layer is an nn.Linear; {type(model).__name__} has none.")
    return linears[-1]


@torch.no_grad()
def penultimate_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``[n, d]`` inputs of the model's last linear layer (the penultimate units), model in eval mode."""
    captured: list[torch.Tensor] = []
    handle = penultimate_layer(model).register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0]))
    try:
        for start in range(0, len(images), 256):
            model(images[start:start + 256])
    finally:
        handle.remove()
    return torch.cat(captured).flatten(1)


def penultimate_activations(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Mean activation of each penultimate unit over ``images``."""
    return penultimate_features(model, images).mean(0)


def prune_units(model: nn.Module, units: torch.Tensor) -> Callable[[], None]:
    """Cut penultimate ``units`` out of the decision (zero their weights in the last layer); returns a
    function that re-applies the cut, for fine-tuning to call after each step."""
    layer = penultimate_layer(model)
    units = torch.as_tensor(units, dtype=torch.long)

    @torch.no_grad()
    def reapply() -> None:
        layer.weight[:, units] = 0

    reapply()
    return reapply


def finetune(model: nn.Module, data: DefenderData, *, steps: int, lr: float, seed: int,
             guidance: Guidance | None = None, guided_fraction: float = 0.0,
             after_step: Callable[[], None] | None = None) -> nn.Module:
    """Fine-tune ``model`` in place: ``steps`` SGD steps (momentum 0.9) on batches of the defender's images,
    ``guided_fraction`` of each batch replaced by guided versions at their correct labels. Batch-norm
    statistics stay frozen (eval mode), as suits a few hundred images."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    model.eval()
    n_guided = int(round(guided_fraction * FINETUNE_BATCH)) if guidance is not None else 0
    for _ in range(steps):
        rows = torch.randint(0, len(data.images), (FINETUNE_BATCH,), generator=generator)
        images, labels = data.images[rows].clone(), data.labels[rows].clone()
        if n_guided:
            images[:n_guided], labels[:n_guided] = guidance.guide(images[:n_guided], labels[:n_guided], generator)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
    return model


class RemovalProcedure(Method):
    """A removal procedure (see the module docstring). Subclasses implement :meth:`_remove`, which may edit
    the copy it is given in place and returns it."""

    family = "editing"
    uses_guidance: bool = True
    """False for reference defences that bring their own signal (or none); they run once per model and
    target, without a guidance source."""
    per_target: bool = True
    """False when the procedure never looks at the target class (it is then run once per model)."""

    def remove(self, model: nn.Module, data: DefenderData, guidance: Guidance | None, target_class: int,
               seed: int = 0) -> nn.Module:
        """An edited copy of ``model`` meant to no longer map triggered inputs to ``target_class``."""
        self.validate()
        seed = require("seed", seed, Interval(int, 0, None))
        edited = copy.deepcopy(model).eval()
        for parameter in edited.parameters():
            parameter.requires_grad_(True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            edited = self._remove(edited, data, guidance, target_class, seed)
        return edited.eval().requires_grad_(False)

    def _remove(self, model: nn.Module, data: DefenderData, guidance: Guidance | None, target_class: int,
                seed: int) -> nn.Module:
        raise NotImplementedError
