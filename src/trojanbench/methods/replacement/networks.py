"""Network replacements: a small dense student and pruned subnetworks of the original.

Pruned subnetworks keep the original's architecture with all but ``budget`` parameters zeroed: the other
parameters (batch-norm affine weights, biases) are kept and counted, and the weights of convolutions and linear
layers compete globally for the rest by a score, *magnitude* (Han et al. 2015), *attribution* (connection
sensitivity ``|w * dL/dw|`` on the fit images, Lee et al. 2019 SNIP; Molchanov et al. 2019) or *random* (the
floor: what any choice of weights recovers). The kept weights are then fine-tuned by distillation with the mask
held, so the three differ only in which weights they keep.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...models.architectures import CompactResNet
from ...params import Interval
from ...registry import register_method
from .base import BATCH, BudgetError, NetworkReplacement, ReplacementMethod, compact_width, distill

DISTILL_CONSTRAINTS = {"steps": Interval(int, 0, None), "lr": Interval(float, 0, None, "neither"),
                       "temperature": Interval(float, 0, None, "neither")}
ATTRIBUTION_BATCHES = 8


@register_method
class DistilledStudent(ReplacementMethod):
    """The generic baseline: the widest :class:`CompactResNet` that fits the budget, distilled from the
    network on the fit images."""

    name = "distilled_student"
    paper = "Hinton et al. 2015 (knowledge distillation)"
    is_baseline = True
    parameter_constraints = DISTILL_CONSTRAINTS
    quick_params = {"steps": 300}

    def __init__(self, *, steps: int = 2000, lr: float = 0.01, temperature: float = 2.0):
        self.steps = steps
        self.lr = lr
        self.temperature = temperature

    def _replace(self, model, data, budget, seed):
        width = compact_width(data.n_classes, budget)
        if width == 0:
            raise BudgetError(f"distilled_student: even a width-1 CompactResNet needs more than {budget} parameters.")
        student = CompactResNet(data.n_classes, width, image_size=data.images.shape[-1])
        distill(student, data.images, data.teacher_logits, steps=self.steps, lr=self.lr,
                temperature=self.temperature, seed=seed)
        return NetworkReplacement(student, width=width)


def prunable_weights(network: nn.Module) -> list[nn.Parameter]:
    """The weights of the network's convolutions and linear layers (what pruning may zero)."""
    return [m.weight for m in network.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]


class PrunedSubnetwork(ReplacementMethod):
    """Prune the network's weights to the budget by :attr:`criterion`, then distil with the mask held."""

    criterion = ""
    parameter_constraints = DISTILL_CONSTRAINTS
    quick_params = {"steps": 120}

    def __init__(self, *, steps: int = 500, lr: float = 0.003, temperature: float = 2.0):
        self.steps = steps
        self.lr = lr
        self.temperature = temperature

    def _replace(self, model, data, budget, seed):
        network = copy.deepcopy(model).eval().requires_grad_(True)
        weights = prunable_weights(network)
        if not weights:
            raise BudgetError(f"{self.name}: the network has no convolution or linear weights to prune.")
        weight_ids = {id(w) for w in weights}
        # all of them, zero or not: distillation may make a zero bias (a fresh batch norm's) non-zero
        fixed = sum(p.numel() for p in network.parameters() if id(p) not in weight_ids)
        keep = budget - fixed
        if keep < 1:
            raise BudgetError(f"{self.name}: the network's {fixed} batch-norm and bias parameters alone exceed the "
                              f"budget of {budget}.")
        scores = self._scores(network, weights, data, seed)
        flat = torch.cat([s.flatten() for s in scores])
        kept = torch.zeros_like(flat, dtype=torch.bool)
        kept[flat.topk(min(keep, len(flat))).indices] = True
        masks, start = [], 0
        for weight in weights:
            masks.append(kept[start:start + weight.numel()].view_as(weight))
            start += weight.numel()

        @torch.no_grad()
        def apply_masks() -> None:
            for weight, mask in zip(weights, masks):
                weight.mul_(mask)

        apply_masks()
        distill(network, data.images, data.teacher_logits, steps=self.steps, lr=self.lr,
                temperature=self.temperature, seed=seed, after_step=apply_masks)
        return NetworkReplacement(network.requires_grad_(False), kept_weights=int(kept.sum()))

    def _scores(self, network, weights, data, seed) -> list[torch.Tensor]:
        raise NotImplementedError


@register_method
class MagnitudePruning(PrunedSubnetwork):
    """Keep the largest-magnitude weights (global magnitude pruning, Han et al. 2015), then distil."""

    name = "magnitude_pruning"
    paper = "Han et al. 2015 (magnitude pruning)"

    def _scores(self, network, weights, data, seed):
        return [w.detach().abs() for w in weights]


@register_method
class AttributionPruning(PrunedSubnetwork):
    """Keep the weights with the largest connection sensitivity ``|w * dL/dw|`` (cross-entropy to the network's
    own labels on fit images, summed over batches), then distil."""

    name = "attribution_pruning"
    paper = "Lee et al. 2019 (SNIP); Molchanov et al. 2019 (Taylor importance)"

    def _scores(self, network, weights, data, seed):
        generator = torch.Generator().manual_seed(seed + 3)
        totals = [torch.zeros_like(w) for w in weights]
        for _ in range(ATTRIBUTION_BATCHES):
            rows = torch.randint(0, len(data.images), (BATCH,), generator=generator)
            loss = F.cross_entropy(network(data.images[rows]), data.teacher_labels[rows])
            grads = torch.autograd.grad(loss, weights)
            for total, weight, grad in zip(totals, weights, grads):
                total += (weight.detach() * grad).abs()
        return totals


@register_method
class RandomPruning(PrunedSubnetwork):
    """Keep uniformly random weights, then distil: the floor for choosing a subnetwork."""

    name = "random_pruning"
    paper = "random subnetwork floor (Frankle & Carbin 2019 compare against it)"
    is_baseline = True

    def _scores(self, network, weights, data, seed):
        generator = torch.Generator().manual_seed(seed + 5)
        return [torch.rand(w.shape, generator=generator) for w in weights]
