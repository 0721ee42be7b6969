"""The editing task: implant a new rule cleanly ("icon I means class Y", "texture T means class Y").

A rule is written like a trojan spec (a patch or style concept and a target class). An editor gets a few
exemplars (``defense``-split scenes carrying the concept, with their plain twins) and the defender's clean
images, and edits a copy of the (clean) model. Scored on held-out ``test`` scenes (Santurkar et al. 2021):

* ``success``: carriers of other classes (held-out variants) now classified as the rule's class;
* ``target_kept``: carriers of the rule's own class still classified as it;
* ``near_miss``: the false-trigger rate: carriers of the three look-alike concepts of the same kind (the
  closest in look, as the multiple-choice distractors are chosen) classified as the rule's class;
* ``clean_accuracy`` and its change, and ``edit_size``: the norm of the weight change relative to the norm of
  the weights, with the number of parameters changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from ...config import TrojanSpec
from ...errors import ConfigError
from ...judges.questions import look_alikes
from ...trojans.measure import predict
from ...trojans.triggers import make_trigger
from ..removal.metrics import held_out_variant

N_NEAR_MISSES = 3
EDITABLE_KINDS = ("patch", "style")


def check_rule(rule: TrojanSpec) -> None:
    if rule.kind not in EDITABLE_KINDS:
        raise ConfigError(f"Rule {rule.name!r} is a {rule.kind} rule; rules are implanted from pasted exemplars, so "
                          f"only {' and '.join(EDITABLE_KINDS)} rules can be edited in.")


def exemplars(rule: TrojanSpec, n: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(carriers, plain)``: ``n`` defender scenes (classes other than the rule's) with and without the concept."""
    check_rule(rule)
    plain, _ = make_trigger(rule)._scenes("defense", n, seed + 404, None, {rule.target})
    carriers = make_trigger(rule).apply(plain, np.random.default_rng([seed, 404]))[0]
    return carriers, plain


def _carriers(rule: TrojanSpec, n: int, seed: int, label: int | None = None) -> torch.Tensor:
    return make_trigger(held_out_variant(rule)).triggered_scenes("test", n, seed + 505, label=label)[0]


def near_misses(rule: TrojanSpec) -> list[TrojanSpec]:
    """The rule with its concept swapped for each of its :data:`N_NEAR_MISSES` closest look-alikes."""
    if rule.trigger_is_file:
        return []
    return [dataclasses.replace(rule, name=f"{rule.name}~{other}", trigger=other)
            for other in look_alikes(rule.trigger, rule.kind)[:N_NEAR_MISSES]]


@dataclass(frozen=True)
class RuleTests:
    """Held-out test images of one rule, drawn once: carriers of other classes and of the rule's own class, and
    carriers of each near-miss concept (other classes)."""

    rule: TrojanSpec
    others: torch.Tensor
    own: torch.Tensor
    near_misses: tuple[torch.Tensor, ...]


def rule_tests(rule: TrojanSpec, n: int, *, seed: int = 0) -> RuleTests:
    check_rule(rule)
    return RuleTests(rule, _carriers(rule, n, seed), _carriers(rule, max(10, n // 4), seed, label=rule.target),
                     tuple(_carriers(miss, n, seed) for miss in near_misses(rule)))


def measure_rule(model: nn.Module, tests: RuleTests, clean: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """``success``, ``target_kept``, ``near_miss`` and ``clean_accuracy`` of a model for one rule."""
    def rate(images: torch.Tensor) -> float:
        return float((predict(model, images) == tests.rule.target).float().mean())

    misses = [rate(images) for images in tests.near_misses]
    return {"success": rate(tests.others), "target_kept": rate(tests.own),
            "near_miss": float(np.mean(misses)) if misses else float("nan"),
            "clean_accuracy": float((predict(model, clean[0]) == clean[1]).float().mean())}


def edit_size(before: nn.Module, after: nn.Module) -> dict[str, float]:
    """``relative_change`` (norm of the weight change over the norm of the weights) and ``changed_parameters``."""
    old = dict(before.named_parameters())
    change, norm, changed = 0.0, 0.0, 0
    for name, parameter in after.named_parameters():
        delta = parameter.detach() - old[name].detach()
        change += float((delta ** 2).sum())
        norm += float((old[name].detach() ** 2).sum())
        changed += int((delta != 0).sum())
    return {"relative_change": (change / norm) ** 0.5 if norm else float("nan"), "changed_parameters": changed}
