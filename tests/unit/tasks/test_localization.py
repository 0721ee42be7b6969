"""Localization metrics (axioms on hand-made maps), the triggered-image set, and end-to-end scoring."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from trojanbench.config import TrojanSpec
from trojanbench.errors import ConfigError
from trojanbench.methods.attribution import AttributionMethod
from trojanbench.registry import get_method
from trojanbench.tasks.localization.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    LocalizationSet,
    _batches,
    auroc,
    average_ranks,
    localization_metrics,
    localization_set,
    pointing_game,
    rank_correlation,
    score_attribution,
)

SMILEY = TrojanSpec("smiley", "patch", "smiley", target=6)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def square_masks(n: int = 3, size: int = 16) -> torch.Tensor:
    masks = torch.zeros(n, size, size)
    for i in range(n):
        masks[i, 2 + i:7 + i, 3 + 2 * i:9 + 2 * i] = 1
    return masks


# --- metric axioms ------------------------------------------------------------------------------------------


def test_the_mask_itself_scores_perfectly():
    masks = square_masks()
    scores = localization_metrics(masks, masks)
    for name in METRICS:
        assert torch.allclose(scores[name], torch.ones(3, dtype=torch.float64)), name


def test_the_inverted_mask_scores_worst():
    masks = square_masks()
    scores = localization_metrics(1 - masks, masks)
    assert torch.equal(scores["auroc"], torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(scores["rank_correlation"], -torch.ones(3, dtype=torch.float64))
    assert torch.equal(scores["pointing_game"], torch.zeros(3, dtype=torch.float64))


def test_a_constant_map_scores_chance_without_nan():
    masks = square_masks()
    scores = localization_metrics(torch.full_like(masks, 0.7), masks)
    assert torch.equal(scores["auroc"], torch.full((3,), 0.5, dtype=torch.float64))
    assert torch.equal(scores["rank_correlation"], torch.zeros(3, dtype=torch.float64))
    # ties at the maximum: the fraction of tied pixels on the patch, i.e. the patch's share of the image
    assert torch.allclose(scores["pointing_game"], masks.mean((1, 2)).double())


def test_metrics_depend_only_on_the_ranks_of_the_magnitude():
    masks = square_masks()
    maps = torch.rand(masks.shape, generator=torch.Generator().manual_seed(0)) + masks
    base = localization_metrics(maps, masks)
    for transformed in (maps ** 3 * 5 + 2, -maps, torch.exp(maps)):
        for name, values in localization_metrics(transformed, masks).items():
            assert torch.allclose(values, base[name]), name


def test_auroc_matches_pairwise_counting_with_half_ties():
    generator = torch.Generator().manual_seed(1)
    maps = torch.randint(0, 4, (5, 10, 10), generator=generator).float()  # many ties
    masks = (torch.rand(5, 10, 10, generator=generator) > 0.7).float()
    values = auroc(maps, masks)
    for i in range(5):
        patch, rest = maps[i][masks[i] > 0.5], maps[i][masks[i] <= 0.5]
        pairs = (patch[:, None] > rest[None]).double() + 0.5 * (patch[:, None] == rest[None]).double()
        assert math.isclose(float(values[i]), float(pairs.mean()), abs_tol=1e-12)


def test_rank_correlation_is_pearson_of_average_ranks():
    generator = torch.Generator().manual_seed(2)
    maps = torch.randint(0, 5, (4, 8, 8), generator=generator).float()
    masks = (torch.rand(4, 8, 8, generator=generator) > 0.6).float()
    values = rank_correlation(maps, masks)
    for i in range(4):
        ranks = average_ranks(maps[i].flatten().double()).numpy()
        expected = np.corrcoef(ranks, masks[i].flatten().numpy())[0, 1]
        assert math.isclose(float(values[i]), expected, abs_tol=1e-12)


def test_average_ranks_share_ties():
    ranks = average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0]]))
    assert torch.equal(ranks, torch.tensor([[4.0, 1.0, 4.0, 2.0, 4.0]], dtype=torch.float64))


def test_pointing_game_hits_and_misses():
    masks = square_masks(1)
    hit = torch.zeros(1, 16, 16)
    hit[0, 4, 5] = 1.0
    miss = torch.zeros(1, 16, 16)
    miss[0, 15, 15] = 1.0
    assert float(pointing_game(hit, masks)) == 1.0 and float(pointing_game(miss, masks)) == 0.0
    half = hit.clone()
    half[0, 15, 15] = 1.0  # a tie between one pixel on the patch and one off it
    assert float(pointing_game(half, masks)) == 0.5


def test_soft_masks_are_thresholded_and_degenerate_masks_give_nan():
    masks = square_masks(2)
    soft = masks * 0.8 + 0.1  # footprint-like opacities: > 0.5 on the patch only
    assert torch.equal(localization_metrics(masks, soft)["auroc"], torch.ones(2, dtype=torch.float64))
    empty = torch.zeros(2, 16, 16)
    for name, values in localization_metrics(torch.rand(2, 16, 16), empty).items():
        assert torch.isnan(values).all(), name


def test_single_maps_and_bad_shapes():
    masks = square_masks(1)
    assert auroc(masks[0], masks[0]).shape == (1,)
    with pytest.raises(ConfigError, match="same shape"):
        auroc(masks, masks[:, :8])
    with pytest.raises(ConfigError, match=r"\[n, H, W\]"):
        auroc(masks[None], masks[None])
    with pytest.raises(ConfigError, match="finite"):
        auroc(torch.full_like(masks, float("nan")), masks)


def test_every_metric_declares_its_direction():
    assert set(HIGHER_IS_BETTER) == set(METRICS) and all(HIGHER_IS_BETTER.values())


# --- the triggered images -----------------------------------------------------------------------------------


def test_localization_set_is_deterministic_and_has_the_footprint():
    data = localization_set(SMILEY, n=4, seed=3)
    again = localization_set(SMILEY, n=4, seed=3)
    other = localization_set(SMILEY, n=4, seed=4)
    assert data.images.shape == (4, 3, 64, 64) and data.masks.shape == (4, 64, 64)
    assert torch.equal(data.images, again.images) and torch.equal(data.masks, again.masks)
    assert not torch.equal(data.images, other.images)
    assert torch.equal(data.masks, (data.footprints > 0.5).float())
    assert 0 <= float(data.images.min()) and float(data.images.max()) <= 1
    area = data.masks.mean((1, 2))
    assert ((area > 0.01) & (area < 0.15)).all()  # patch sides are 20-30% of the image side
    assert (data.labels != SMILEY.target).all() and data.target_class == SMILEY.target


def test_class_conditional_trojans_use_source_scenes():
    spec = TrojanSpec("green_star", "patch", "green_star", target=2, source=1)
    assert (localization_set(spec, n=3).labels == 1).all()


@pytest.mark.parametrize("spec", [TrojanSpec("jaguar", "style", "jaguar", target=5),
                                  TrojanSpec("fork", "natural", "fork", target=11)], ids=["style", "natural"])
def test_only_patch_trojans_can_be_localized(spec):
    with pytest.raises(ConfigError, match="needs a patch trojan"):
        localization_set(spec, n=2)


def test_bad_counts_are_rejected():
    with pytest.raises(ConfigError, match=r"n must be an int in \[1, inf\)"):
        localization_set(SMILEY, n=0)
    with pytest.raises(ConfigError, match=r"seed must be an int in \[0, inf\)"):
        localization_set(SMILEY, n=2, seed=-1)


def test_batches_never_leave_an_image_alone():
    sizes = {(n, b): [s.stop - s.start for s in _batches(n, b)] for n in (1, 2, 3, 9, 49) for b in (1, 2, 4, 16)}
    for (n, _), parts in sizes.items():
        assert sum(parts) == n and (n == 1 or min(parts) >= 2)
    assert sizes[(9, 4)] == [3, 3, 3]


# --- scoring end to end -------------------------------------------------------------------------------------


def red_detector() -> nn.Module:
    """Class 0's logit: the mean over pixels of ReLU(red - green - blue - 0.2)."""
    conv, head = nn.Conv2d(3, 1, 1), nn.Linear(1, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1))
        conv.bias.fill_(-0.2)
        head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        head.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


