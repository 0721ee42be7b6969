"""Removal procedures: the two guided ones the benchmark varies guidance for, the no-op anchor, and three
reference defences from the literature run on the same budgets.

Guided (given a :class:`~trojanbench.methods.editing.base.Guidance`, or none for plain fine-tuning):

* ``unlearning``: fine-tune with a share of each batch replaced by guided images kept at their correct
  labels (the unlearning step of Neural Cleanse, Wang et al. 2019, with any guidance in place of its trigger);
* ``pruning``: cut the penultimate units the guided images activate most beyond the same clean images, then
  fine-tune (in the spirit of Fine-Pruning, Liu et al. 2018, with guidance choosing the units).

Reference defences (bring their own signal): ``fine_pruning`` (Liu et al. 2018), ``neural_cleanse_unlearning``
(Wang et al. 2019) and the data-free ``channel_lipschitz`` pruning (Zheng et al. 2022). ``identity`` changes
nothing: the anchor a removal is measured from (fidelity 0, DER 0.5).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ...params import Interval
from ...registry import register_method
from ..synthesis._trigger_inversion import invert_triggers, stamp
from ..target import Target
from .base import (
    DefenderData,
    Guidance,
    RemovalProcedure,
    finetune,
    penultimate_activations,
    penultimate_layer,
    prune_units,
)

FINETUNE_CONSTRAINTS = {"steps": Interval(int, 0, None), "lr": Interval(float, 0, None)}


@register_method
class Identity(RemovalProcedure):
    """Returns the model unchanged: the anchor every removal metric is measured from."""

    name = "identity"
    paper = "baseline (no removal)"
    is_baseline = True
    uses_guidance = False
    per_target = False

    def _remove(self, model, data, guidance, target_class, seed):
        return model


@register_method
class Unlearning(RemovalProcedure):
    """Fine-tune on the defender's clean images with ``guided_fraction`` of each batch replaced by guided
    versions at their correct labels (no guidance: plain fine-tuning on the same budget)."""

    name = "unlearning"
    paper = "Wang et al. 2019 (Neural Cleanse unlearning), guided by any source"
    parameter_constraints = {**FINETUNE_CONSTRAINTS, "guided_fraction": Interval(float, 0, 1)}
    quick_params = {"steps": 30}

    def __init__(self, *, steps: int = 60, lr: float = 0.001, guided_fraction: float = 0.25):
        self.steps = steps
        self.lr = lr
        self.guided_fraction = guided_fraction

    def _remove(self, model, data, guidance, target_class, seed):
        return finetune(model, data, steps=self.steps, lr=self.lr, seed=seed, guidance=guidance,
                        guided_fraction=self.guided_fraction)


@torch.no_grad()
def guided_unit_scores(model: nn.Module, data: DefenderData, guidance: Guidance, seed: int,
                       n_images: int = 256) -> torch.Tensor:
    """Per penultimate unit: mean activation on guided versions of clean images minus on the same images."""
    generator = torch.Generator().manual_seed(seed)
    images, labels = data.images[:n_images], data.labels[:n_images]
    guided, _ = guidance.guide(images, labels, generator)
    return penultimate_activations(model, guided) - penultimate_activations(model, images)


@register_method
class Pruning(RemovalProcedure):
    """Cut the ``units`` penultimate units that guided images activate most beyond the same clean images
    (zero their outgoing weights, kept at zero), then fine-tune on clean images. No guidance: nothing is cut."""

    name = "pruning"
    paper = "guided pruning after Liu et al. 2018 (Fine-Pruning)"
    parameter_constraints = {**FINETUNE_CONSTRAINTS, "units": Interval(int, 0, None)}
    quick_params = {"steps": 30}

    def __init__(self, *, units: int = 8, steps: int = 60, lr: float = 0.001):
        self.units = units
        self.steps = steps
        self.lr = lr

    def _remove(self, model, data, guidance, target_class, seed):
        reapply = None
        if guidance is not None and self.units:
            scores = guided_unit_scores(model, data, guidance, seed)
            reapply = prune_units(model, scores.argsort(descending=True, stable=True)[:self.units])
        return finetune(model, data, steps=self.steps, lr=self.lr, seed=seed, after_step=reapply)


@torch.no_grad()
def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((model(images).argmax(1) == labels).float().mean())


@register_method
class FinePruning(RemovalProcedure):
    """Fine-Pruning (Liu et al. 2018): prune the last convolutional layer's channels (the penultimate units)
    in increasing order of mean activation on clean data, ``step`` at a time, while accuracy on the
    defender's held-out clean images stays within ``max_accuracy_drop`` of the start; then fine-tune. The
    threshold is chosen on clean accuracy only, never on attack success."""

    name = "fine_pruning"
    paper = "Liu et al. 2018, Fine-Pruning"
    is_baseline = True
    uses_guidance = False
    per_target = False
    parameter_constraints = {**FINETUNE_CONSTRAINTS, "max_accuracy_drop": Interval(float, 0, 1),
                             "step": Interval(int, 1, None)}
    quick_params = {"steps": 30}

    def __init__(self, *, max_accuracy_drop: float = 0.04, step: int = 4, steps: int = 60, lr: float = 0.001):
        self.max_accuracy_drop = max_accuracy_drop
        self.step = step
        self.steps = steps
        self.lr = lr

    def _remove(self, model, data, guidance, target_class, seed):
        layer = penultimate_layer(model)
        order = penultimate_activations(model, data.images).argsort(stable=True)
        original = layer.weight.detach().clone()
        floor = _accuracy(model, data.val_images, data.val_labels) - self.max_accuracy_drop
        kept = 0
        for count in range(self.step, len(order), self.step):
            prune_units(model, order[:count])
            if _accuracy(model, data.val_images, data.val_labels) < floor:
                break
            kept = count
        with torch.no_grad():
            layer.weight.copy_(original)
        reapply = prune_units(model, order[:kept])
        return finetune(model, data, steps=self.steps, lr=self.lr, seed=seed, after_step=reapply)


class _StampGuidance(Guidance):
    """A reverse-engineered (mask, pattern) trigger stamped on clean images (Neural Cleanse's unlearning)."""

    name = "neural_cleanse_trigger"

    def __init__(self, mask: torch.Tensor, pattern: torch.Tensor):
        self.mask, self.pattern = mask, pattern

    def guide(self, images, labels, generator):
        return stamp(images, self.mask, self.pattern), labels


@register_method
class NeuralCleanseUnlearning(RemovalProcedure):
    """Neural Cleanse (Wang et al. 2019): reverse-engineer the smallest trigger sending the defender's clean
    images to the target class (mask and pattern, adaptive mask cost), then fine-tune with it stamped on
    ``guided_fraction`` of each batch at the correct labels."""

    name = "neural_cleanse_unlearning"
    paper = "Wang et al. 2019, Neural Cleanse"
    is_baseline = True
    uses_guidance = False
    parameter_constraints = {**FINETUNE_CONSTRAINTS, "guided_fraction": Interval(float, 0, 1),
                             "inversion_steps": Interval(int, 1, None)}
    quick_params = {"steps": 30, "inversion_steps": 40}

    def __init__(self, *, inversion_steps: int = 100, guided_fraction: float = 0.2, steps: int = 60,
                 lr: float = 0.001):
        self.inversion_steps = inversion_steps
        self.guided_fraction = guided_fraction
        self.steps = steps
        self.lr = lr

    def _remove(self, model, data, guidance, target_class, seed):
        frozen = Target(model=model, image_size=data.images.shape[-1], class_names=data.class_names,
                        clean_images=data.images, clean_labels=data.labels,
                        natural_patches=data.images[:0], layers={"model": model})
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        mask, pattern = invert_triggers(frozen, target_class, 1, torch.Generator().manual_seed(seed), None,
                                        steps=self.inversion_steps, batch_size=16, lr=0.1, init_cost=1.0,
                                        cost_multiplier=1.5)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return finetune(model, data, steps=self.steps, lr=self.lr, seed=seed, guidance=_StampGuidance(mask, pattern),
                        guided_fraction=self.guided_fraction)


def conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Each ``Conv2d`` paired with the ``BatchNorm2d`` registered right after it (matching channels)."""
    modules = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    return [(conv, norm) for conv, norm in zip(modules, modules[1:])
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and conv.out_channels == norm.num_features]


@register_method
class ChannelLipschitz(RemovalProcedure):
    """Channel Lipschitzness-based pruning (Zheng et al. 2022), data-free: per convolution followed by batch
    norm, each channel's upper bound on its Lipschitz constant is the spectral norm of its kernel scaled by
    the norm's ``|gamma| / sqrt(var + eps)``; channels above the layer's mean + ``u`` standard deviations are
    switched off (their norm's weight and bias set to 0). No data, no fine-tuning."""

    name = "channel_lipschitz"
    paper = "Zheng et al. 2022, Data-free backdoor removal (CLP)"
    is_baseline = True
    uses_guidance = False
    per_target = False
    parameter_constraints = {"u": Interval(float, 0, None)}

    def __init__(self, *, u: float = 3.0):
        self.u = u

    @torch.no_grad()
    def _remove(self, model, data, guidance, target_class, seed):
        for conv, norm in conv_bn_pairs(model):
            scale = norm.weight.abs() / torch.sqrt(norm.running_var + norm.eps)
            kernels = conv.weight.flatten(2) * scale.view(-1, 1, 1)
            bounds = torch.linalg.matrix_norm(kernels, ord=2)
            cut = bounds > bounds.mean() + self.u * bounds.std()
            norm.weight[cut] = 0
            norm.bias[cut] = 0
        return model
