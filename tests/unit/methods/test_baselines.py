"""Baselines: noise is noise, exemplars are the model's top-scoring clean images, the oracle shows the trigger."""

from __future__ import annotations

import pytest
import torch

from trojanbench.config import TrojanSpec
from trojanbench.errors import MethodError
from trojanbench.methods.baselines import DatasetExemplars, Oracle, RandomNoise
from trojanbench.testing import tiny_target


def test_random_noise_is_uniform_and_seeded():
    target = tiny_target()
    a = RandomNoise().synthesize(target, 3, 20, seed=4)
    assert torch.equal(a, RandomNoise().synthesize(target, 3, 20, seed=4))
    assert abs(a.mean().item() - 0.5) < 0.01 and abs(a.std().item() - (1 / 12) ** 0.5) < 0.01


def test_exemplars_are_the_top_scoring_clean_images():
    target = tiny_target()
    images = DatasetExemplars().synthesize(target, 5, 4, seed=0)
    with torch.no_grad():
        scores = target.model(target.clean_images).log_softmax(1)[:, 5]
        chosen = target.model(images).log_softmax(1)[:, 5]
    assert torch.allclose(chosen, scores.sort(descending=True).values[:4])


def test_exemplars_rank_source_class_images_when_enough():
    target = tiny_target()
    source = int(target.clean_labels.bincount().argmax())
    images = DatasetExemplars().synthesize(target, 1, 2, seed=0, source_class=source)
    pool = target.clean_images[target.clean_labels == source]
    assert all(any(torch.equal(img, p) for p in pool) for img in images)


def test_oracle_needs_and_renders_the_ground_truth():
    target = tiny_target()
    with pytest.raises(MethodError, match="with_ground_truth"):
        Oracle().synthesize(target, 1, 2, seed=0)
    spec = TrojanSpec("donut", "natural", "donut", target=1)
    images = Oracle().with_ground_truth(spec).synthesize(target, 1, 3, seed=0)
    assert images.shape == (3, 3, 64, 64)
    assert Oracle.is_oracle and Oracle.is_baseline and not RandomNoise.is_oracle
