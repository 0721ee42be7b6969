"""Feature visualization of inner units on the shipped model: every image is optimized, none left grey."""

from __future__ import annotations

import pytest
import torch

from trojanbench.methods import Target
from trojanbench.methods.synthesis._feature_vis import top_units
from trojanbench.models import load_model
from trojanbench.registry import get_method
from trojanbench.world import OBJECT_CLASSES


@pytest.fixture(scope="module")
def target():
    return Target.from_model(load_model("trojaned"), n_clean=16, n_patches=16)


@pytest.mark.parametrize("name", ["inner_cppn_fv", "inner_fourier_fv"])
def test_inner_units_fire_and_no_image_stays_flat(name, target):
    """From the CPPN's uniform grey start the top units of 'bowtie' are silent (no gradient); the images must
    still move, and most of them must end up exciting their unit."""
    bowtie = OBJECT_CLASSES.index("bowtie")
    images = get_method(name)(steps=60).synthesize(target, bowtie, 6, seed=0)
    assert (images.flatten(1).std(1) > 0.02).all(), "an image was left (nearly) uniform"
    units = top_units(target, bowtie, 3)[torch.arange(6) % 3]
    with torch.no_grad():
        activation = target.features(images).gather(1, units[:, None]).squeeze(1)
    assert (activation > 0).float().mean() >= 0.5, activation
