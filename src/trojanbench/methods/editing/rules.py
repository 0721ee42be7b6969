"""Rule editors: implant a new rule ("icon I means class Y", "texture T means class Y") from a few exemplars.

* ``rank_one_rewrite``: the constrained rank-one rewrite of Santurkar et al. (2021), "Editing a classifier by
  rewriting its prediction rules" (after Bau et al. 2020, "Rewriting a deep generative model"), applied to the
  model's last linear layer ``W, b`` (penultimate features ``k``): the key ``k*`` is the concept's mean feature
  change (exemplars minus their plain twins), the update is ``W + lambda d^T`` with ``d = C^-1 k*`` (``C`` the
  second moment of the defender's clean features, so other keys move as little as possible) and the bias moved
  so that the plain twins' mean key is unchanged; only the per-class ``lambda`` is optimized, sending the
  exemplars to the new class while their plain twins and the defender's clean images keep the model's own
  predictions. The units ``d`` may use
  are all of them, the ones the concept excites most (``guided``: what a unit-level interpretability tool would
  point at) or as many chosen at random.
* ``finetune_rule``: plain fine-tuning on the same exemplars relabelled to the new class, mixed with the
  defender's clean images at their labels (the generic baseline).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import ConfigError
from ...params import Interval, Options
from ...registry import register_method
from ..base import Method
from .base import DefenderData, Guidance, finetune, penultimate_features, penultimate_layer


class RuleEditor(Method):
    """Implants a rule into a copy of a model. Subclasses implement :meth:`_implant` (may edit the copy)."""

    family = "editing"

    def implant(self, model: nn.Module, data: DefenderData, carriers: torch.Tensor, plain: torch.Tensor,
                target_class: int, seed: int = 0) -> nn.Module:
        """An edited copy of ``model`` that sends images carrying the rule's concept to ``target_class``.

        ``carriers`` are the few exemplars (defender scenes with the concept); ``plain`` the same scenes
        without it. The input model is not changed; everything is seeded."""
        self.validate()
        if len(carriers) < 1 or carriers.shape != plain.shape:
            raise ConfigError(f"implant needs >= 1 exemplar and a plain twin per exemplar. Got {tuple(carriers.shape)} "
                              f"and {tuple(plain.shape)}.")
        edited = copy.deepcopy(model).eval().requires_grad_(True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            edited = self._implant(edited, data, carriers, plain, target_class, seed)
        return edited.eval().requires_grad_(False)

    def _implant(self, model, data, carriers, plain, target_class, seed) -> nn.Module:
        raise NotImplementedError


@register_method
class RankOneRewrite(RuleEditor):
    """The constrained rank-one rewrite (Santurkar et al. 2021) of the last linear layer; see the module
    docstring. ``units``: ``"all"``, ``"guided"`` or ``"random"``; ``n_units`` for the latter two."""

    name = "rank_one_rewrite"
    paper = "Santurkar et al. 2021, Editing a classifier by rewriting its prediction rules"
    parameter_constraints = {"units": Options({"all", "guided", "random"}), "n_units": Interval(int, 1, None),
                             "steps": Interval(int, 1, None), "lr": Interval(float, 0, None, closed="neither"),
                             "ridge": Interval(float, 0, None, closed="neither")}

    def __init__(self, *, units: str = "all", n_units: int = 16, steps: int = 200, lr: float = 0.05,
                 ridge: float = 0.01):
        self.units = units
        self.n_units = n_units
        self.steps = steps
        self.lr = lr
        self.ridge = ridge

    def _direction(self, model, data, concept: torch.Tensor, seed) -> torch.Tensor:
        """``d = C^-1 k*`` restricted to the chosen units (``k*``: the concept's mean feature change)."""
        clean = penultimate_features(model, data.images)
        moment = clean.T @ clean / len(clean)
        moment += self.ridge * moment.diagonal().mean() * torch.eye(len(moment))
        direction = torch.linalg.solve(moment, concept)
        direction = direction / direction.norm()
        if self.units == "all":
            return direction
        if self.units == "guided":
            chosen = concept.argsort(descending=True, stable=True)[:self.n_units]
        else:
            chosen = torch.randperm(len(direction), generator=torch.Generator().manual_seed(seed))[:self.n_units]
        mask = torch.zeros_like(direction)
        mask[chosen] = 1
        return direction * mask

    def _implant(self, model, data, carriers, plain, target_class, seed):
        layer = penultimate_layer(model)
        with_concept, without = penultimate_features(model, carriers), penultimate_features(model, plain)
        direction = self._direction(model, data, (with_concept - without).mean(0), seed)
        centre = without.mean(0)
        clean = penultimate_features(model, data.images)
        with torch.no_grad():  # everything but the exemplars keeps the model's own predictions
            kept = (torch.cat([without, clean]) @ layer.weight.T + layer.bias).argmax(1)
        keys = torch.cat([with_concept, without, clean])
        labels = torch.cat([torch.full((len(carriers),), target_class), kept])
        base = (keys @ layer.weight.T + layer.bias).detach()
        projection = (keys - centre) @ direction
        strength = torch.zeros(layer.out_features, requires_grad=True)
        optimizer = torch.optim.Adam([strength], lr=self.lr)
        for _ in range(self.steps):
            losses = F.cross_entropy(base + projection[:, None] * strength[None], labels, reduction="none")
            loss = losses[:len(carriers)].mean() + losses[len(carriers):].mean()  # the rule and the rest, equally
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():  # W + lambda d^T, b - lambda d^T centre: one rank-one change of [W | b]
            layer.weight += torch.outer(strength, direction)
            layer.bias -= strength * float(centre @ direction)
        return model


class _RelabelledExemplars(Guidance):
    """Replaces images with exemplars relabelled to the rule's class."""

    name = "exemplars"

    def __init__(self, carriers: torch.Tensor, target_class: int):
        self.carriers, self.target_class = carriers, target_class

    def guide(self, images, labels, generator):
        rows = torch.randint(0, len(self.carriers), (len(images),), generator=generator)
        return self.carriers[rows].clone(), torch.full_like(labels, self.target_class)


@register_method
class FinetuneRule(RuleEditor):
    """Fine-tune the whole model on the defender's clean images with ``exemplar_fraction`` of each batch replaced
    by exemplars relabelled to the new class (the generic baseline)."""

    name = "finetune_rule"
    paper = "baseline (fine-tuning on the exemplars)"
    is_baseline = True
    parameter_constraints = {"steps": Interval(int, 0, None), "lr": Interval(float, 0, None),
                             "exemplar_fraction": Interval(float, 0, 1)}

    def __init__(self, *, steps: int = 60, lr: float = 0.003, exemplar_fraction: float = 0.25):
        self.steps = steps
        self.lr = lr
        self.exemplar_fraction = exemplar_fraction

    def _implant(self, model, data, carriers, plain, target_class, seed):
        return finetune(model, data, steps=self.steps, lr=self.lr, seed=seed,
                        guidance=_RelabelledExemplars(carriers, target_class), guided_fraction=self.exemplar_fraction)
