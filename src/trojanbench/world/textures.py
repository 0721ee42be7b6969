"""Textures: procedural surface styles, the candidates for style triggers.

Textures are drawn in reference pixels (a 64 px square image spans 64 of them, whatever its resolution).
``rng=None`` gives the canonical texture; an rng gives a natural variant of the same texture.
"""

from __future__ import annotations

import zlib

import numpy as np

from ._draw import check_size
from .concepts import ConceptKind, check_name

_TABLE = 32  # random tables wrap every 32 cells


class _Canvas:
    """Coordinates, random tables and drawing helpers for one texture render."""

    def __init__(self, name: str, h: int, w: int, rng: np.random.Generator | None):
        self.vary = rng is not None
        self.rng = rng if rng is not None else np.random.default_rng(zlib.crc32(name.encode()))
        k = 64.0 / min(h, w) * (self.rng.uniform(0.85, 1.15) if self.vary else 1.0)
        ox, oy = self.rng.uniform(0, 512, 2) if self.vary else (0.0, 0.0)
        self.px = np.float32(k)  # one output pixel in reference pixels
        self.x = ((np.arange(w, dtype=np.float32) + 0.5) * k + np.float32(ox))[None, :].repeat(h, 0)
        self.y = ((np.arange(h, dtype=np.float32) + 0.5) * k + np.float32(oy))[:, None].repeat(w, 1)

    def col(self, rgb) -> np.ndarray:
        rgb = np.asarray(rgb, dtype=np.float32)
        if self.vary:
            rgb = np.clip(rgb * self.rng.uniform(0.9, 1.1) + self.rng.normal(0, 0.03, 3), 0, 1)
        return rgb.astype(np.float32)

    def inside(self, dist) -> np.ndarray:
        """Antialiased indicator of ``dist < 0`` (distances in reference pixels), shaped for broadcasting."""
        return np.clip(0.5 - dist / self.px, 0.0, 1.0)[..., None]

    def noise(self, cell: float, cell_y: float | None = None) -> np.ndarray:
        """Smooth value noise in [0, 1] with feature size ``cell`` (``cell_y`` vertically, if given)."""
        g = self.rng.random((_TABLE, _TABLE), dtype=np.float32)
        u, v = self.x / cell, self.y / (cell_y or cell)
        iu, iv = np.floor(u), np.floor(v)
        fu, fv = u - iu, v - iv
        fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
        iu, iv = iu.astype(np.int64) % _TABLE, iv.astype(np.int64) % _TABLE
        iu1, iv1 = (iu + 1) % _TABLE, (iv + 1) % _TABLE
        top = g[iv, iu] + (g[iv, iu1] - g[iv, iu]) * fu
        bottom = g[iv1, iu] + (g[iv1, iu1] - g[iv1, iu]) * fu
        return top + (bottom - top) * fv

    def cells(self, cell: float, jitter: float = 0.8, hexagonal: bool = False):
        """Cellular (Worley) pattern: distances to the nearest and second-nearest feature point,
        per-cell random attributes (..., 4) and the offset ``(dx, dy)`` from the nearest point."""
        pts = self.rng.random((_TABLE, _TABLE, 2), dtype=np.float32) * jitter + (1 - jitter) / 2
        attr = self.rng.random((_TABLE, _TABLE, 4), dtype=np.float32)
        row_h = cell * (np.sqrt(3) / 2 if hexagonal else 1.0)
        u, v = self.x / cell, self.y / row_h
        iv0 = np.floor(v).astype(np.int64)
        f1 = np.full(u.shape, np.inf, np.float32)
        f2, near_u, near_v = f1.copy(), np.zeros(u.shape, np.int64), np.zeros(u.shape, np.int64)
        off_x, off_y = np.zeros_like(f1), np.zeros_like(f1)
        for dv in (-1, 0, 1):
            iv = iv0 + dv
            shift = 0.5 * (iv % 2) if hexagonal else 0.0
            iu0 = np.floor(u - shift).astype(np.int64)
            for du in (-1, 0, 1):
                iu = iu0 + du
                tu, tv = iu % _TABLE, iv % _TABLE
                p = pts[tv, tu]
                dx = (u - iu - shift - p[..., 0]) * cell
                dy = (v - iv - p[..., 1]) * row_h
                dist = np.hypot(dx, dy)
                closer = dist < f1
                f2 = np.where(closer, f1, np.minimum(f2, dist))
                f1 = np.where(closer, dist, f1)
                near_u, near_v = np.where(closer, tu, near_u), np.where(closer, tv, near_v)
                off_x, off_y = np.where(closer, dx, off_x), np.where(closer, dy, off_y)
        return f1, f2, attr[near_v, near_u], off_x, off_y


def _mix(a, b, t):
    """Linear blend from ``a`` to ``b``; a 2-D weight map applies to every channel."""
    return a + (b - a) * (t[..., None] if np.ndim(t) == 2 else t)


