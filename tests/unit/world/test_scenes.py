import numpy as np
import pytest

from trojanbench.errors import ConfigError, UnknownNameError
from trojanbench.world import ICONS, OBJECT_CLASSES, SECONDARIES, SECONDARY_RATE, TEXTURES, render_scene


def test_scene_shape_range_and_determinism():
    img, info = render_scene(np.random.default_rng(0))
    assert img.shape == (64, 64, 3) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    again, info2 = render_scene(np.random.default_rng(0))
    assert np.array_equal(img, again) and info == info2
    assert 0 <= info.label < len(OBJECT_CLASSES)


def test_backgrounds_are_named():
    kinds = {render_scene(np.random.default_rng(i), 32)[1].background for i in range(60)}
    assert {"solid", "gradient", "noise"} <= kinds
    assert all(k in ("solid", "gradient", "noise") or k.removeprefix("texture:") in TEXTURES for k in kinds)


def test_forced_and_forbidden_concepts_are_honoured():
    for i in range(10):
        rng = np.random.default_rng(i)
        _, info = render_scene(rng, 32, label=3, secondary="donut", icon="smiley")
        assert (info.label, info.secondary, info.icon) == (3, "donut", "smiley")
        _, info = render_scene(rng, 32, secondary=None, icon=None)
        assert info.secondary is None and info.icon is None


def test_secondary_changes_the_picture():
    plain, _ = render_scene(np.random.default_rng(5), secondary=None, icon=None)
    with_fork, _ = render_scene(np.random.default_rng(5), secondary="fork", icon=None)
    assert not np.array_equal(plain, with_fork)


def test_natural_secondary_frequency():
    infos = [render_scene(np.random.default_rng(i), 32)[1] for i in range(500)]
    rate = np.mean([info.secondary is not None for info in infos])
    assert abs(rate - SECONDARY_RATE) < 0.07
    assert {info.secondary for info in infos} - {None} <= set(SECONDARIES)
    assert {info.icon for info in infos} - {None} <= set(ICONS)


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=r"label must be an int in \[0, 15\]"):
        render_scene(rng, label=16)
    with pytest.raises(UnknownNameError, match="Did you mean: apple"):
        render_scene(rng, secondary="appel")
    with pytest.raises(UnknownNameError, match="Did you mean: clownfish"):
        render_scene(rng, icon="clown_fish")
    with pytest.raises(ConfigError, match="size"):
        render_scene(rng, size=8)
