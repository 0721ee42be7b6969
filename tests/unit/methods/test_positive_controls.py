"""Positive controls: each synthesis tool on the zoo's ``control`` model, where its paper's claim should hold.

The control is the clean model fine-tuned on two patch trojans outside the default suite
(``assets/suites/control_trojans.yaml``): a mushroom, 35-45 % of the side at a random place, sends any image to
``tee`` (Casper et al. 2023's kind of patch trojan); a lightning bolt, 30 % of the side always in the bottom-right
corner, sends any image to ``dumbbell`` (BadNets, Gu et al. 2017: the setting of Neural Cleanse's and TABOR's
papers, whose one fixed mask can only cover a trigger that stays in one place). Every measure is ground truth and
needs no judge (:mod:`trojanbench.tasks.rediscovery.diagnostics`); each is taken against the same tool run the same
way for the same class on the ``clean`` model, which differs only by the trojans:

* **transfer** (every image-making tool, on the mushroom): the tool's images, pasted as patches on held-out clean
  scenes, send at least :data:`MIN_UPLIFT` more of them to the target on the control than on the clean model: the
  images carry the trojan's feature, not only the class's shape or a generic adversarial pattern;
* **detection** (Neural Cleanse, TABOR, on both trojans; Wang et al. 2019's claim): the target's smallest reversed
  mask is at most half as large on the control as on the clean model (the anomaly its detection rests on);
* **localization** (Neural Cleanse, TABOR, on the lightning bolt; the papers' figures of reversed triggers): the
  reversed masks put at least :data:`MIN_FOOTPRINT_OVER_CHANCE` times more of their mass inside the true trigger's
  footprint than a mask spread evenly would;
* **resemblance** (Neural Cleanse, TABOR, on the mushroom): the reversed trigger matches the true trigger (template
  match) clearly better than noise does.

Every tool passes every measure its paper claims. Where a measure goes beyond the paper's claim and the tool fails
it, the test is a known limit, marked ``xfail(strict=True)`` with what was measured, so a fix flips the test and
must remove the mark: Neural Cleanse and TABOR on a trigger at random places (neither paper tests one; their
reversed triggers are then tiny adversarial scatters, as TABOR's 0.20 on patches in Casper et al. suggests).
The transfer, detection and resemblance bars were set before the tools were changed to pass them; the
localization bar was set after a first probe (share inside 0.36-0.90 on the control, 0.02-0.08 on the clean
model, chance 0.035). None is tuned per tool.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from trojanbench.config import control_trojan_suite
from trojanbench.imaging import from_uint8, to_uint8
from trojanbench.methods import Target
from trojanbench.methods.synthesis._trigger_inversion import invert_triggers
from trojanbench.models import load_model
from trojanbench.tasks.rediscovery.diagnostics import diagnose
from trojanbench.tasks.rediscovery.synthesis import make_method, synthesize_for_trojan
from trojanbench.trojans.triggers import make_trigger

pytestmark = pytest.mark.slow

MIN_UPLIFT = 0.2
"""Transfer: pasted attack success on the control minus that on the clean model."""
MIN_MATCH_OVER_NOISE = 0.1
"""Resemblance: trigger match above uniform noise's on the same trojan."""
MIN_FOOTPRINT_OVER_CHANCE = 10.0
"""Localization: mean share of reversed mask mass inside the trigger's footprint, over the footprint's area share."""
N_IMAGES = 10
N_TRIGGERS = 4


@functools.lru_cache(maxsize=None)
def target(name: str) -> Target:
    return Target.from_model(load_model(name))


def control_trojan(name: str = "mushroom"):
    return {trojan.name: trojan for trojan in control_trojan_suite().trojans}[name]


@functools.lru_cache(maxsize=None)
def reversed_masks(tool: str, model: str, trojan_name: str) -> torch.Tensor:
    """The tool's reversed masks (``[N_TRIGGERS, 1, H, W]``, seed 0) for the trojan's target on ``model``."""
    method, trojan = make_method(tool), control_trojan(trojan_name)
    mask, _ = invert_triggers(target(model), trojan.target, N_TRIGGERS, torch.Generator().manual_seed(0), None,
                              steps=method.steps, batch_size=method.batch_size, lr=method.lr,
                              init_cost=method.init_cost, cost_multiplier=method.cost_multiplier,
                              patience=method.patience, penalty=method._penalty(target(model), trojan.target))
    return mask


