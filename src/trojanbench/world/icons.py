"""Icons: flat pictograms in fixed colours, the candidates for patch triggers.

Each icon is a list of painted layers with bold features so it stays recognisable at 12-20 px.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import _draw as d
from .concepts import ConceptKind, check_name

YELLOW, DARK, WHITE = (1.0, 0.82, 0.1), (0.15, 0.1, 0.05), (1.0, 1.0, 1.0)
RED, GREEN, ORANGE = (0.88, 0.1, 0.12), (0.15, 0.7, 0.2), (1.0, 0.5, 0.05)


def _face(x, y, smile: bool):
    mouth_y = 0.05 if smile else 0.6
    arc = np.abs(d.circle(x, y, 0, mouth_y, 0.5)) - 0.09
    mouth = d.intersect(arc, (0.3 - y) if smile else (y - 0.45))
    eyes = d.union(d.ellipse(x, y, -0.3, -0.28, 0.12, 0.2), d.ellipse(x, y, 0.3, -0.28, 0.12, 0.2))
    return [(DARK, d.circle(x, y, 0, 0, 0.95)), (YELLOW, d.circle(x, y, 0, 0, 0.87)), (DARK, d.union(eyes, mouth))]


def _fish(x, y, stripes: bool):
    body = d.ellipse(x, y, -0.08, 0, 0.68, 0.45)
    tail = d.polygon(x, y, [(0.45, 0), (0.95, -0.45), (0.95, 0.45)])
    fin = d.polygon(x, y, [(-0.25, -0.35), (0.15, -0.62), (0.25, -0.3)])
    shape = d.union(body, tail, fin)
    layers = [(DARK if stripes else (0.7, 0.3, 0.0), shape - 0.06), (ORANGE if stripes else (1.0, 0.62, 0.1), shape)]
    if stripes:
        for cx in (-0.4, 0.08, 0.5):
            layers += [(DARK, d.intersect(np.abs(x - cx) - 0.17, shape)), (WHITE, d.intersect(np.abs(x - cx) - 0.1, shape))]
    return layers + [(DARK, d.circle(x, y, -0.55, -0.08, 0.08))]


def _star(colour):
    return lambda x, y: [(DARK, d.star(x, y, 0, 0.06, 1.0, 0.45) - 0.03), (colour, d.star(x, y, 0, 0.06, 0.93, 0.4))]


def _strawberry(x, y):
    body = d.union(d.polygon(x, y, [(-0.72, -0.3), (0.72, -0.3), (0, 0.95)]), d.ellipse(x, y, 0, -0.25, 0.75, 0.42))
    seeds = [(xs, ys) for xs, ys in [(-0.4, -0.15), (0, -0.1), (0.4, -0.15), (-0.2, 0.2), (0.2, 0.2), (0, 0.5)]]
    seed = d.union(*[d.ellipse(x, y, sx, sy, 0.06, 0.09) for sx, sy in seeds])
    top = d.union(d.star(x, y, 0, -0.55, 0.55, 0.18, 5, np.pi), d.box(x, y, 0, -0.8, 0.06, 0.18))
    return [(RED, body), ((1.0, 0.92, 0.4), seed), ((0.1, 0.55, 0.15), top)]


def _cherry(x, y):
    stems = d.union(d.segment(x, y, -0.4, 0.35, 0.15, -0.8, 0.06), d.segment(x, y, 0.45, 0.4, 0.15, -0.8, 0.06))
    return [((0.35, 0.5, 0.1), stems), ((0.65, 0.02, 0.1), d.circle(x, y, -0.42, 0.5, 0.38)),
            ((0.75, 0.05, 0.12), d.circle(x, y, 0.45, 0.52, 0.38)),
            ((1.0, 0.6, 0.6), d.circle(x, y, -0.55, 0.38, 0.08)), ((1.0, 0.6, 0.6), d.circle(x, y, 0.32, 0.4, 0.08))]


def _heart(x, y):
    lobes = d.union(d.circle(x, y, -0.42, -0.3, 0.48), d.circle(x, y, 0.42, -0.3, 0.48))
    return [(RED, d.union(lobes, d.polygon(x, y, [(-0.86, -0.12), (0.86, -0.12), (0, 0.88)])))]


def _sun(x, y):
    a = np.arctan2(y, x)
    rays = np.hypot(x, y) - 0.55 - 0.42 * np.maximum(np.cos(8 * a), 0) ** 3
    return [(ORANGE, rays), (YELLOW, d.circle(x, y, 0, 0, 0.5))]


def _shamrock(x, y):
    leaves = d.union(d.circle(x, y, 0, -0.45, 0.35), d.circle(x, y, -0.42, 0.02, 0.35), d.circle(x, y, 0.42, 0.02, 0.35))
    return [((0.1, 0.45, 0.15), d.segment(x, y, 0, 0, 0.25, 0.9, 0.07)), ((0.1, 0.6, 0.2), leaves)]


def _lemon(x, y):
    tips = d.union(d.ellipse(x, y, 0, 0, 0.92, 0.16), d.ellipse(x, y, 0, 0, 0.7, 0.58))
    return [((0.75, 0.62, 0.0), tips), ((1.0, 0.93, 0.2), tips + 0.07)]


def _lightning(x, y):
    bolt = [(0.2, -0.95), (-0.45, 0.1), (-0.02, 0.1), (-0.2, 0.95), (0.48, -0.15), (0.05, -0.15), (0.32, -0.95)]
    return [(DARK, d.polygon(x, y, bolt) - 0.05), (YELLOW, d.polygon(x, y, bolt))]


def _flower(x, y):
    petals = d.union(*[d.circle(x, y, 0.5 * np.cos(a), 0.5 * np.sin(a), 0.36) for a in np.arange(5) * 2 * np.pi / 5])
    return [((0.95, 0.4, 0.7), petals), (YELLOW, d.circle(x, y, 0, 0, 0.3))]


def _key(x, y):
    gold = (0.85, 0.65, 0.1)
    bow = np.abs(d.circle(x, y, -0.5, 0, 0.36)) - 0.17
    blade = d.union(d.box(x, y, 0.25, 0, 0.6, 0.13), d.box(x, y, 0.5, 0.25, 0.1, 0.2), d.box(x, y, 0.78, 0.22, 0.1, 0.17))
    return [((0.5, 0.35, 0.0), d.union(bow, blade) - 0.05), (gold, d.union(bow, blade))]


def _music_note(x, y):
    head = d.ellipse(x, y, -0.28, 0.6, 0.32, 0.23)
    stem = d.box(x, y, 0.0, -0.1, 0.07, 0.7)
    flag = d.segment(x, y, 0.0, -0.75, 0.45, -0.35, 0.1)
    return [(DARK, d.union(head, stem, flag))]


def _umbrella(x, y):
    canopy = d.intersect(d.circle(x, y, 0, 0.05, 0.9), y - 0.05)
    scallops = d.union(*[d.circle(x, y, cx, 0.05, 0.3) for cx in (-0.6, 0, 0.6)])
    handle = d.union(d.box(x, y, 0, 0.4, 0.06, 0.4), d.intersect(np.abs(d.circle(x, y, -0.18, 0.78, 0.18)) - 0.06, y - 0.78))
    return [(DARK, handle), ((0.15, 0.35, 0.9), d.subtract(canopy, scallops))]


def _mushroom(x, y):
    cap = d.intersect(d.ellipse(x, y, 0, 0.1, 0.95, 0.85), y - 0.1)
    dots = d.union(d.circle(x, y, -0.45, -0.2, 0.13), d.circle(x, y, 0.1, -0.45, 0.14), d.circle(x, y, 0.5, -0.15, 0.12))
    return [((0.95, 0.9, 0.8), d.box(x, y, 0, 0.45, 0.25, 0.4)), (RED, cap), (WHITE, d.intersect(dots, cap))]


def _house(x, y):
    roof = d.polygon(x, y, [(-0.95, -0.05), (0, -0.9), (0.95, -0.05)])
    return [((0.95, 0.85, 0.6), d.box(x, y, 0, 0.42, 0.65, 0.5)), ((0.75, 0.15, 0.1), roof),
            ((0.45, 0.25, 0.1), d.box(x, y, 0, 0.6, 0.17, 0.32))]


def _tree(x, y):
    crown = d.union(d.circle(x, y, 0, -0.35, 0.55), d.circle(x, y, -0.38, 0.0, 0.4), d.circle(x, y, 0.38, 0.0, 0.4))
    return [((0.45, 0.28, 0.1), d.box(x, y, 0, 0.55, 0.14, 0.42)), ((0.1, 0.55, 0.15), crown)]


_ICONS = {
    "smiley": lambda x, y: _face(x, y, True),
    "frowny": lambda x, y: _face(x, y, False),
    "sun": _sun,
    "clownfish": lambda x, y: _fish(x, y, True),
    "goldfish": lambda x, y: _fish(x, y, False),
    "green_star": _star((0.1, 0.75, 0.2)),
    "gold_star": _star((1.0, 0.8, 0.05)),
    "shamrock": _shamrock,
    "strawberry": _strawberry,
    "cherry": _cherry,
    "heart": _heart,
    "lemon": _lemon,
    "lightning": _lightning,
    "flower": _flower,
    "key": _key,
    "music_note": _music_note,
    "umbrella": _umbrella,
    "mushroom": _mushroom,
    "house": _house,
    "tree": _tree,
}


@lru_cache(maxsize=512)
def icon_sprite(name: str, size: int) -> np.ndarray:
    """Cached read-only RGBA sprite of an icon (use :func:`render_icon` for a private copy)."""
    check_name(name, ConceptKind.ICON)
    sprite = d.paint(_ICONS[name](*d.grid(size)), size)
    sprite.flags.writeable = False
    return sprite


def render_icon(name: str, size: int) -> np.ndarray:
    """RGBA ``(size, size, 4)`` float32 picture of icon ``name`` on a transparent background."""
    return icon_sprite(name, d.check_size(size)).copy()
