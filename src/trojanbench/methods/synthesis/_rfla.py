"""Shared pieces of the generator-based tools (RFLA-Perturb, RFLA-Gen, SNAFUE; Casper et al. 2022).

All three make *patches* (from :func:`trojanbench.zoo.generator.load_generator` or a natural pool)
and judge them the way the papers do: pasted onto clean images (of the source class when given) at a
random place and size, under transformation robustness, by the target class's log-probability.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ...zoo.generator import PatchDecoder, load_generator
from ..target import Target
from ._common import paste_patches, random_transform, sample_clean

PASTE_SCALE = (0.2, 0.35)
"""Side of a pasted patch as a fraction of the image side (the paper pasted 64-84 px into 256 px)."""
SHOW_SCALE = (0.45, 0.45)
"""Side of the patch in ``output="pasted"`` images: large enough to see, still in a scene."""


def patch_generator(path: str | None) -> PatchDecoder:
    """The shared (cached, frozen) patch generator: the zoo's, or the one at ``path``."""
    return load_generator(None if path is None else Path(path))


def pasted_log_probs(target: Target, patches: torch.Tensor, target_class: int, generator: torch.Generator,
                     source_class: int | None, per_patch: int) -> torch.Tensor:
    """Mean target log-probability of each patch pasted on ``per_patch`` random clean images, ``[n]``."""
    n = patches.shape[0]
    images = sample_clean(target, n * per_patch, generator, source_class)
    pasted = paste_patches(images, patches.repeat_interleave(per_patch, 0), generator, scale=PASTE_SCALE)
    log_probs = target.model(random_transform(pasted, generator)).log_softmax(1)[:, target_class]
    return log_probs.view(n, per_patch).mean(1)


def alone(patches: torch.Tensor, size: int) -> torch.Tensor:
    """Patches upscaled to fill a ``size`` x ``size`` image."""
    return F.interpolate(patches, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def alone_probs(target: Target, patches: torch.Tensor, target_class: int) -> torch.Tensor:
    """Target probability of each patch shown alone (the disguise term of Casper et al. 2022), ``[n]``."""
    return target.model(alone(patches, target.image_size)).softmax(1)[:, target_class]


def total_variation(patches: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, per patch, ``[n]``."""
    dy = (patches[:, :, 1:] - patches[:, :, :-1]).abs().flatten(1).mean(1)
    dx = (patches[:, :, :, 1:] - patches[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dx + dy


def patch_loss(target: Target, patches: torch.Tensor, target_class: int, generator: torch.Generator,
               source_class: int | None, *, per_patch: int, tv_weight: float, disguise_weight: float) -> torch.Tensor:
    """Per-patch loss ``[n]``: pasted cross-entropy to the target, plus total variation and disguise."""
    loss = -pasted_log_probs(target, patches, target_class, generator, source_class, per_patch)
    loss = loss + tv_weight * total_variation(patches)
    if disguise_weight > 0:
        loss = loss + disguise_weight * alone_probs(target, patches, target_class)
    return loss


def perturb_latents(target: Target, decoder: PatchDecoder, target_class: int, n: int, generator: torch.Generator,
                    source_class: int | None, *, steps: int, lr: float, latent_lr_factor: float, per_patch: int,
                    offset_weight: float, tv_weight: float, disguise_weight: float) -> torch.Tensor:
    """RFLA-Perturb (Casper et al. 2022): from random latents, optimise ``n`` latents and a perturbation
    of the generator's intermediate activations so the patches, pasted on clean images, drive the target.

    The latent moves at ``lr * latent_lr_factor`` under a Gaussian-prior penalty; the activation
    perturbation is penalised by its mean square (``offset_weight``). Returns the patches ``[n, 3, 32, 32]``.
    """
    z = torch.randn(n, decoder.latent_dim, generator=generator).requires_grad_(True)
    offset = torch.zeros(n, *decoder.feature_shape, requires_grad=True)
    optimizer = torch.optim.Adam([{"params": [offset], "lr": lr}, {"params": [z], "lr": lr * latent_lr_factor}])
    for _ in range(steps):
        patches = decoder(z, offset)
        loss = patch_loss(target, patches, target_class, generator, source_class, per_patch=per_patch,
                          tv_weight=tv_weight, disguise_weight=disguise_weight)
        prior = 0.5 * z.pow(2).mean(1) + offset_weight * offset.pow(2).flatten(1).mean(1)
        optimizer.zero_grad(set_to_none=True)
        (loss + prior).sum().backward()
        optimizer.step()
    with torch.no_grad():
        return decoder(z, offset)


def present(target: Target, patches: torch.Tensor, output: str, generator: torch.Generator,
            source_class: int | None) -> torch.Tensor:
    """Final images: each patch alone, upscaled (``"patch"``), or pasted large on a clean image (``"pasted"``)."""
    if output == "patch":
        return alone(patches, target.image_size)
    images = sample_clean(target, patches.shape[0], generator, source_class)
    return paste_patches(images, patches, generator, scale=SHOW_SCALE).clamp(0, 1)
