import hashlib

import pytest
import torch

from trojanbench.errors import ConfigError, UnknownNameError
from trojanbench.world import SPLITS, generate_scenes, scene_rng


def test_batch_layout():
    batch = generate_scenes("train", 4, size=32)
    assert len(batch) == 4 and batch.images.shape == (4, 3, 32, 32)
    assert batch.images.dtype == torch.float32 and batch.labels.dtype == torch.int64
    assert 0.0 <= batch.images.min() and batch.images.max() <= 1.0
    assert batch.labels.tolist() == [info.label for info in batch.infos]
    assert len(generate_scenes("val", 0)) == 0


def test_same_seed_identical_other_seed_different():
    a, b = generate_scenes("val", 3, seed=1), generate_scenes("val", 3, seed=1)
    assert torch.equal(a.images, b.images) and a.infos == b.infos
    assert not torch.equal(a.images, generate_scenes("val", 3, seed=2).images)


def test_random_access():
    full, part = generate_scenes("test", 8, seed=4), generate_scenes("test", 3, seed=4, start=5)
    assert torch.equal(full.images[5:8], part.images) and full.infos[5:8] == part.infos


def test_constrained_streams_are_separate_and_honoured():
    batch = generate_scenes("train", 6, label=2, secondary="apple", icon=None, size=32)
    assert batch.labels.tolist() == [2] * 6
    assert all(i.secondary == "apple" and i.icon is None for i in batch.infos)
    assert not torch.equal(batch.images[0], generate_scenes("train", 1, size=32).images[0])


def test_splits_are_disjoint():
    def digests(split):
        images = generate_scenes(split, 200, size=32).images.numpy()
        return {hashlib.sha1(im.tobytes()).hexdigest() for im in images}

    train, test = digests("train"), digests("test")
    assert len(train) == len(test) == 200 and not train & test


def test_scene_rng_is_stable():
    assert scene_rng("pool", 3, 7).random() == scene_rng("pool", 3, 7).random()
    assert scene_rng("pool", 3, 7, "x").random() != scene_rng("pool", 3, 7).random()
    assert len(SPLITS) == 6


def test_bad_arguments():
    with pytest.raises(UnknownNameError, match="Did you mean: train"):
        generate_scenes("trian", 1)
    with pytest.raises(ConfigError, match="n must be"):
        generate_scenes("train", -1)
    with pytest.raises(ConfigError, match="label"):
        generate_scenes("train", 1, label=-1)
    with pytest.raises(UnknownNameError):
        scene_rng("nope", 0, 0)