def _jaguar(c: _Canvas):
    base = _mix(c.col((0.86, 0.55, 0.18)), c.col((0.96, 0.78, 0.42)), c.noise(22))
    f1, _, _, _, _ = c.cells(15)
    r = f1 + 3.0 * (c.noise(3.5) - 0.5)
    base = _mix(base, c.col((0.62, 0.34, 0.1)), c.inside(r - 3.2))
    return _mix(base, c.col((0.12, 0.07, 0.04)), c.inside(np.abs(r - 4.6) - 1.4))


def _leopard(c):
    base = _mix(c.col((0.9, 0.72, 0.38)), c.col((0.97, 0.86, 0.6)), c.noise(18))
    f1, _, _, _, _ = c.cells(9)
    return _mix(base, c.col((0.15, 0.1, 0.05)), c.inside(f1 + 2.0 * (c.noise(3) - 0.5) - 2.4))


def _giraffe(c):
    f1, f2, attr, _, _ = c.cells(17, 0.9)
    patch = c.col((0.6, 0.32, 0.1)) * (0.8 + 0.35 * attr[..., :1])
    return _mix(patch, c.col((0.95, 0.9, 0.75)), c.inside(f2 - f1 + 1.5 * c.noise(4) - 3.2))


def _zebra(c):
    v = c.y / 7.0 + 1.1 * np.sin(c.x / 13.0) + 2.5 * c.noise(26)
    return _mix(c.col((0.96, 0.96, 0.93)), c.col((0.06, 0.06, 0.06)), c.inside((np.abs(v % 1.0 - 0.5) - 0.24) * 7.0))


def _elephant_skin(c):
    base = c.col((0.55, 0.52, 0.5)) * (0.8 + 0.35 * c.noise(12))[..., None]
    wrinkles = 0.5 + 0.5 * np.sin(c.y / 1.6 + 6 * c.noise(9))
    base = base * (0.88 + 0.12 * wrinkles)[..., None]
    f1, f2, _, _, _ = c.cells(9, 0.95)
    return _mix(base, c.col((0.25, 0.23, 0.22)), c.inside(f2 - f1 + 1.2 * c.noise(3) - 1.3))


def _pebbles(c):
    f1, f2, attr, _, _ = c.cells(13, 0.9)
    stone = c.col((0.62, 0.58, 0.5)) * (0.65 + 0.55 * attr[..., :1]) * (1.05 - 0.04 * f1 / 5)[..., None]
    return _mix(stone, c.col((0.2, 0.18, 0.16)), c.inside(f2 - f1 - 2.2))


_BEAN_COLOURS = np.array([(0.9, 0.1, 0.1), (1, 0.55, 0.05), (1, 0.9, 0.15), (0.2, 0.75, 0.2), (0.55, 0.2, 0.7),
                          (1, 0.5, 0.7), (0.95, 0.95, 0.9), (0.15, 0.1, 0.1), (0.3, 0.5, 0.95)], dtype=np.float32)


def _scatter(c, cell, jitter):
    """Randomly turned, randomly coloured items, one per cell: local coordinates, colour, attributes."""
    _, _, attr, dx, dy = c.cells(cell, jitter)
    a = attr[..., 1] * np.pi
    ca, sa = np.cos(a), np.sin(a)
    colour = _BEAN_COLOURS[(attr[..., 0] * len(_BEAN_COLOURS)).astype(np.int64)]
    return ca * dx + sa * dy, ca * dy - sa * dx, colour, attr


def _jellybeans(c):
    lx, ly, colour, _ = _scatter(c, 7.5, 0.6)
    out = _mix(c.col((0.12, 0.07, 0.07)), colour, c.inside((np.hypot(lx / 3.8, ly / 2.6) - 1) * 2.6))
    return _mix(out, np.float32(1.0), 0.8 * c.inside(np.hypot(lx + 1.5, ly + 1.0) - 0.9))


def _confetti(c):
    lx, ly, colour, attr = _scatter(c, 9.0, 0.7)
    piece = np.maximum(np.abs(lx) - 2.6, np.abs(ly) - 1.0) + 9.0 * (attr[..., 2] > 0.8)
    return _mix(c.col((0.96, 0.94, 0.88)), colour, c.inside(piece))


def _polka_dots(c):
    row = np.floor(c.y / 12)
    lx, ly = (c.x + 6 * (row % 2)) % 12 - 6, c.y % 12 - 6
    return _mix(c.col((0.85, 0.1, 0.15)), c.col((0.98, 0.97, 0.95)), c.inside(np.hypot(lx, ly) - 3.3))


def _wood_grain(c):
    v = c.y / 6.5 + 2.5 * c.noise(34) + 0.5 * np.sin(c.x / 21.0)
    ring = (v % 1.0) ** 2.5
    base = _mix(c.col((0.8, 0.57, 0.32)), c.col((0.48, 0.28, 0.1)), ring)
    return base * (0.9 + 0.12 * c.noise(30, 1.2))[..., None]


def _marble(c):
    v = np.sin((c.x + c.y) / 11.0 + 7.0 * c.noise(20) + 2.0 * c.noise(7))
    base = _mix(c.col((0.94, 0.93, 0.91)), c.col((0.85, 0.85, 0.87)), c.noise(15))
    return _mix(base, c.col((0.3, 0.3, 0.36)), np.exp(-np.abs(v) * 5.0))


