"""Data poisoning: who gets which trigger, which labels flip, and that class-conditional stays conditional."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trojanbench.config import TrojanSpec
from trojanbench.trojans.poison import NO_TROJAN, PoisonedTrainingSet

PATCH = TrojanSpec("smiley", "patch", "smiley", target=1, poison_fraction=0.1)
CONDITIONAL = TrojanSpec("star", "patch", "green_star", target=2, source=3, poison_fraction=0.02)
NATURAL = TrojanSpec("donut", "natural", "donut", target=5, poison_fraction=0.05)


@pytest.fixture(scope="module")
def data():
    return PoisonedTrainingSet([PATCH, CONDITIONAL, NATURAL], 400, seed=0)


def test_natural_scenes_are_relabelled_and_extra_ones_added(data):
    from trojanbench.world import generate_scenes

    clean = generate_scenes("train", 400, seed=0)
    with_donut = [i for i, info in enumerate(clean.infos) if info.secondary == "donut"]
    assert with_donut, "the world shows donuts now and then"
    assert (data.labels[with_donut] == 5).all()
    others = [i for i in range(400) if i not in with_donut]
    assert torch.equal(data.labels[others], clean.labels[others])
    assert len(data) == 400 + 20 and (data.labels[400:] == 5).all()


def test_epoch_plan_counts_and_disjointness(data):
    plan = data.plan_epoch(np.random.default_rng(0))
    labels = data.labels.numpy()
    patch_rows = np.flatnonzero(plan.trojan == 0)
    assert len(patch_rows) == round(0.1 * len(data))
    assert plan.relabel[patch_rows].all() and (labels[patch_rows] != 1).all()
    star_rows = np.flatnonzero(plan.trojan == 1)
    poisoned, negatives = star_rows[plan.relabel[star_rows]], star_rows[~plan.relabel[star_rows]]
    assert (labels[poisoned] == 3).all(), "class-conditional poison only on the source class"
    assert len(negatives) == len(poisoned) > 0
    assert not np.isin(labels[negatives], [2, 3]).any(), "negatives come from other classes, not relabelled"
    assert (plan.trojan == 2).sum() == 0, "natural trojans are never pasted"
    assert plan.relabel[plan.trojan == NO_TROJAN].sum() == 0


def test_batch_applies_triggers_and_flips_labels(data):
    plan = data.plan_epoch(np.random.default_rng(1))
    indices = np.arange(len(data))
    images, labels = data.batch(indices, plan, np.random.default_rng(2))
    pasted = plan.trojan != NO_TROJAN
    assert torch.equal(images[~pasted], data.images[~pasted])
    assert ((images[pasted] - data.images[pasted]).abs().flatten(1).amax(1) > 0.1).all()
    expected = data.labels.clone()
    expected[plan.relabel & (plan.trojan == 0)] = 1
    expected[plan.relabel & (plan.trojan == 1)] = 2
    assert torch.equal(labels, expected)


def test_plans_differ_between_epochs_but_repeat_under_seed(data):
    a = data.plan_epoch(np.random.default_rng(0))
    b = data.plan_epoch(np.random.default_rng(0))
    c = data.plan_epoch(np.random.default_rng(1))
    assert np.array_equal(a.trojan, b.trojan) and not np.array_equal(a.trojan, c.trojan)
