"""Positive controls: each synthesis tool on the zoo's ``control`` model, where its paper's claim should hold.

The control is the clean model fine-tuned on one large, high-contrast patch trojan outside the default suite
(``assets/suites/control_trojans.yaml``: a mushroom, 35-45 % of the side, sends any image to ``tee``). Every
measure is ground truth and needs no judge (:mod:`trojanbench.tasks.rediscovery.diagnostics`); each is taken
against the same tool run the same way for the same class on the ``clean`` model, which differs only by the trojan:

* **transfer** (every image-making tool): the tool's images, pasted as patches on held-out clean scenes, send at
  least :data:`MIN_UPLIFT` more of them to the target on the control than on the clean model: the images carry
  the trojan's feature, not only the class's shape or a generic adversarial pattern;
* **detection** (Neural Cleanse, TABOR; Wang et al. 2019's claim): the target's smallest reversed mask is at most
  half as large on the control as on the clean model (the anomaly its detection rests on);
* **resemblance** (Neural Cleanse, TABOR): the reversed trigger matches the true trigger (template match) clearly
  better than noise does.

A tool that fails is a known defect, marked ``xfail(strict=True)`` with what was measured, so a fix flips the test
and must remove the mark. The bars were set before the tools were changed to pass them and are not tuned per tool.
"""

from __future__ import annotations

import functools

import pytest
import torch

from trojanbench.config import control_trojan_suite
from trojanbench.imaging import from_uint8, to_uint8
from trojanbench.methods import Target
from trojanbench.methods.synthesis._trigger_inversion import invert_triggers
from trojanbench.models import load_model
from trojanbench.tasks.rediscovery.diagnostics import diagnose
from trojanbench.tasks.rediscovery.synthesis import make_method, synthesize_for_trojan

pytestmark = pytest.mark.slow

MIN_UPLIFT = 0.2
"""Transfer: pasted attack success on the control minus that on the clean model."""
MIN_MATCH_OVER_NOISE = 0.1
"""Resemblance: trigger match above uniform noise's on the same trojan."""
N_IMAGES = 10


@functools.lru_cache(maxsize=None)
def target(name: str) -> Target:
    return Target.from_model(load_model(name))


def control_trojan():
    (trojan,) = control_trojan_suite().trojans
    return trojan


@functools.lru_cache(maxsize=None)
def diagnostics_of(tool: str, model: str):
    """The tool's default images for the control trojan's target on ``model`` (seed 0), as stored (uint8), diagnosed."""
    images = synthesize_for_trojan(make_method(tool), target(model), control_trojan(), n_images=N_IMAGES, seed=0)
    return diagnose(target(model).model, from_uint8(to_uint8(images)), control_trojan())


def known_defect(tool: str, measured: str):
    return pytest.param(tool, marks=pytest.mark.xfail(strict=True, reason=f"{tool} fails its positive control: "
                                                                          f"{measured}"))


def test_control_model_carries_its_trojan():
    card = load_model("control").card
    assert card["attack_success"]["mushroom"] >= 0.95
    assert card["clean_accuracy"] >= 0.95
    assert [t["name"] for t in card["trojans"]] == ["mushroom"]


@pytest.mark.parametrize("tool", [
    "adversarial_patch", "rfla_gen", "snafue", "target_fourier_fv", "inner_fourier_fv", "target_cppn_fv",
    "inner_cppn_fv", "rfla_perturb",
    known_defect("neural_cleanse", "reversed triggers pasted as patches: 0.04 against 0.01"),
    known_defect("tabor", "reversed triggers pasted as patches: 0.04 against 0.01"),
])
def test_tool_images_transfer_the_trojan(tool):
    on_control, on_clean = diagnostics_of(tool, "control"), diagnostics_of(tool, "clean")
    assert on_control.paste_success - on_clean.paste_success >= MIN_UPLIFT, (on_control, on_clean)


@pytest.mark.parametrize("tool", ["neural_cleanse", "tabor"])
def test_trigger_inversion_detects_the_trojan(tool):
    method, trojan = make_method(tool), control_trojan()
    smallest = {}
    for model in ("control", "clean"):
        mask, _ = invert_triggers(target(model), trojan.target, 4, torch.Generator().manual_seed(0), None,
                                  steps=method.steps, batch_size=method.batch_size, lr=method.lr,
                                  init_cost=method.init_cost, cost_multiplier=method.cost_multiplier,
                                  patience=method.patience, penalty=method._penalty(target(model), trojan.target))
        smallest[model] = float(mask.mean((1, 2, 3)).min())
    assert smallest["control"] <= 0.5 * smallest["clean"], smallest


@pytest.mark.parametrize("tool", [
    known_defect("neural_cleanse", "trigger match 0.18 against noise's 0.22: the smallest trigger on this model is a "
                                   "1 % scatter of adversarial dots, not the mushroom"),
    known_defect("tabor", "trigger match 0.19 against noise's 0.22: a compact blob of 1-2 % in other colours"),
])
def test_reversed_trigger_resembles_the_true_one(tool):
    noise = diagnostics_of("random_noise", "control").trigger_match
    assert diagnostics_of(tool, "control").trigger_match >= noise + MIN_MATCH_OVER_NOISE
