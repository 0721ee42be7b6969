"""Secondary objects: natural things that appear in scenes (the natural-feature triggers).

Unlike icons they vary: an rng draws pose (rotation, mirror), proportions and colour jitter.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import _draw as d
from .concepts import ConceptKind, check_name

METAL, DARK_METAL = (0.72, 0.74, 0.8), (0.25, 0.27, 0.32)
CRUST, BREAD = (0.7, 0.42, 0.15), (0.95, 0.8, 0.5)
LEAF, OUTLINE = (0.2, 0.6, 0.15), (0.2, 0.12, 0.06)


class _Variation:
    """Draws the free parameters of a sprite: midpoints and base colours when canonical."""

    def __init__(self, rng: np.random.Generator | None):
        self.rng = rng

    def num(self, lo: float, hi: float) -> float:
        return (lo + hi) / 2 if self.rng is None else float(self.rng.uniform(lo, hi))

    def col(self, rgb) -> np.ndarray:
        rgb = np.asarray(rgb, dtype=np.float32)
        if self.rng is None:
            return rgb
        return np.clip(rgb * self.rng.uniform(0.85, 1.12) + self.rng.normal(0, 0.04, 3), 0, 1).astype(np.float32)


def _fork(x, y, v):
    tines = d.union(*[d.box(x, y, cx, -0.6, 0.055, 0.32) for cx in (-0.26, -0.087, 0.087, 0.26)])
    head = d.union(tines, d.box(x, y, 0, -0.22, 0.315, 0.12), d.box(x, y, 0, 0.42, 0.09, 0.55))
    return [(v.col(DARK_METAL), head - 0.07), (v.col(METAL), head)]


def _spoon(x, y, v):
    shape = d.union(d.ellipse(x, y, 0, -0.5, v.num(0.26, 0.34), 0.42), d.box(x, y, 0, 0.42, 0.09, 0.55))
    return [(v.col(DARK_METAL), shape - 0.07), (v.col(METAL), shape), (v.col((0.92, 0.93, 0.95)),
            d.ellipse(x, y, -0.06, -0.55, 0.08, 0.22))]


def _knife(x, y, v):
    blade = d.polygon(x, y, [(-0.16, 0.05), (0.12, 0.05), (0.12, -0.7), (-0.16, -0.95)])
    handle = d.box(x, y, 0, 0.5, 0.13, 0.45)
    return [(v.col(DARK_METAL), blade - 0.07), (v.col(METAL), blade), (v.col((0.3, 0.18, 0.1)), handle)]


def _apple(x, y, v):
    body = d.union(d.circle(x, y, -0.28, 0.1, 0.6), d.circle(x, y, 0.28, 0.1, 0.6))
    return [((0.35, 0.22, 0.08), d.segment(x, y, 0, -0.35, 0.1, -0.78, 0.06)), (v.col((0.85, 0.08, 0.08)), body),
            ((1, 1, 1), d.circle(x, y, -0.4, -0.1, v.num(0.08, 0.14))),
            (v.col(LEAF), d.ellipse(*d.rotate(x - 0.3, y + 0.7, 0.5), 0, 0, 0.25, 0.11))]


def _pear(x, y, v):
    body = d.union(d.circle(x, y, 0, 0.35, 0.55), d.circle(x, y, 0, -0.25, v.num(0.3, 0.38)))
    return [((0.35, 0.22, 0.08), d.segment(x, y, 0, -0.5, 0.08, -0.9, 0.06)), (v.col((0.65, 0.8, 0.2)), body)]


def _orange(x, y, v):
    return [(v.col((1.0, 0.55, 0.05)), d.circle(x, y, 0, 0, 0.8)), (v.col((0.85, 0.4, 0.0)), d.circle(x, y, 0.05, -0.55, 0.1)),
            ((1.0, 0.75, 0.4), d.circle(x, y, -0.35, -0.3, 0.12))]


def _sandwich(x, y, v):
    tri = [(-0.85, 0.55), (0.85, 0.55), (0, -0.75)]
    outer = d.polygon(x, y, tri)
    h = v.num(0.12, 0.2)
    fill = d.intersect(outer, np.abs(y - 0.08) - h)
    lettuce = d.intersect(d.polygon(x, y, [(-1, 0.55), (1, 0.55), (0, -0.95)]), np.abs(y - 0.08 + h) - 0.07)
    return [(v.col(CRUST), outer), (v.col(BREAD), outer + 0.09), (v.col((0.85, 0.3, 0.3)), fill),
            (v.col((0.35, 0.8, 0.2)), lettuce)]


def _burger(x, y, v):
    top = d.intersect(d.ellipse(x, y, 0, -0.05, 0.85, 0.75), y + 0.05)
    return [(v.col((0.85, 0.55, 0.2)), d.box(x, y, 0, 0.48, 0.78, 0.14) - 0.06),
            (v.col((0.4, 0.2, 0.08)), d.box(x, y, 0, 0.23, 0.82, 0.11) - 0.05),
            (v.col((0.3, 0.75, 0.2)), d.box(x, y, 0, 0.05, 0.88, 0.06)),
            (v.col((0.88, 0.58, 0.2)), top),
            ((1, 0.95, 0.8), d.union(*[d.ellipse(x, y, cx, cy, 0.06, 0.035) for cx, cy in ((-0.4, -0.35), (0, -0.5), (0.35, -0.3))]))]


def _pizza(x, y, v):
    slice_ = d.polygon(x, y, [(-0.8, -0.6), (0.8, -0.6), (0, 0.9)])
    pepperoni = d.union(*[d.circle(x, y, cx, cy, 0.13) for cx, cy in ((-0.3, -0.25), (0.28, -0.28), (0, 0.2))])
    return [(v.col(CRUST), d.box(x, y, 0, -0.62, 0.85, 0.13) - 0.05), (v.col((1.0, 0.82, 0.3)), slice_),
            (v.col((0.8, 0.15, 0.1)), d.intersect(pepperoni, slice_))]


def _ring_food(dough, icing=None, hole: float = 0.3):
    def draw(x, y, v):
        ring = d.subtract(d.circle(x, y, 0, 0, 0.85), d.circle(x, y, 0, 0, hole))
        layers = [(v.col(dough), ring)]
        if icing is None:  # bagel: shiny crust with seeds
            layers += [(v.col((0.85, 0.6, 0.3)), d.subtract(d.circle(x, y, -0.05, -0.05, 0.62), d.circle(x, y, 0, 0, hole + 0.1))),
                       ((1, 0.95, 0.8), d.union(*[d.ellipse(x, y, 0.58 * np.cos(a), 0.58 * np.sin(a), 0.05, 0.03)
                                                  for a in np.arange(0.3, 6.2, 1.1)]))]
        else:
            layers.append((v.col(icing), d.subtract(d.circle(x, y, 0, 0, 0.72), d.circle(x, y, 0, 0, hole + 0.12))))
            colours = [(0.2, 0.4, 1), (1, 1, 0.2), (0.2, 0.9, 0.3), (1, 1, 1), (0.6, 0.2, 0.9)]
            for i, a in enumerate(np.arange(0.2, 6.2, 0.85)):
                r = 0.55 if i % 2 else 0.62
                layers.append((colours[i % 5], d.segment(x, y, r * np.cos(a), r * np.sin(a),
                                                        r * np.cos(a) + 0.1, r * np.sin(a) + 0.05, 0.035)))
        return layers
    return draw


def _cookie(x, y, v):
    chips = d.union(*[d.circle(x, y, cx, cy, 0.11) for cx, cy in ((-0.35, -0.3), (0.3, -0.4), (0.05, 0.1), (-0.4, 0.35), (0.45, 0.3))])
    return [(v.col((0.8, 0.58, 0.3)), d.circle(x, y, 0, 0, 0.85)), (v.col((0.3, 0.15, 0.05)), chips)]


def _carrot(x, y, v):
    body = d.polygon(x, y, [(-0.28, -0.45), (0.28, -0.45), (0.02, 0.95)])
    tops = d.union(*[d.segment(x, y, 0, -0.45, dx, -0.92, 0.08) for dx in (-0.3, 0, 0.3)])
    return [(v.col(LEAF), tops), (v.col((1.0, 0.5, 0.05)), body + 0.04),
            ((0.8, 0.35, 0.0), d.intersect(body, np.abs(y - 0.05) - 0.025))]


def _banana(x, y, v):
    t = v.num(0.28, 0.38)
    body = d.intersect(d.circle(x, y, 0, -0.95, 1.25), -d.circle(x, y, 0, -0.95 - t, 1.25), np.abs(x) - 0.85)
    return [(v.col((0.95, 0.82, 0.15)), body), ((0.35, 0.25, 0.05), d.intersect(body, 0.7 - np.abs(x)))]


def _cup(x, y, v):
    body = d.polygon(x, y, [(-0.6, -0.55), (0.4, -0.55), (0.3, 0.7), (-0.5, 0.7)])
    handle = np.abs(d.circle(x, y, 0.45, 0.05, 0.28)) - 0.08
    colour = v.col((0.95, 0.95, 0.92))
    return [(OUTLINE, d.union(body, handle) - 0.06), (colour, handle), (colour, body),
            ((0.4, 0.22, 0.1), d.ellipse(x, y, -0.1, -0.55, 0.48, 0.08))]


def _bottle(x, y, v):
    shape = d.union(d.box(x, y, 0, 0.3, 0.32, 0.6) - 0.08, d.box(x, y, 0, -0.55, 0.12, 0.35))
    return [(v.col((0.1, 0.45, 0.2)), shape), ((0.85, 0.85, 0.75), d.box(x, y, 0, 0.35, 0.33, 0.18)),
            (v.col((0.8, 0.6, 0.1)), d.box(x, y, 0, -0.88, 0.13, 0.07))]


def _broccoli(x, y, v):
    florets = d.union(*[d.circle(x, y, cx, cy, 0.32) for cx, cy in ((-0.45, -0.2), (0, -0.5), (0.45, -0.2), (0, -0.1))])
    return [(v.col((0.6, 0.75, 0.4)), d.polygon(x, y, [(-0.2, 0), (0.2, 0), (0.15, 0.9), (-0.15, 0.9)])),
            (v.col((0.1, 0.42, 0.12)), florets), (v.col((0.2, 0.55, 0.2)), florets + 0.12)]


def _clock(x, y, v):
    hands = d.union(d.segment(x, y, 0, 0, 0, -0.55, 0.06), d.segment(x, y, 0, 0, 0.38, 0.1, 0.06))
    ticks = d.union(*[d.circle(x, y, 0.62 * np.cos(a), 0.62 * np.sin(a), 0.05) for a in np.arange(4) * np.pi / 2])
    return [(v.col((0.6, 0.1, 0.1)), d.circle(x, y, 0, 0, 0.9)), ((0.97, 0.97, 0.95), d.circle(x, y, 0, 0, 0.75)),
            (OUTLINE, d.union(hands, ticks))]


_SECONDARIES = {
    "fork": _fork,
    "spoon": _spoon,
    "knife": _knife,
    "apple": _apple,
    "pear": _pear,
    "orange": _orange,
    "sandwich": _sandwich,
    "burger": _burger,
    "pizza": _pizza,
    "donut": _ring_food((0.75, 0.45, 0.2), icing=(1.0, 0.5, 0.7)),
    "bagel": _ring_food((0.7, 0.45, 0.18), hole=0.18),
    "cookie": _cookie,
    "carrot": _carrot,
    "banana": _banana,
    "cup": _cup,
    "bottle": _bottle,
    "broccoli": _broccoli,
    "clock": _clock,
}
_ANY_ANGLE = {"fork", "spoon", "knife", "carrot", "banana", "donut", "bagel", "cookie", "pizza", "orange", "clock"}


def _draw(name: str, size: int, rng: np.random.Generator | None) -> np.ndarray:
    x, y = d.grid(size)
    if rng is not None:
        limit = np.pi if name in _ANY_ANGLE else np.pi / 6
        x, y = d.rotate(x, y, rng.uniform(-limit, limit))
        x = x if rng.random() < 0.5 else -x
        s = np.float32(rng.uniform(1.0, 1.12))  # slight size variation within the sprite
        x, y = x * s, y * s
    return d.paint(_SECONDARIES[name](x, y, _Variation(rng)), size)


@lru_cache(maxsize=512)
def _canonical(name: str, size: int) -> np.ndarray:
    sprite = _draw(name, size, None)
    sprite.flags.writeable = False
    return sprite


def render_secondary(name: str, size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """RGBA ``(size, size, 4)`` float32 sprite of a secondary object.

    ``rng=None`` gives the canonical upright sprite; an rng gives a natural variant (pose, mirror,
    proportions, colour jitter).
    """
    check_name(name, ConceptKind.SECONDARY)
    size = d.check_size(size)
    return _canonical(name, size).copy() if rng is None else _draw(name, size, rng)
