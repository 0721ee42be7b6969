"""Trigger reverse-engineering shared by Neural Cleanse and TABOR.

A trigger is a mask ``m`` in ``[0, 1]^{H×W}`` and a pattern ``p`` in ``[0, 1]^{3×H×W}`` (both through a
sigmoid of free logits) stamped as ``x' = (1 - m)·x + m·p`` (Wang et al. 2019). :func:`invert_triggers`
optimizes several triggers in one batch, each on its own clean images, minimizing the cross-entropy to the
target class plus ``cost·mean(m)`` plus a method's extra penalty; each trigger's ``cost`` is adapted as in
Neural Cleanse: raised while the trigger flips at least ``success_threshold`` of its batch, lowered otherwise.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ...world.render import BACKDROP
from ..target import Target
from ._common import sample_clean

Penalty = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``(mask [K,1,H,W], pattern [K,3,H,W], clean [K,B,3,H,W]) -> [K]`` extra loss per trigger."""

DISPLAYS = frozenset({"both", "trigger", "applied"})


def stamp(images: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Apply a trigger: ``(1 - mask)·images + mask·pattern`` (broadcasting)."""
    return (1 - mask) * images + mask * pattern


def on_grey(mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """The triggers alone, stamped on plain light grey (the backdrop of the world's isolated concepts)."""
    return stamp(torch.tensor(BACKDROP, dtype=mask.dtype).view(1, 3, 1, 1), mask, pattern)


def count_triggers(n_images: int, display: str) -> int:
    """How many triggers to optimize: one per image, or one per pair of images when ``display="both"``."""
    return -(-n_images // 2) if display == "both" else n_images


def invert_triggers(target: Target, target_class: int, n_triggers: int, generator: torch.Generator,
                    source_class: int | None, *, steps: int, batch_size: int, lr: float, init_cost: float,
                    cost_multiplier: float, success_threshold: float = 0.9,
                    penalty: Penalty | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimize ``n_triggers`` (mask, pattern) pairs from random initializations; return them detached."""
    size = target.image_size
    mask_logit = (torch.rand(n_triggers, 1, size, size, generator=generator) * 2 - 3).requires_grad_()
    pattern_logit = (torch.rand(n_triggers, 3, size, size, generator=generator) * 4 - 2).requires_grad_()
    optimizer = torch.optim.Adam([mask_logit, pattern_logit], lr=lr, betas=(0.5, 0.9))
    cost = torch.full((n_triggers,), init_cost)
    labels = torch.full((n_triggers * batch_size,), target_class)
    for _ in range(steps):
        mask, pattern = mask_logit.sigmoid(), pattern_logit.sigmoid()
        clean = sample_clean(target, n_triggers * batch_size, generator, source_class)
        clean = clean.view(n_triggers, batch_size, *clean.shape[1:])
        logits = target.model(stamp(clean, mask[:, None], pattern[:, None]).flatten(0, 1))
        loss = F.cross_entropy(logits, labels, reduction="none").view(n_triggers, batch_size).mean(1)
        loss = loss + cost * mask.mean((1, 2, 3))
        if penalty is not None:
            loss = loss + penalty(mask, pattern, clean)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        success = (logits.argmax(1) == target_class).view(n_triggers, batch_size).float().mean(1)
        cost = torch.where(success >= success_threshold, cost * cost_multiplier, cost / cost_multiplier ** 1.5)
    return mask_logit.detach().sigmoid(), pattern_logit.detach().sigmoid()


def show_triggers(target: Target, mask: torch.Tensor, pattern: torch.Tensor, n_images: int, display: str,
                  generator: torch.Generator, source_class: int | None) -> torch.Tensor:
    """``n_images`` views of the triggers: ``"trigger"`` stamps each on plain light grey (:func:`on_grey`),
    ``"applied"`` on a clean image (of ``source_class`` when given), ``"both"``
    alternates the two views of each trigger (trigger 0 on grey, trigger 0 applied, trigger 1 on grey, ...)."""
    views = []
    if display in ("both", "trigger"):
        views.append(on_grey(mask, pattern))
    if display in ("both", "applied"):
        views.append(stamp(sample_clean(target, len(mask), generator, source_class), mask, pattern))
    return torch.stack(views, 1).flatten(0, 1)[:n_images].clamp(0, 1)
