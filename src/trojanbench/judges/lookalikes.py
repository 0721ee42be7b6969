"""How alike two options look, measured on their pictures alone (no judge involved): the plausible distractors of a
question are the closest in look, and a near-duplicate, an option a person could not tell from the true trigger, is
never one.

* **colour**: the mean RGB histogram of a few renders (pixels of the plain backdrop left out); half its L1 distance,
  in [0, 1], orders the look-alikes (Casper et al. 2023 chose distractors a person could confuse with the trigger).
* **figures** (icons, secondary objects): each picture's figure cropped to its bounding box and resized to
  :data:`FIGURE_SIDE` pixels (so a user's image with another margin or size compares like the built-in one); the
  distance is the share of figure pixels whose colour differs visibly (by more than :data:`VISIBLE_DIFFERENCE` in a
  channel), over the closest pair of renders.
Icons closer than :data:`NEAR_DUPLICATE` are near-duplicates: the threshold sits between what was measured on the
built-in icons and on copies of them saved as a user's image would be (``python benchmarks/lookalikes.py`` prints
both): the closest two built-in icons (smiley and frowny) are 0.117 apart, a copy at another size, margin or tint is
at most 0.067 from its original. Only icons are checked: secondary objects are always built-in, and a texture is a
family of renders whose colours differ from one render to the next as much as two textures do (measured: a saved
render of `waves` is 0.29 to 0.43 from its own concept in colour, confetti and marble 0.21), so a texture copy cannot
be told from a neighbour by its pictures alone.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from ..world.render import BACKDROP

HISTOGRAM_BINS = 4
FIGURE_SIDE = 32
VISIBLE_DIFFERENCE = 0.3
FIGURE_BLUR = 1.0
NEAR_DUPLICATE = 0.08
"""Icons whose :func:`look_distance` is below this are near-duplicates."""
_BACKDROP = np.asarray(BACKDROP, dtype=np.float32)


def _off_backdrop(picture: np.ndarray, tolerance: float = 0.02) -> np.ndarray:
    return np.abs(picture - _BACKDROP).max(-1) > tolerance


def colour_histogram(picture: np.ndarray) -> np.ndarray:
    """Normalised RGB histogram (:data:`HISTOGRAM_BINS` per channel) of the pixels that are not the plain backdrop."""
    pixels = picture.reshape(-1, 3)
    keep = _off_backdrop(pixels)
    pixels = pixels[keep] if keep.any() else pixels
    bins = np.minimum((pixels * HISTOGRAM_BINS).astype(int), HISTOGRAM_BINS - 1)
    flat = (bins[:, 0] * HISTOGRAM_BINS + bins[:, 1]) * HISTOGRAM_BINS + bins[:, 2]
    counts = np.bincount(flat, minlength=HISTOGRAM_BINS ** 3).astype(np.float64)
    return counts / counts.sum()


def colour_distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Half the L1 distance of the mean colour histograms of two options' renders (0: same colours, 1: disjoint)."""
    mean_a, mean_b = (np.mean([colour_histogram(p) for p in renders], axis=0) for renders in (a, b))
    return 0.5 * float(np.abs(mean_a - mean_b).sum())


def _figure(picture: np.ndarray) -> np.ndarray:
    """The picture's figure (what is not backdrop) cropped to its bounding box, ``(FIGURE_SIDE, FIGURE_SIDE, 3)``."""
    rows, cols = np.nonzero(_off_backdrop(picture))
    if rows.size:
        picture = picture[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    tensor = torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1)[None]
    resized = torch.nn.functional.interpolate(tensor, size=(FIGURE_SIDE, FIGURE_SIDE), mode="bilinear",
                                              antialias=True, align_corners=False)
    return gaussian_blur(resized, 5, FIGURE_BLUR)[0].permute(1, 2, 0).numpy()


def figure_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the two figures' pixels whose colour differs by more than :data:`VISIBLE_DIFFERENCE` in a channel."""
    fig_a, fig_b = _figure(a), _figure(b)
    union = _off_backdrop(fig_a, 0.05) | _off_backdrop(fig_b, 0.05)
    visible = np.abs(fig_a - fig_b).max(-1) > VISIBLE_DIFFERENCE
    return float(visible[union].mean()) if union.any() else 0.0


def look_distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """How unlike two figures look, from a few renders of each (``(H, W, 3)`` in [0, 1]): the figure distance of
    the closest pair of renders."""
    return min(figure_distance(x, y) for x in a for y in b)
