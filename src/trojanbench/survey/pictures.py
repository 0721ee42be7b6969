"""The pictures a participant sees, as PNG bytes: a tool's images laid out as a grid, each option alone,
and an attention check's plain renders of its concept. Deterministic, so the same item always looks the same."""

from __future__ import annotations

import functools
import io

import numpy as np

from ..judges.questions import VIEW_SIZE, option_picture
from ..imaging import png_grid
from ..tasks.rediscovery.store import CellRow, RediscoveryStore

GRID_COLUMNS, GRID_GAP = 5, 4
ATTENTION_RENDERS = 10


def png_bytes(pixels: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 array as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _uint8(picture: np.ndarray) -> np.ndarray:
    return (np.clip(picture, 0, 1) * 255 + 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=1024)
def option_png(option: str, kind: str) -> bytes:
    """One option's picture, drawn as the report draws it (the option's first render)."""
    return png_bytes(_uint8(option_picture(option, kind, VIEW_SIZE, np.random.default_rng(0))))


def cell_png(results: RediscoveryStore, row: CellRow) -> bytes:
    """A finished cell's images as a grid of :data:`GRID_COLUMNS` columns."""
    return png_bytes(png_grid(results.load_images(row), columns=GRID_COLUMNS, gap=GRID_GAP))


@functools.lru_cache(maxsize=64)
def attention_png(concept: str, kind: str) -> bytes:
    """Plain renders of ``concept`` laid out like a tool's images; the first is exactly its option picture."""
    renders = [_uint8(option_picture(concept, kind, VIEW_SIZE, np.random.default_rng(i)))
               for i in range(ATTENTION_RENDERS)]
    return png_bytes(png_grid(np.stack(renders), columns=GRID_COLUMNS, gap=GRID_GAP))
