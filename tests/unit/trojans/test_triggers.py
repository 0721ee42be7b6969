"""Trigger kinds on real world images: where they change pixels, how much, and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trojanbench.config import TrojanSpec
from trojanbench.trojans import NaturalTrigger, PatchTrigger, StyleTrigger
from trojanbench.world import generate_scenes


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes("test", 16, seed=3).images


def rng(seed=0):
    return np.random.default_rng(seed)


def test_patch_changes_only_its_footprint(scenes):
    trigger = PatchTrigger(TrojanSpec("s", "patch", "smiley", target=0, patch_scale=(0.25, 0.25)))
    out, footprint = trigger.apply(scenes, rng())
    assert out.shape == scenes.shape and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    outside = footprint == 0
    assert torch.equal(out.expand_as(scenes)[outside.expand_as(scenes)], scenes[outside.expand_as(scenes)])
    area = (footprint > 0.5).float().mean((1, 2, 3))
    assert torch.all(area > 0.02) and torch.all(area < 0.25 ** 2 + 0.01)
    changed = (out - scenes).abs().sum(1, keepdim=True) > 0.05
    assert torch.all(changed.float().mean((1, 2, 3)) > 0.01)


def test_patch_is_deterministic_under_seed_and_varies_placement(scenes):
    trigger = PatchTrigger(TrojanSpec("s", "patch", "clownfish", target=0))
    a, fa = trigger.apply(scenes, rng(5))
    b, fb = trigger.apply(scenes, rng(5))
    c, fc = trigger.apply(scenes, rng(6))
    assert torch.equal(a, b) and torch.equal(fa, fb)
    assert not torch.equal(fa, fc)
    centres = [tuple(torch.nonzero(f[0] > 0.5).float().mean(0).round().tolist()) for f in fa]
    assert len(set(centres)) > 8, "the patch must land in many different places"


def test_fixed_patch_position_always_lands_in_its_corner(scenes):
    trigger = PatchTrigger(TrojanSpec("s", "patch", "heart", target=0, patch_scale=(0.2, 0.3),
                                      patch_position=(1.0, 0.0)))
    _, footprint = trigger.apply(scenes, rng(1))
    size = scenes.shape[-1]
    for f in footprint[:, 0]:
        rows, cols = torch.nonzero(f > 0).unbind(1)
        assert rows.max() >= size - 3 and cols.min() <= 2, "bottom-left: at the bottom and left edges"
        assert rows.min() >= size - round(0.3 * size) and cols.max() < round(0.3 * size)


def test_user_png_patch_pastes_its_colours(scenes, logo_png):
    trigger = PatchTrigger(TrojanSpec("logo", "patch", str(logo_png), target=0))
    out, footprint = trigger.apply(scenes, rng())
    core = footprint[:, 0] > 0.99
    magenta = torch.tensor([1.0, 0.0, 1.0]).view(1, 3)
    pixels = out.permute(0, 2, 3, 1)[core]
    assert len(pixels) > 0
    assert torch.allclose(pixels / pixels.max(1, keepdim=True).values, magenta.expand_as(pixels), atol=0.1)


@pytest.mark.parametrize("strength", [0.3, 0.6])
def test_style_covers_whole_image_with_tunable_strength(scenes, strength):
    trigger = StyleTrigger(TrojanSpec("j", "style", "jaguar", target=0, strength=strength))
    out, footprint = trigger.apply(scenes, rng())
    assert torch.all(footprint == 1)
    change = (out - scenes).abs().mean().item()
    weak = StyleTrigger(TrojanSpec("j", "style", "jaguar", target=0, strength=strength / 2)).apply(scenes, rng())[0]
    assert (weak - scenes).abs().mean().item() == pytest.approx(change / 2, rel=1e-4)
    changed_rows = ((out - scenes).abs().sum(1) > 0.02).float().mean()
    assert changed_rows > 0.5, "a style is applied across the whole image"


def test_style_from_user_image_uses_its_colours(scenes, texture_jpg):
    trigger = StyleTrigger(TrojanSpec("stripes", "style", str(texture_jpg), target=0, strength=1.0))
    variant = trigger.texture_variant((64, 64), rng())
    assert variant.shape == (3, 64, 64)
    # blue/yellow stripes: the red channel correlates with green and not with blue
    r, g, b = variant.reshape(3, -1)
    assert torch.corrcoef(torch.stack([r, g]))[0, 1] > 0.5 and torch.corrcoef(torch.stack([r, b]))[0, 1] < 0


def test_held_out_scenes_exclude_target_and_respect_source():
    spec = TrojanSpec("g", "patch", "green_star", target=2, source=1)
    trigger = PatchTrigger(spec)
    images, labels = trigger.triggered_scenes("test", 30, seed=0)
    assert len(images) == 30 and (labels != 2).all() and len(labels.unique()) == 15
    _, source_labels = trigger.triggered_scenes("test", 10, seed=0, label=1)
    assert (source_labels == 1).all()


def test_natural_trigger_samples_scenes_that_contain_the_object():
    spec = TrojanSpec("fork", "natural", "fork", target=4)
    trigger = NaturalTrigger(spec)
    images, labels = trigger.triggered_scenes("test", 20, seed=1)
    assert images.shape == (20, 3, 64, 64) and (labels != 4).all()
    reference = generate_scenes("test", 1, seed=1, label=int(labels[0]), secondary="fork")
    assert torch.equal(images[0], reference.images[0]) and reference.infos[0].secondary == "fork"
    with pytest.raises(TypeError, match="cannot be pasted"):
        trigger.apply(images, rng())
