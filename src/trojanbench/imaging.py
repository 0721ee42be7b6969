"""Image tensors to and from 8-bit pixels, and saving them as PNG files (lossless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[n, 3, H, W]`` floats in [0, 1] to ``[n, H, W, 3]`` uint8."""
    return (images.detach().clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def from_uint8(pixels: np.ndarray) -> torch.Tensor:
    """``[n, H, W, 3]`` uint8 (as stored) to ``[n, 3, H, W]`` floats in [0, 1]: the inverse of :func:`to_uint8`."""
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255


def png_grid(pixels: np.ndarray, *, columns: int = 10, gap: int = 2) -> np.ndarray:
    """``[n, H, W, 3]`` uint8 images laid out row by row, ``columns`` wide, with white gaps."""
    n, h, w, _ = pixels.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    canvas = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = pixels[i]
    return canvas


def save_png_grid(images: torch.Tensor, path: str | Path, *, columns: int = 10, gap: int = 2) -> Path:
    """Save a batch as one PNG grid (white gaps), creating parent folders; returns the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(png_grid(to_uint8(images), columns=columns, gap=gap)).save(path)
    return path
