"""The 16 object classes: geometric shapes that stay distinguishable under rotation, scale and colour."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import _draw as d
from ..params import Interval, require
from .concepts import OBJECT_CLASSES

_LABEL = Interval(int, 0, len(OBJECT_CLASSES) - 1, unit="an index into OBJECT_CLASSES")


def _chevron(x, y):
    return d.union(d.segment(x, y, -0.45, -0.75, 0.0, 0.55, 0.13), d.segment(x, y, 0.45, -0.75, 0.0, 0.55, 0.13))


# Each shape fits (roughly) in the unit disc, so a rotated sprite is never clipped.
_SHAPES = {
    "circle": lambda x, y: d.circle(x, y, 0, 0, 0.85),
    "square": lambda x, y: d.box(x, y, 0, 0, 0.63, 0.63),
    "triangle": lambda x, y: d.polygon(x, y, [(0, -0.9), (0.78, 0.45), (-0.78, 0.45)]),
    "cross": lambda x, y: d.union(d.box(x, y, 0, 0, 0.9, 0.25), d.box(x, y, 0, 0, 0.25, 0.9)),
    "crescent": lambda x, y: d.subtract(d.circle(x, y, 0, 0, 0.88), d.circle(x, y, 0.42, 0, 0.78)),
    "arrow": lambda x, y: d.polygon(
        x, y, [(-0.9, -0.17), (0.15, -0.17), (0.15, -0.55), (0.92, 0), (0.15, 0.55), (0.15, 0.17), (-0.9, 0.17)]),
    "bowtie": lambda x, y: d.polygon(x, y, [(-0.8, -0.55), (0, -0.1), (0.8, -0.55), (0.8, 0.55), (0, 0.1), (-0.8, 0.55)]),
    "semicircle": lambda x, y: d.intersect(d.circle(x, y, 0, 0.3, 0.88), y - 0.3),
    "ellipse": lambda x, y: d.ellipse(x, y, 0, 0, 0.92, 0.4),
    "frame": lambda x, y: np.abs(d.box(x, y, 0, 0, 0.52, 0.52)) - 0.13,
    "tee": lambda x, y: d.union(d.box(x, y, 0, -0.52, 0.72, 0.2), d.box(x, y, 0, 0.15, 0.2, 0.72)),
    "chevron": _chevron,
    "trapezoid": lambda x, y: d.polygon(x, y, [(-0.88, 0.42), (0.88, 0.42), (0.38, -0.42), (-0.38, -0.42)]),
    "ell": lambda x, y: d.union(d.box(x, y, -0.35, 0, 0.22, 0.85), d.box(x, y, 0.05, 0.63, 0.62, 0.22)),
    "dumbbell": lambda x, y: d.union(d.circle(x, y, -0.6, 0, 0.33), d.circle(x, y, 0.6, 0, 0.33),
                                     d.box(x, y, 0, 0, 0.6, 0.1)),
    "kite": lambda x, y: d.polygon(x, y, [(0, -0.92), (0.5, -0.35), (0, 0.92), (-0.5, -0.35)]),
}


def check_label(label: int) -> int:
    """Return ``label`` as an int, or raise :class:`ConfigError` if it is not a valid class index."""
    return require("label", label, _LABEL)


def object_mask(label: int, size: int, angle: float = 0.0) -> np.ndarray:
    """Soft ``(size, size)`` float32 mask of object class ``label`` rotated by ``angle`` radians."""
    x, y = d.rotate(*d.grid(size), angle)
    return d.coverage(_SHAPES[OBJECT_CLASSES[check_label(label)]](x, y), size).astype(np.float32)


@lru_cache(maxsize=256)
def _canonical_mask(label: int, size: int) -> np.ndarray:
    mask = object_mask(label, size)
    mask.flags.writeable = False
    return mask


CANONICAL_COLOUR = (0.2, 0.35, 0.75)


def render_object(label: int, size: int, rng: np.random.Generator | None = None,
                  colour: tuple[float, float, float] | None = None) -> np.ndarray:
    """RGBA sprite ``(size, size, 4)`` of object class ``label``.

    ``rng`` draws a random rotation (and a random colour unless ``colour`` is given); ``rng=None``
    gives the canonical upright shape in :data:`CANONICAL_COLOUR`.
    """
    size = d.check_size(size)
    if rng is None:
        mask = _canonical_mask(check_label(label), size)
    else:
        mask = object_mask(label, size, rng.uniform(0, 2 * np.pi))
        if colour is None:
            colour = random_colour(rng)
    rgba = np.empty((size, size, 4), dtype=np.float32)
    rgba[..., :3] = colour if colour is not None else CANONICAL_COLOUR
    rgba[..., 3] = mask
    return rgba


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour: random hue, saturation in [0.65, 1], value in [0.55, 1]."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0.65, 1.0), rng.uniform(0.55, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return (v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)
