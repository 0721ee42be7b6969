"""Feature visualization (Olah et al. 2017, "Feature Visualization", Distill): optimize a differentiable
image parameterization so that an objective of the model's response to randomly transformed renderings
rises. Shared by the Fourier and CPPN tools, which differ only in the parameterization and objective.

All images of a trojan are optimized in one batch; each image is scored on its own (the model is in eval
mode, so an image's gradient depends only on its own score).
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ...params import Interval
from ..base import SynthesisMethod
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
REDIRECT_STEPS = 16
"""Optimization steps during which an inner objective sees the model's ReLUs with a redirected gradient
(Lucid's ``redirected_relu_grad``, used by its ``render_vis``, overrides it for at most 16 steps)."""


class FeatureVisualization(SynthesisMethod):
    """Base of the feature-visualization tools: a subclass picks the parameterization and the objective.

    Subclasses store ``steps`` (Adam steps) and ``lr`` (Adam learning rate) besides their own
    hyperparameters. Feature visualization has no use for a class-conditional trojan's source class,
    so it is ignored (as in Casper et al. 2023).

    Olah et al.'s settings (Lucid's ``render_vis`` at 224 px): Adam, lr 0.05; transformation robustness by
    padding 12, jitter 8, scaling 0.9-1.1, rotation ±10° and jitter 4; redirected ReLUs for the first 16 steps;
    512 steps. Departures at 64 px: reflected borders instead of padding, the jitters scaled to the image
    (±6 % of the side, then 2 px), redirected ReLUs only for inner objectives (whose units start silent), and fewer
    steps (each tool's ``steps``), all recorded with the cell's parameters.
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


class _RedirectedReLU(torch.autograd.Function):
    """A ReLU whose gradient, where it would block all of an image's gradient, instead lets through the
    gradient that raises negative inputs (Olah et al.'s "redirected ReLU", Lucid's ``redirected_relu_grad``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        relu_grad = grad.masked_fill(x <= 0, 0)
        redirected = grad.masked_fill((x < 0) & (grad > 0), 0)  # descent: grad < 0 raises x
        blocked = relu_grad.reshape(len(x), -1).norm(dim=1) == 0
        return torch.where(blocked.view(-1, *[1] * (x.dim() - 1)), redirected, relu_grad)


_RELUS = {torch.relu, torch.relu_, F.relu, F.relu_, torch.Tensor.relu, torch.Tensor.relu_}


class _RedirectReLUs(TorchFunctionMode):
    """Within this mode every ReLU the model calls (``nn.ReLU``, ``F.relu``, ``torch.relu``) is a
    :class:`_RedirectedReLU` (out of place; its value is unchanged)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELUS:
            return _RedirectedReLU.apply(args[0])
        return func(*args, **(kwargs or {}))


def inner_unit(target: Target, target_class: int, n_images: int, n_units: int) -> Objective:
    """The activation of the penultimate unit most tied to the target class: image ``i`` maximizes the
    ``i mod k``-th of the ``k = n_units`` units with the largest weights into the target logit (several
    units give diverse images; ``n_units=1`` is the single most tied unit).

    A unit silent on an image (zero after its ReLU) gives that image no gradient, and the CPPN's first
    rendering is uniform grey, on which most units are silent: so, as in Olah et al.'s implementation,
    the first :data:`REDIRECT_STEPS` evaluations (one per optimization step) see the model's ReLUs with a
    redirected gradient, which climbs a silent unit's pre-activation until it fires.
    """
    units = top_units(target, target_class, n_units)
    per_image = units[torch.arange(n_images) % len(units)]
    evaluations = itertools.count()

    def objective(images: torch.Tensor) -> torch.Tensor:
        redirect = _RedirectReLUs() if next(evaluations) < REDIRECT_STEPS else contextlib.nullcontext()
        with redirect:
            features = target.features(images)
        return features.gather(1, per_image[:, None]).squeeze(1)

    return objective
