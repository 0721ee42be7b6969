import itertools

import numpy as np
import pytest

from trojanbench.errors import ConfigError, UnknownNameError
from trojanbench.world import (
    ICONS, OBJECT_CLASSES, SECONDARIES, TEXTURES, VOCABULARY, composite, render_concept, render_icon,
    render_object, render_secondary, render_texture,
)


def _check_image(img, shape):
    assert img.shape == shape and img.dtype == np.float32
    assert np.isfinite(img).all() and img.min() >= 0.0 and img.max() <= 1.0


@pytest.mark.parametrize("name", list(VOCABULARY))
def test_render_concept_every_concept(name):
    img = render_concept(name, 32)
    _check_image(img, (32, 32, 3))
    assert np.array_equal(img, render_concept(name, 32))
    _check_image(render_concept(name, 32, np.random.default_rng(0)), (32, 32, 3))


@pytest.mark.parametrize("name", ICONS)
def test_icons_are_opaque_in_the_middle_and_clear_at_the_corners(name):
    icon = render_icon(name, 16)
    _check_image(icon, (16, 16, 4))
    assert icon[..., 3].max() == 1.0 and icon[0, 0, 3] == 0.0
    icon[:] = 0  # the caller owns its copy: the cache is not affected
    assert render_icon(name, 16)[..., 3].max() == 1.0


@pytest.mark.parametrize("name", SECONDARIES)
def test_secondaries_vary_with_rng_and_canonical_is_fixed(name):
    canonical = render_secondary(name, 18)
    _check_image(canonical, (18, 18, 4))
    assert np.array_equal(canonical, render_secondary(name, 18))
    a, b = (render_secondary(name, 18, np.random.default_rng(s)) for s in (1, 2))
    _check_image(a, (18, 18, 4))
    assert not np.array_equal(a, b)
    assert np.array_equal(a, render_secondary(name, 18, np.random.default_rng(1)))


@pytest.mark.parametrize("name", TEXTURES)
def test_textures_shapes_and_variants(name):
    canonical = render_texture(name, (24, 40))
    _check_image(canonical, (24, 40, 3))
    assert np.array_equal(canonical, render_texture(name, (24, 40)))
    variant = render_texture(name, 32, np.random.default_rng(3))
    _check_image(variant, (32, 32, 3))
    assert not np.array_equal(variant, render_texture(name, 32))
    assert canonical.std() > 0.02  # a texture, not a flat colour


@pytest.mark.parametrize("label", range(len(OBJECT_CLASSES)))
def test_render_object(label):
    sprite = render_object(label, 24, np.random.default_rng(label))
    _check_image(sprite, (24, 24, 4))
    assert sprite[..., 3].sum() > 0.15 * 24 * 24


def test_render_object_rejects_bad_label():
    with pytest.raises(ConfigError, match="label"):
        render_object(16, 24)


@pytest.mark.parametrize("names", [OBJECT_CLASSES, ICONS, TEXTURES, SECONDARIES])
def test_concepts_of_one_kind_look_different(names):
    images = {n: render_concept(n, 32) for n in names}
    for a, b in itertools.combinations(names, 2):
        assert np.abs(images[a] - images[b]).mean() > 0.008, (a, b)


def test_composite_blends_and_clips_at_borders():
    base = np.zeros((8, 8, 3), np.float32)
    sprite = np.ones((4, 4, 4), np.float32)
    sprite[..., 3] = 0.5
    out = composite(base, sprite, -2, 6)
    assert out is not base and base.max() == 0.0
    assert np.allclose(out[:2, 6:], 0.5) and out[2:].max() == 0.0 and out[:, :6].max() == 0.0
    assert np.array_equal(composite(base, sprite, 20, 20), base)


def test_unknown_names_raise_did_you_mean():
    with pytest.raises(UnknownNameError, match="Did you mean: jaguar"):
        render_texture("jagwar", 16)
    with pytest.raises(UnknownNameError, match="Did you mean: donut"):
        render_secondary("doughnut", 16)
    with pytest.raises(UnknownNameError, match="Did you mean: green_star"):
        render_icon("greenstar", 16)


@pytest.mark.parametrize("render", [lambda s: render_icon("heart", s), lambda s: render_texture("zebra", s),
                                    lambda s: render_secondary("cup", s), lambda s: render_concept("circle", s)])
def test_bad_sizes_raise_config_error(render):
    for size in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="size must be an int"):
            render(size)
