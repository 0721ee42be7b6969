"""Feature visualization (Olah et al. 2017, "Feature Visualization", Distill): optimize a differentiable
image parameterization so that an objective of the model's response to randomly transformed renderings
rises. Shared by the Fourier and CPPN tools, which differ only in the parameterization and objective.

All images of a trojan are optimized in one batch; each image is scored on its own (the model is in eval
mode, so an image's gradient depends only on its own score).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..base import SynthesisMethod
from ..params import Interval
from ..target import Target
from ._common import random_transform

Objective = Callable[[torch.Tensor], torch.Tensor]
"""Maps images ``[n, 3, H, W]`` to one score per image ``[n]`` (higher is better)."""

JITTER_PIXELS = 2
"""Integer jitter applied after :func:`random_transform` (Lucid's final ``jitter`` transform)."""

COMMON_CONSTRAINTS = {
    "steps": Interval(int, 1, None),
    "lr": Interval(float, 0, None, closed="neither"),
}
TARGET_CONSTRAINTS = {"contrast": Interval(float, 0, None)}
INNER_CONSTRAINTS = {"n_units": Interval(int, 1, None)}


class FeatureVisualization(SynthesisMethod):
    """Base of the feature-visualization tools: a subclass picks the parameterization and the objective.

    Subclasses store ``steps`` (Adam steps) and ``lr`` (Adam learning rate) besides their own
    hyperparameters. Feature visualization has no use for a class-conditional trojan's source class,
    so it is ignored (as in Casper et al. 2023).
    """

    def _parameterization(self, target: Target, n_images: int, generator: torch.Generator) -> nn.Module:
        """A module whose ``forward()`` renders ``[n_images, 3, H, W]`` images in ``[0, 1]``."""
        raise NotImplementedError

    def _objective(self, target: Target, target_class: int, n_images: int) -> Objective:
        raise NotImplementedError

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        images = self._parameterization(target, n_images, generator)
        objective = self._objective(target, target_class, n_images)
        return optimize(images, objective, self.steps, self.lr, generator)


def robust_view(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A randomly jittered, scaled and rotated view of ``images``, differentiably (transformation
    robustness, Olah et al. 2017): :func:`random_transform` then a small integer jitter."""
    views = random_transform(images, generator)
    size = images.shape[-1]
    dy, dx = torch.randint(0, 2 * JITTER_PIXELS + 1, (2,), generator=generator).tolist()
    padded = F.pad(views, (JITTER_PIXELS,) * 4, mode="reflect")
    return padded[..., dy:dy + size, dx:dx + size]


def optimize(images: nn.Module, objective: Objective, steps: int, lr: float,
             generator: torch.Generator) -> torch.Tensor:
    """Maximize ``objective`` of robust views of ``images()`` with Adam; return the final rendering."""
    optimizer = torch.optim.Adam(images.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = -objective(robust_view(images(), generator)).sum()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return images()


def target_logit(target: Target, target_class: int, contrast: float) -> Objective:
    """The target logit minus ``contrast`` times the mean of the other logits (a penalty on features
    that raise every class alike; 0 gives the plain logit objective)."""

    def objective(images: torch.Tensor) -> torch.Tensor:
        logits = target.model(images)
        others = (logits.sum(1) - logits[:, target_class]) / max(logits.shape[1] - 1, 1)
        return logits[:, target_class] - contrast * others

    return objective


def top_units(target: Target, target_class: int, k: int) -> torch.Tensor:
    """Indices of the ``k`` penultimate units with the largest weights into the target logit."""
    weights = target.classifier.weight[target_class].detach()
    return weights.argsort(descending=True, stable=True)[:min(k, len(weights))]


def inner_unit(target: Target, target_class: int, n_images: int, n_units: int) -> Objective:
    """The activation of the penultimate unit most tied to the target class: image ``i`` maximizes the
    ``i mod k``-th of the ``k = n_units`` units with the largest weights into the target logit (several
    units give diverse images; ``n_units=1`` is the single most tied unit).

    A unit silent on an image (zero after its ReLU) gives that image no gradient, and the CPPN's first
    rendering is uniform grey, on which most units are silent: so while its unit is silent, an image climbs
    the target logit (which the unit feeds) instead, until the unit fires. This stands in for the
    "redirected ReLU" of Olah et al.'s implementation, which needs access to the model's ReLUs.
    """
    units = top_units(target, target_class, n_units)
    per_image = units[torch.arange(n_images) % len(units)]

    def objective(images: torch.Tensor) -> torch.Tensor:
        features, logits = target.features_and_logits(images)
        unit = features.gather(1, per_image[:, None]).squeeze(1)
        return torch.where(unit > 0, unit, logits[:, target_class])

    return objective
