"""Trigger reverse-engineering shared by Neural Cleanse and TABOR.

A trigger is a mask ``m`` in ``[0, 1]^{H×W}`` and a pattern ``p`` in ``[0, 1]^{3×H×W}`` (both through a
sigmoid of free logits) stamped as ``x' = (1 - m)·x + m·p`` (Wang et al. 2019). :func:`invert_triggers`
optimizes several triggers in one batch, each on its own clean images, minimizing the cross-entropy to the
target class plus ``cost·mean(m)`` plus a method's extra penalty; each trigger's ``cost`` follows Neural Cleanse's
schedule and each keeps its smallest successful mask (:func:`invert_triggers`).
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
                    cost_multiplier: float, success_threshold: float = 0.9, patience: int = 5,
                    penalty: Penalty | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimize ``n_triggers`` (mask, pattern) pairs from random initializations; return each trigger's best, detached.

    Neural Cleanse's schedule (Wang et al. 2019, their released code): a trigger's mask cost is 0 until it first
    flips ``success_threshold`` of its batch for ``patience`` steps in a row, then ``init_cost``; after that it is
    multiplied by ``cost_multiplier`` after ``patience`` successful steps in a row and divided by
    ``cost_multiplier ** 1.5`` after ``patience`` failed ones. The trigger returned is the one with the smallest mask
    norm among those that reached the threshold (the last one for a trigger that never did).
    """
    size = target.image_size
    mask_logit = (torch.rand(n_triggers, 1, size, size, generator=generator) * 2 - 3).requires_grad_()
    pattern_logit = (torch.rand(n_triggers, 3, size, size, generator=generator) * 4 - 2).requires_grad_()
    optimizer = torch.optim.Adam([mask_logit, pattern_logit], lr=lr, betas=(0.5, 0.9))
    cost = torch.zeros(n_triggers)
    streak = torch.zeros(n_triggers)  # > 0: successful steps in a row, < 0: failed steps in a row
    best_norm = torch.full((n_triggers,), float("inf"))
    best_mask, best_pattern = mask_logit.detach().sigmoid(), pattern_logit.detach().sigmoid()
    labels = torch.full((n_triggers * batch_size,), target_class)
    for _ in range(steps):
        mask, pattern = mask_logit.sigmoid(), pattern_logit.sigmoid()
        clean = sample_clean(target, n_triggers * batch_size, generator, source_class)
        clean = clean.view(n_triggers, batch_size, *clean.shape[1:])
        logits = target.model(stamp(clean, mask[:, None], pattern[:, None]).flatten(0, 1))
        loss = F.cross_entropy(logits, labels, reduction="none").view(n_triggers, batch_size).mean(1)
        norm = mask.mean((1, 2, 3))
        loss = loss + cost * norm
        if penalty is not None:
            loss = loss + penalty(mask, pattern, clean)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        with torch.no_grad():
            success = (logits.argmax(1) == target_class).view(n_triggers, batch_size).float().mean(1) \
                >= success_threshold
            better = success & (norm < best_norm)
            best_norm = torch.where(better, norm, best_norm)
            best_mask = torch.where(better.view(-1, 1, 1, 1), mask, best_mask)
            best_pattern = torch.where(better.view(-1, 1, 1, 1), pattern, best_pattern)
            streak = torch.where(success, streak.clamp(min=0) + 1, streak.clamp(max=0) - 1)
            started = cost > 0
            cost = torch.where(~started & (streak >= patience), torch.full_like(cost, init_cost), cost)
            cost = torch.where(started & (streak >= patience), cost * cost_multiplier, cost)
            cost = torch.where(started & (streak <= -patience), cost / cost_multiplier ** 1.5, cost)
            streak = torch.where(streak.abs() >= patience, torch.zeros_like(streak), streak)
    never = torch.isinf(best_norm).view(-1, 1, 1, 1)
    final_mask, final_pattern = mask_logit.detach().sigmoid(), pattern_logit.detach().sigmoid()
    return torch.where(never, final_mask, best_mask), torch.where(never, final_pattern, best_pattern)


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