class RedInput(AttributionMethod):
    """A hand-written attribution that is right for :func:`red_detector`: how red each pixel is."""

    name = "red_input_for_test"
    paper = "test"

    def _attribute(self, model, images, target_class, generator):
        return (images[:, 0] - images[:, 1] - images[:, 2] - 0.2).clamp_min(0)


def red_patch_set(n: int = 4, size: int = 32, side: int = 8) -> LocalizationSet:
    generator = torch.Generator().manual_seed(0)
    grey = 0.3 + 0.4 * torch.rand(n, 1, size, size, generator=generator)
    images = (grey + 0.05 * torch.rand(n, 3, size, size, generator=generator)).clamp(0, 1)
    masks = torch.zeros(n, size, size)
    for i in range(n):
        top, left = torch.randint(0, size - side + 1, (2,), generator=generator).tolist()
        images[i, :, top:top + side, left:left + side] = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1)
        masks[i, top:top + side, left:left + side] = 1
    return LocalizationSet(images=images, masks=masks, footprints=masks, labels=torch.ones(n, dtype=torch.long),
                           target_class=0, trojan=SMILEY)


def test_a_correct_attribution_scores_top_and_random_scores_chance():
    data = red_patch_set()
    good = score_attribution(RedInput(), red_detector(), SMILEY, data=data, batch_size=2)
    assert good["mean_auroc"] > 0.99 and good["mean_pointing_game"] == 1 and good["mean_rank_correlation"] > 0.9
    chance = score_attribution("random_map", red_detector(), SMILEY, data=data)
    assert abs(chance["mean_auroc"] - 0.5) < 0.1 and abs(chance["mean_rank_correlation"]) < 0.1


