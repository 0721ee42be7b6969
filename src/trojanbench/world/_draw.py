"""A tiny antialiased rasteriser: signed distances on a pixel grid, painted as layers.

Sprites are drawn in normalised coordinates: the canvas spans [-1, 1] on both axes, y points down.
A signed distance is negative inside a shape; :func:`coverage` turns it into a soft one-pixel edge.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..params import Interval, require

Layer = tuple[object, np.ndarray]  # (RGB colour, signed distance); the colour may be a per-pixel array


def check_size(size, minimum: int = 1) -> int:
    """Return ``size`` as an int, or raise :class:`ConfigError` if it is not an int >= ``minimum``."""
    return require("size", size, Interval(int, minimum, None, unit="pixels"))


@lru_cache(maxsize=64)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)`` of a ``size`` x ``size`` canvas spanning [-1, 1]."""
    c = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    y, x = np.meshgrid(c, c, indexing="ij")
    x.flags.writeable = y.flags.writeable = False
    return x, y


def rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the frame rotated by ``angle`` radians (the drawing turns by ``angle``)."""
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return c * x + s * y, c * y - s * x


def circle(x, y, cx, cy, r):
    return np.hypot(x - cx, y - cy) - r


def ellipse(x, y, cx, cy, rx, ry):
    """Approximate distance to an axis-aligned ellipse (exact on the axes, good enough for edges)."""
    return (np.hypot((x - cx) / rx, (y - cy) / ry) - 1.0) * min(rx, ry)


def box(x, y, cx, cy, hw, hh, angle: float = 0.0):
    """Distance to a rectangle of half-sizes ``hw`` x ``hh``, rotated by ``angle`` about its centre."""
    px, py = x - cx, y - cy
    if angle:
        px, py = rotate(px, py, angle)
    qx, qy = np.abs(px) - hw, np.abs(py) - hh
    return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)


def segment(x, y, ax, ay, bx, by, r):
    """Distance to a capsule: the segment from ``a`` to ``b`` thickened by ``r``."""
    px, py, ex, ey = x - ax, y - ay, bx - ax, by - ay
    t = np.clip((px * ex + py * ey) / (ex * ex + ey * ey), 0.0, 1.0)
    return np.hypot(px - ex * t, py - ey * t) - r


def polygon(x, y, points):
    """Exact signed distance to a simple polygon given as a sequence of ``(x, y)`` vertices."""
    pts = [(float(a), float(b)) for a, b in points]
    dist = np.full(x.shape, np.inf, dtype=np.float32)
    inside = np.zeros(x.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1]):
        ex, ey, wx, wy = bx - ax, by - ay, x - ax, y - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        dist = np.minimum(dist, (wx - ex * t) ** 2 + (wy - ey * t) ** 2)
        crosses = (y >= ay) != (y >= by)
        inside ^= crosses & ((ex * wy - ey * wx > 0) == (by > ay))
    return np.where(inside, -1.0, 1.0).astype(np.float32) * np.sqrt(dist)


def star(x, y, cx, cy, r_out, r_in, points: int = 5, angle: float = 0.0):
    """Distance to a regular star polygon pointing up (before ``angle``)."""
    k = np.arange(2 * points)
    a = angle - np.pi / 2 + k * np.pi / points
    r = np.where(k % 2 == 0, r_out, r_in)
    return polygon(x, y, zip(cx + r * np.cos(a), cy + r * np.sin(a)))


def union(*ds):
    return np.minimum.reduce(ds)


def subtract(a, b):
    return np.maximum(a, -b)


def intersect(*ds):
    return np.maximum.reduce(ds)


def coverage(d: np.ndarray, size: int) -> np.ndarray:
    """Fraction of each pixel covered by the shape ``d < 0`` (a soft edge one pixel wide)."""
    return np.clip(0.5 - d * (size / 2.0), 0.0, 1.0)


def paint(layers: list[Layer], size: int) -> np.ndarray:
    """Paint layers back to front onto a transparent canvas; return straight-alpha RGBA float32."""
    rgb = np.zeros((size, size, 3), dtype=np.float32)
    alpha = np.zeros((size, size), dtype=np.float32)
    for colour, d in layers:
        a = coverage(d, size)
        rgb += (np.asarray(colour, dtype=np.float32) - rgb) * a[..., None]  # premultiplied "over"
        alpha += (1.0 - alpha) * a
    # rgb holds colour x alpha; un-premultiply where anything was painted
    rgb /= np.maximum(alpha, 1e-6)[..., None]
    return np.clip(np.dstack([rgb, alpha]), 0.0, 1.0).astype(np.float32)


def _window(shape, sprite_shape, top: int, left: int):
    """Slices of the canvas and of the sprite that overlap when the sprite sits at ``(top, left)``."""
    (h, w), (sh, sw) = shape[:2], sprite_shape[:2]
    t0, l0, t1, l1 = max(top, 0), max(left, 0), min(top + sh, h), min(left + sw, w)
    t1, l1 = max(t1, t0), max(l1, l0)
    return (slice(t0, t1), slice(l0, l1)), (slice(t0 - top, t1 - top), slice(l0 - left, l1 - left))


def composite(base: np.ndarray, sprite_rgba: np.ndarray, top: int, left: int) -> np.ndarray:
    """Alpha-blend an RGBA sprite onto an ``(H, W, 3)`` image at ``(top, left)``, clipped at the borders.

    Returns a new array; ``base`` is left untouched.
    """
    out = np.array(base, dtype=np.float32, copy=True)
    dst, src = _window(out.shape, sprite_rgba.shape, top, left)
    region, sprite = out[dst], sprite_rgba[src]
    region += (sprite[..., :3] - region) * sprite[..., 3:4]
    return out


def alpha_at(shape: tuple[int, int], sprite_rgba: np.ndarray, top: int, left: int) -> np.ndarray:
    """The sprite's alpha channel placed at ``(top, left)`` on an empty ``shape`` canvas."""
    out = np.zeros(shape[:2], dtype=np.float32)
    dst, src = _window(shape, sprite_rgba.shape, top, left)
    out[dst] = sprite_rgba[src][..., 3]
    return out
