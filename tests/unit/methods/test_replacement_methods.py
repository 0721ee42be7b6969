"""The replacement family on hand-built models: parameter counting, budgets respected, masks held, the tree's
and the linear map's concept scores, and bad input refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from trojanbench.errors import ConfigError, MethodError
from trojanbench.methods.replacement import (
    BudgetError,
    ConceptLinear,
    ConceptTree,
    ConstantPredictor,
    DistilledStudent,
    FitData,
    MagnitudePruning,
    NetworkReplacement,
    RandomPruning,
    ReplacementMethod,
    count_nonzero_parameters,
)
from trojanbench.methods.replacement.base import compact_width
from trojanbench.methods.replacement.concepts import ConceptLinearModel
from trojanbench.models.architectures import CompactResNet
from trojanbench.registry import make_method_of, method_names

CONCEPTS = ("red", "green", "blue")


class ChannelMeans(nn.Module):
    """A hand-built 'concept detector': each output is a colour channel's mean brightness, scaled (3 weights)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.full((3,), 12.0))
        self.width = 0

    def forward(self, images):
        return (images.mean((2, 3)) - 0.5) * self.scale


class BrightestChannel(nn.Module):
    """A teacher whose class is the brightest colour channel (plus a tiny conv, so it has weights to prune)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, images):
        return images.mean((2, 3)) * 20 + 0 * self.fc(self.conv(images).mean((2, 3)))


def _colour_images(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=generator)
    return (base + 0.05 * torch.rand(n, 3, 16, 16, generator=generator)).clamp(0, 1)


def _data(n: int = 300) -> FitData:
    images = _colour_images(n)
    return FitData(images, BrightestChannel()(images).detach(), CONCEPTS, {0: ChannelMeans()})


def test_parameter_counting_on_hand_built_models():
    linear = nn.Linear(4, 3)  # 12 weights + 3 biases
    assert count_nonzero_parameters(linear) == 15
    with torch.no_grad():
        linear.weight[0].zero_()
        linear.bias[1] = 0
    assert count_nonzero_parameters(linear) == 15 - 4 - 1
    block = nn.Sequential(nn.Conv2d(3, 2, 3, bias=False), nn.BatchNorm2d(2))
    assert count_nonzero_parameters(block) == 54 + 2  # BN biases start at 0 (not counted); running stats never are
    with torch.no_grad():
        block[1].bias.fill_(0.1)
    assert count_nonzero_parameters(block) == 54 + 2 + 2
    assert ConstantPredictor(2).parameter_count() == 1
    detector = ChannelMeans()
    weight = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    model = ConceptLinearModel(detector, weight, torch.tensor([0.0, 0.5, 0.0]), CONCEPTS)
    assert model.parameter_count() == 3 + 2 + 1  # detector in full, non-zero weights, non-zero biases
    assert model.concept_scores(1) == {"red": 0.0, "green": 2.0, "blue": 0.0}


def test_compact_width_is_the_widest_that_fits():
    def size(width: int) -> int:
        return count_nonzero_parameters(CompactResNet(16, width))

    for budget in (size(1) - 1, size(1), size(5) + 10, size(9) - 1):
        width = compact_width(16, budget)
        assert (width == 0 or size(width) <= budget) and size(width + 1) > budget


@pytest.mark.parametrize("name", method_names("replacement"))
def test_every_replacement_respects_its_budget_or_says_it_cannot(name):
    data, teacher = _data(), BrightestChannel()
    method = make_method_of(name, {}, ReplacementMethod, "a replacement method", quick=True)
    for budget in (1, 40, 5000):
        try:
            replacement = method.replace(teacher, data, budget, seed=0)
        except BudgetError:
            continue
        assert replacement.parameter_count() <= budget
        assert replacement.predict(data.images[:5]).shape == (5,)


def test_pruning_holds_its_mask_through_fine_tuning_and_keeps_exactly_the_budget():
    data, teacher = _data(), BrightestChannel()
    fixed = 4 + 3  # the conv's and the linear layer's biases stay
    for method in (MagnitudePruning(steps=20), RandomPruning(steps=20)):
        replacement = method.replace(teacher, data, fixed + 30, seed=1)
        assert replacement.parameter_count() == fixed + 30
        assert replacement.details()["kept_weights"] == 30
    with pytest.raises(BudgetError, match="exceed the budget"):
        MagnitudePruning().replace(teacher, data, fixed - 1, seed=0)
    assert count_nonzero_parameters(teacher) == 4 * 27 + 4 + 12 + 3  # the original is never changed


def test_concept_linear_recovers_a_rule_written_in_concepts():
    """The teacher's class is the brightest channel: the linear map must weigh each class's own colour most."""
    replacement = ConceptLinear(steps=300).replace(BrightestChannel(), _data(), 3 + 9 + 3, seed=0)
    images = _colour_images(200, seed=5)
    assert float((replacement.predict(images) == BrightestChannel()(images).argmax(1)).float().mean()) > 0.9
    for index, colour in enumerate(CONCEPTS):
        scores = replacement.concept_scores(index)
        assert max(scores, key=scores.get) == colour


class BlueMeansTarget(nn.Module):
    """A trojan-like rule: class 2 when the blue channel is bright, otherwise red (0) or green (1), brighter wins."""

    def forward(self, images):
        means = images.mean((2, 3))
        logits = torch.stack([means[:, 0], means[:, 1], torch.zeros(len(means))], 1) * 20
        logits[:, 2] = torch.where(means[:, 2] > 0.6, 100.0, -100.0)
        return logits


def test_concept_tree_counts_its_nodes_and_credits_the_deciding_concept():
    images = _colour_images(400)
    data = FitData(images, BlueMeansTarget()(images), CONCEPTS, {0: ChannelMeans()})
    replacement = ConceptTree(max_leaves=8).replace(BlueMeansTarget(), data, 3 + 15, seed=0)
    details = replacement.details()
    assert details["nodes"] == 2 * details["leaves"] - 1
    assert replacement.parameter_count() == 3 + details["nodes"]
    scores = replacement.concept_scores(2)
    assert max(scores, key=scores.get) == "blue"
    test = _colour_images(200, seed=9)
    assert float((replacement.predict(test) == BlueMeansTarget()(test).argmax(1)).float().mean()) > 0.9


def test_concept_methods_need_a_detector_that_fits():
    with pytest.raises(BudgetError, match="no concept detector fits"):
        ConceptLinear().replace(BrightestChannel(), _data(), 2, seed=0)
    with pytest.raises(BudgetError, match="no concept detector fits"):
        ConceptTree().replace(BrightestChannel(), FitData(_data().images, _data().teacher_logits), 500, seed=0)


def test_student_width_follows_the_budget():
    data = FitData(torch.rand(40, 3, 32, 32), torch.randn(40, 3))
    replacement = DistilledStudent(steps=2).replace(BrightestChannel(), data, 5000, seed=0)
    assert replacement.details()["width"] == compact_width(3, 5000)
    assert isinstance(replacement, NetworkReplacement)


def test_bad_input_is_refused_before_any_work():
    with pytest.raises(ConfigError, match="budget"):
        MagnitudePruning().replace(BrightestChannel(), _data(), 0)
    with pytest.raises(ConfigError, match="head_share"):
        make_method_of("concept_linear", {"head_share": 1.5}, ReplacementMethod, "a replacement method")
    with pytest.raises(ConfigError, match="not a replacement method"):
        make_method_of("tabor", {}, ReplacementMethod, "a replacement method")
    with pytest.raises(ConfigError, match="teacher logits"):
        FitData(torch.rand(3, 3, 8, 8), torch.rand(2, 3))


class Cheater(ReplacementMethod):
    """Returns the original network whatever the budget: the contract must catch it."""

    name = "cheater"

    def _replace(self, model, data, budget, seed):
        return NetworkReplacement(model)


def test_a_replacement_over_its_budget_is_an_error_not_a_score():
    with pytest.raises(MethodError, match="over its budget of 10"):
        Cheater().replace(BrightestChannel(), _data(), 10)
    assert Cheater().replace(BrightestChannel(), _data(), 10_000).parameter_count() == 4 * 27 + 4 + 12 + 3