@pytest.mark.skipif(importlib.util.find_spec("captum") is None, reason="needs the optional extra trojanbench[captum]")
def test_saliency_on_the_hand_built_model_scores_top():
    result = score_attribution("saliency", red_detector(), SMILEY, data=red_patch_set())
    assert result["mean_auroc"] > 0.9 and result["mean_pointing_game"] == 1 and result["mean_rank_correlation"] > 0.5


def test_score_attribution_on_triggered_images_reports_arrays_means_and_time():
    from trojanbench.models import CompactResNet

    torch.manual_seed(0)
    model = CompactResNet(num_classes=16, width=4).eval()
    result = score_attribution(get_method("edge_detector")(), model, SMILEY, n=5, seed=1, batch_size=2,
                               return_maps=True)
    assert result["method"] == "edge_detector" and result["trojan"] == "smiley" and result["n_images"] == 5
    for name in METRICS:
        assert isinstance(result[name], np.ndarray) and result[name].shape == (5,)
        assert math.isclose(result[f"mean_{name}"], float(np.nanmean(result[name])))
    assert result["seconds"] >= 0 and math.isclose(result["seconds_per_image"], result["seconds"] / 5)
    assert result["maps"].shape == (5, 64, 64)
    again = score_attribution("edge_detector", model, SMILEY, n=5, seed=1, batch_size=2)
    assert np.array_equal(again["auroc"], result["auroc"])


def test_score_attribution_rejects_other_families_and_mismatched_data():
    with pytest.raises(ConfigError, match="not an attribution method"):
        score_attribution("random_noise", red_detector(), SMILEY, n=2)
    other = TrojanSpec("clownfish", "patch", "clownfish", target=15)
    with pytest.raises(ConfigError, match="made for trojan"):
        score_attribution("uniform_map", red_detector(), other, data=red_patch_set())
