"""Building blocks shared by synthesis tools: sampling clean images, pasting patches, robustness transforms.

All are batched and differentiable with respect to the images or patches they are given, and draw
their randomness only from the ``torch.Generator`` passed in (so a method is deterministic under a seed).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..target import Target


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def sample_clean(target: Target, n: int, generator: torch.Generator, source_class: int | None = None) -> torch.Tensor:
    """``n`` clean images of the auditor's set (of ``source_class`` only, when given), with replacement."""
    pool = target.clean_images if source_class is None else target.clean_images[target.clean_labels == source_class]
    if len(pool) == 0:
        pool = target.clean_images
    return pool[torch.randint(len(pool), (n,), generator=generator)]


def paste_patches(images: torch.Tensor, patches: torch.Tensor, generator: torch.Generator,
                  scale: tuple[float, float] = (0.2, 0.35), mask: torch.Tensor | None = None) -> torch.Tensor:
    """Paste ``patches`` (``[B or 1, 3, p, p]``) onto ``images`` (``[B, 3, H, W]``) at random positions and
    sizes (side = ``scale`` × image side), differentiably. ``mask`` (``[B or 1, 1, p, p]`` in [0, 1]) is the
    patch's opacity (default: opaque)."""
    batch = images.shape[0]
    patches = patches.expand(batch, -1, -1, -1)
    alpha = torch.ones_like(patches[:, :1]) if mask is None else mask.expand(batch, -1, -1, -1)
    side = _uniform(batch, *scale, generator)
    # centre of the patch in normalised coordinates [-1, 1], keeping the patch inside the image
    centre = (1 - side)[:, None] * (2 * torch.rand(batch, 2, generator=generator) - 1)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / side
    theta[:, :, 2] = -centre / side[:, None]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    placed = F.grid_sample(torch.cat([patches, alpha], 1), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    rgb, opacity = placed[:, :3], placed[:, 3:]
    return opacity * rgb + (1 - opacity) * images


def random_transform(images: torch.Tensor, generator: torch.Generator, *, jitter: float = 0.06,
                     scale: tuple[float, float] = (0.9, 1.1), degrees: float = 10.0) -> torch.Tensor:
    """Random translation (fraction of the side), scale and rotation per image, differentiably, with
    reflected borders: the transformation robustness of feature visualization (Olah et al. 2017)."""
    batch = images.shape[0]
    angle = _uniform(batch, -degrees, degrees, generator) * math.pi / 180
    zoom = _uniform(batch, *scale, generator)
    shift = _uniform(2 * batch, -2 * jitter, 2 * jitter, generator).view(batch, 2)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = torch.cos(angle) / zoom
    theta[:, 0, 1] = -torch.sin(angle) / zoom
    theta[:, 1, 0] = torch.sin(angle) / zoom
    theta[:, 1, 1] = torch.cos(angle) / zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