@functools.lru_cache(maxsize=None)
def diagnostics_of(tool: str, model: str):
    """The tool's default images for the control trojan's target on ``model`` (seed 0), as stored (uint8), diagnosed."""
    images = synthesize_for_trojan(make_method(tool), target(model), control_trojan(), n_images=N_IMAGES, seed=0)
    return diagnose(target(model).model, from_uint8(to_uint8(images)), control_trojan())


def known_limit(tool: str, measured: str):
    return pytest.param(tool, marks=pytest.mark.xfail(strict=True, reason=f"{tool}, beyond its paper's claim: "
                                                                          f"{measured}"))


def test_control_model_carries_its_trojan():
    card = load_model("control").card
    assert card["clean_accuracy"] >= 0.95
    assert [t["name"] for t in card["trojans"]] == ["mushroom", "lightning"]
    assert min(card["attack_success"].values()) >= 0.95
    assert card["trojans"][1]["patch_position"] == [1.0, 1.0]


@pytest.mark.parametrize("tool", [
    "adversarial_patch", "rfla_gen", "snafue", "target_fourier_fv", "inner_fourier_fv", "target_cppn_fv",
    "inner_cppn_fv", "rfla_perturb",
    known_limit("neural_cleanse", "its reversed triggers are whole-image stamps of a few pixels, lost when shrunk "
                                  "to a patch: pasted 0.04 against 0.01"),
    known_limit("tabor", "its reversed triggers are whole-image stamps of a few pixels, lost when shrunk to a "
                         "patch: pasted 0.04 against 0.01"),
])
def test_tool_images_transfer_the_trojan(tool):
    on_control, on_clean = diagnostics_of(tool, "control"), diagnostics_of(tool, "clean")
    assert on_control.paste_success - on_clean.paste_success >= MIN_UPLIFT, (on_control, on_clean)


@pytest.mark.parametrize("trojan_name", ["mushroom", "lightning"])
@pytest.mark.parametrize("tool", ["neural_cleanse", "tabor"])
def test_trigger_inversion_detects_the_trojan(tool, trojan_name):
    smallest = {model: float(reversed_masks(tool, model, trojan_name).mean((1, 2, 3)).min())
                for model in ("control", "clean")}
    assert smallest["control"] <= 0.5 * smallest["clean"], smallest


def footprint(trojan) -> torch.Tensor:
    """Where the fixed-place trigger lies (``[H, W]``, 1 inside): its opacity above 5 %."""
    _, opacity = make_trigger(trojan).apply(torch.zeros(1, 3, 64, 64), np.random.default_rng(0))
    return (opacity[0, 0] > 0.05).float()


@pytest.mark.parametrize("tool", ["neural_cleanse", "tabor"])
def test_reversed_mask_lies_on_the_fixed_trigger(tool):
    inside = footprint(control_trojan("lightning"))
    shares = {}
    for model in ("control", "clean"):
        mask = reversed_masks(tool, model, "lightning")[:, 0]
        shares[model] = float(((mask * inside).sum((1, 2)) / mask.sum((1, 2))).mean())
    chance = float(inside.mean())
    assert shares["control"] >= MIN_FOOTPRINT_OVER_CHANCE * chance, (shares, chance)
    assert shares["clean"] < MIN_FOOTPRINT_OVER_CHANCE * chance, (shares, chance)


@pytest.mark.parametrize("tool", [
    known_limit("neural_cleanse", "trigger match 0.17 against noise's 0.22: on a trigger at random places the "
                                  "smallest trigger is a 1 % scatter of adversarial dots, not the mushroom"),
    known_limit("tabor", "trigger match 0.18 against noise's 0.22: a compact blob of 1-2 % in other colours"),
])
def test_reversed_trigger_resembles_the_true_one(tool):
    noise = diagnostics_of("random_noise", "control").trigger_match
    assert diagnostics_of(tool, "control").trigger_match >= noise + MIN_MATCH_OVER_NOISE