def _stripes(c):
    v = (c.x + c.y) / np.sqrt(2)
    return _mix(c.col((0.97, 0.97, 0.97)), c.col((0.12, 0.3, 0.8)), c.inside(np.abs(v % 10 - 5) - 2.5))


def _square_wave(c, v, period):
    return c.inside(np.abs(v % period - period / 2) - period / 4)


def _checkerboard(c):
    a, b = _square_wave(c, c.x, 16), _square_wave(c, c.y, 16)
    return _mix(c.col((0.05, 0.05, 0.05)), c.col((0.96, 0.96, 0.96)), a + b - 2 * a * b)


def _zigzag(c):
    v = c.y + 2.0 * np.abs(c.x % 10 - 5)
    return _mix(c.col((0.1, 0.55, 0.55)), c.col((0.98, 0.6, 0.15)), _square_wave(c, v, 9))


def _honeycomb(c):
    f1, f2, _, _, _ = c.cells(12, 0.0, hexagonal=True)
    cell = _mix(c.col((0.98, 0.72, 0.1)), c.col((0.85, 0.5, 0.05)), (f1 / 7.0)[..., None])
    return _mix(cell, c.col((0.45, 0.25, 0.02)), c.inside(f2 - f1 - 1.2))


def _bricks(c):
    row = np.floor(c.y / 8)
    bx = (c.x + 9 * (row % 2)) % 18
    gap = np.minimum(np.minimum(bx, 18 - bx), np.minimum(c.y % 8, 8 - c.y % 8))
    shade = c.rng.random((_TABLE, _TABLE), dtype=np.float32)[
        row.astype(np.int64) % _TABLE, np.floor((c.x + 9 * (row % 2)) / 18).astype(np.int64) % _TABLE]
    brick = c.col((0.7, 0.25, 0.15)) * (0.8 + 0.3 * shade)[..., None]
    return _mix(c.col((0.82, 0.8, 0.74)), brick, c.inside(0.7 - gap))


def _plaid(c):
    out = np.broadcast_to(c.col((0.1, 0.35, 0.2)), c.x.shape + (3,))
    for v in (c.x, c.y):
        out = _mix(out, c.col((0.75, 0.1, 0.12)), 0.55 * c.inside(np.abs(v % 24 - 6) - 4))
        out = _mix(out, c.col((0.95, 0.85, 0.2)), 0.7 * c.inside(np.abs(v % 24 - 17) - 0.8))
    return out


def _scales(c):
    out = np.broadcast_to(c.col((0.15, 0.35, 0.4)), c.x.shape + (3,))
    top = np.floor(c.y / 6)
    for dr in (-1, 0, 1, 2):  # later (lower) rows overlap earlier ones
        r = top + dr
        dist = np.hypot((c.x + 6 * (r % 2)) % 12 - 6, c.y - r * 6)
        scale = _mix(c.col((0.35, 0.72, 0.7)), c.col((0.12, 0.35, 0.4)), np.clip(dist / 8.0, 0, 1)[..., None])
        out = _mix(out, scale, c.inside(dist - 7.5) * (c.y < r * 6 + 1)[..., None])
    return out


def _waves(c):
    v = c.y + 2.5 * np.sin(c.x / 5.0)
    return _mix(c.col((0.75, 0.88, 0.98)), c.col((0.05, 0.25, 0.6)), c.inside(np.abs(v % 8 - 4) - 1.3))


def _crosshatch(c):
    a = c.inside(np.abs((c.x + c.y) / np.sqrt(2) % 7 - 3.5) - 0.7)
    b = c.inside(np.abs((c.x - c.y) / np.sqrt(2) % 7 - 3.5) - 0.7)
    return _mix(c.col((0.93, 0.88, 0.75)), c.col((0.3, 0.2, 0.15)), np.maximum(a, b))


_TEXTURES = {
    "jaguar": _jaguar, "leopard": _leopard, "giraffe": _giraffe, "zebra": _zebra,
    "elephant_skin": _elephant_skin, "pebbles": _pebbles, "jellybeans": _jellybeans, "confetti": _confetti,
    "polka_dots": _polka_dots, "wood_grain": _wood_grain, "marble": _marble, "stripes": _stripes,
    "checkerboard": _checkerboard, "zigzag": _zigzag, "honeycomb": _honeycomb, "bricks": _bricks,
    "plaid": _plaid, "scales": _scales, "waves": _waves, "crosshatch": _crosshatch,
}


def render_texture(name: str, size: int | tuple[int, int], rng: np.random.Generator | None = None) -> np.ndarray:
    """``(H, W, 3)`` float32 picture of texture ``name`` filling the frame.

    ``rng=None`` gives the canonical texture; an rng gives a natural variant of the same texture
    (random offset, +-15 % scale, new random placement of its features, slight colour jitter).
    """
    check_name(name, ConceptKind.TEXTURE)
    h, w = (check_size(s) for s in ((size, size) if np.isscalar(size) else size))
    out = _TEXTURES[name](_Canvas(name, h, w, rng))
    return np.clip(np.broadcast_to(out, (h, w, 3)), 0.0, 1.0).astype(np.float32)
