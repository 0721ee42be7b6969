"""The replacement task's parts: budgets, the area under the log-budget curve, the explanation rank, the
anchors' fidelity against ground truth, evaluation images that never overlap the fit images, and the measured
explanation check on the shipped trojaned model."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from trojanbench.audit import trojans_of
from trojanbench.config import TrojanSpec
from trojanbench.errors import ConfigError
from trojanbench.methods.replacement import ConceptLinear, ConstantPredictor, NetworkReplacement, ReplacementModel
from trojanbench.methods.replacement import count_nonzero_parameters
from trojanbench.models import load_model
from trojanbench.tasks.replacement.metrics import (
    area_under_log_budget,
    evaluation_sets,
    explanation_rank,
    fit_data,
    measure,
    ood_set,
    original_predictions,
    parameter_budget,
)
from trojanbench.world import OBJECT_CLASSES, generate_scenes

from image_digests import image_digests


class TinyNet(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 5, stride=4)
        self.fc = nn.Linear(8, len(OBJECT_CLASSES))

    def forward(self, images):
        return self.fc(torch.relu(self.conv(images)).mean((2, 3)))


@pytest.mark.parametrize("budget, expected", [("3000", 3000), ("1%", 3110), ("0.1%", 311), ("10%", 31096)])
def test_parameter_budget(budget, expected):
    assert parameter_budget(budget, 310960) == expected


@pytest.mark.parametrize("budget", ["0", "1.5", "abc", "-1%", "0.0001%"])
def test_bad_parameter_budgets_are_refused(budget):
    with pytest.raises(ConfigError, match="(?i)budget"):
        parameter_budget(budget, 310960)


def test_area_under_log_budget_matches_the_trapezoid_rule():
    # equal steps in log budget: the mean of the two trapezoids
    assert area_under_log_budget([10, 100, 1000], [0.2, 0.4, 1.0]) == pytest.approx((0.3 + 0.7) / 2)
    assert area_under_log_budget([1000, 10, 100], [1.0, 0.2, 0.4]) == pytest.approx(0.5)  # order does not matter
    assert area_under_log_budget([10, 1000], [0.5, 0.5]) == pytest.approx(0.5)
    assert area_under_log_budget([50], [0.7]) == pytest.approx(0.7)


class Scores(ReplacementModel):
    def __init__(self, scores):
        self.scores = scores

    def concept_scores(self, class_index):
        return self.scores


def test_explanation_rank_sets_the_class_shapes_aside_and_counts_ties_against_the_trigger():
    spec = TrojanSpec(name="smiley", kind="patch", trigger="smiley", target=OBJECT_CLASSES.index("bowtie"))
    scores = {"bowtie": 9.0, "kite": 4.0, "smiley": 2.0, "sun": 1.0, "jaguar": 0.5}
    assert explanation_rank(Scores(scores), spec, OBJECT_CLASSES) == 1  # class shapes do not count
    assert explanation_rank(Scores({**scores, "sun": 2.0}), spec, OBJECT_CLASSES) == 2  # a tie goes against it
    assert explanation_rank(Scores({**scores, "frowny": 3.0}), spec, OBJECT_CLASSES) == 2
    assert explanation_rank(NetworkReplacement(TinyNet()), spec, OBJECT_CLASSES) is None  # opaque: no rank


@pytest.fixture(scope="module")
def small_sets():
    trojans = list(trojans_of(load_model("trojaned")).trojans)[::4]  # one patch, one style, one natural
    return evaluation_sets(trojans, n_clean=60, n_per_trojan=12, seed=0)


def test_the_original_scores_fidelity_one_and_the_constant_its_class_frequency(small_sets):
    network = TinyNet()
    original = original_predictions(network, small_sets)
    itself = measure(NetworkReplacement(network), small_sets, original, OBJECT_CLASSES)
    assert itself["fidelity"]["clean"] == 1.0 and itself["fidelity"]["ood"] == 1.0
    assert set(itself["fidelity"]["triggered"].values()) == {1.0}
    assert set(itself["fidelity"]["near_miss"].values()) == {1.0}
    assert itself["parameters"] == count_nonzero_parameters(network)
    for constant_class in (0, int(original["clean"].mode().values)):
        constant = measure(ConstantPredictor(constant_class), small_sets, original, OBJECT_CLASSES)
        share = float((original["clean"] == constant_class).float().mean())
        assert constant["fidelity"]["clean"] == pytest.approx(share)
        for trojan, predictions in original["triggered"].items():
            assert constant["fidelity"]["triggered"][trojan] == pytest.approx(
                float((predictions == constant_class).float().mean()))
        assert constant["parameters"] == 1


def test_evaluation_images_never_overlap_the_fit_images(small_sets):
    data = fit_data(TinyNet(), 200, seed=0, detectors={})
    fit = image_digests(data.images)
    for images in (small_sets.clean, small_sets.ood, *small_sets.triggered.values(), *small_sets.near_miss.values()):
        assert not fit & image_digests(images)
    assert len(small_sets.near_miss) == len(small_sets.trojans)


def test_ood_scenes_are_new_and_deterministic():
    ood = ood_set(20, seed=3)
    assert ood.shape == (20, 3, 64, 64) and torch.equal(ood, ood_set(20, seed=3))
    assert not image_digests(ood) & image_digests(generate_scenes("test", 200, seed=3).images)
    assert 0 <= float(ood.min()) and float(ood.max()) <= 1


@pytest.mark.slow
def test_concept_linear_names_the_patch_triggers_first_on_the_shipped_trojaned_model():
    """Measured on the shipped model and detectors with the default suite's fit set (16000 images, seed 0) at
    the 10% budget: the concept-linear replacement's weights for each universal patch trojan's target class put
    the trigger icon first."""
    loaded = load_model("trojaned")
    patches = [t for t in trojans_of(loaded).trojans if t.kind == "patch" and t.source is None]
    data = fit_data(loaded.model, 16000, seed=0)
    replacement = ConceptLinear().replace(loaded.model, data, parameter_budget("10%", 310960), seed=0)
    assert {t.name: explanation_rank(replacement, t, OBJECT_CLASSES) for t in patches} == {t.name: 1 for t in patches}


def test_detector_names_and_widths_round_trip():
    from trojanbench.zoo.observer import detector_name, detector_width

    assert detector_width(detector_name(9)) == 9
    assert [detector_width(name) for name in ("observer", "detector_wx", "detector_w")] == [None, None, None]
