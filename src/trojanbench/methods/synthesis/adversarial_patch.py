"""Adversarial patch (Brown et al. 2017): a universal patch that turns any image it is pasted on into a class."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...params import Interval, Options
from ...registry import register_method
from ...world.render import BACKDROP
from ..base import SynthesisMethod
from ._common import paste_patches, random_transform, sample_clean
from ._trigger_inversion import DISPLAYS, count_triggers

_SCALE = (0.2, 0.35)
"""Side of the pasted patch as a fraction of the image side, during optimization."""
_ALONE_FRACTION = 0.6
"""Side of the patch shown alone on grey, as a fraction of the image (as the world's isolated icons)."""
_PATCH_FRACTION = 20 / 64
"""Default side of the patch's own pixels as a fraction of the image side: 20 px at 64 px, 70 px at 224 px."""


@register_method
class AdversarialPatch(SynthesisMethod):
    """Optimize patches (sigmoid of free logits) that maximize the target's log-probability in expectation
    over clean images (of the source class when given), positions, sizes (``0.2``-``0.35`` of the image side)
    and small rotations (Brown et al.'s expectation over transformations).

    Several patches are optimized in one batch from different random initializations, each pasted on
    ``batch_size`` fresh clean images per step. ``display`` chooses the output images: ``"both"`` (default)
    shows each patch twice, alone and enlarged on plain light grey (60 % of the side, like the world's
    isolated icons) and pasted at the largest training size on a clean image; ``"trigger"`` or ``"applied"``
    shows one view of one patch per image.

    Brown et al. train one patch by expectation over images, places, scales and rotations and show the patch
    itself. Laptop-scale departures (recorded with the cell's parameters): several patches from different
    initializations, ``steps`` Adam steps on ``batch_size`` images each, a patch of 20/64 of the image side in pixels
    (20 px at 64 px) pasted at 20-35 % of the side.

    Parameters
    ----------
    steps : optimization steps (Adam on the patch logits).
    batch_size : clean images per patch per step.
    lr : Adam learning rate.
    patch_size : side of the patch in pixels (``None``: 20/64 of the image side).
    display : ``"both"``, ``"trigger"`` or ``"applied"`` (see above).
    """

    name = "adversarial_patch"
    paper = "Brown et al. 2017, Adversarial Patch"
    parameter_constraints = {
        "steps": Interval(int, 1, None),
        "batch_size": Interval(int, 1, None),
        "lr": Interval(float, 0, None, closed="neither"),
        "patch_size": Interval(int, 2, None, optional=True),
        "display": Options(DISPLAYS),
    }
    quick_params = {"steps": 20}

    def __init__(self, *, steps: int = 60, batch_size: int = 6, lr: float = 0.1, patch_size: int | None = None,
                 display: str = "both"):
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.patch_size = patch_size
        self.display = display

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        patches = self._optimize(target, target_class, count_triggers(n_images, self.display), generator,
                                 source_class)
        with torch.no_grad():
            views = []
            if self.display in ("both", "trigger"):
                views.append(_alone_on_grey(patches, target.image_size))
            if self.display in ("both", "applied"):
                clean = sample_clean(target, len(patches), generator, source_class)
                views.append(paste_patches(clean, patches, generator, scale=(_SCALE[1], _SCALE[1])))
            return torch.stack(views, 1).flatten(0, 1)[:n_images].clamp(0, 1)

    def _optimize(self, target, target_class, n_patches, generator, source_class) -> torch.Tensor:
        """``n_patches`` optimized patches ``[n, 3, p, p]`` in [0, 1]."""
        size = self.patch_size or max(2, round(_PATCH_FRACTION * target.image_size))
        logits = (torch.rand(n_patches, 3, size, size, generator=generator) * 4 - 2).requires_grad_()
        optimizer = torch.optim.Adam([logits], lr=self.lr)
        for _ in range(self.steps):
            copies = logits.sigmoid().repeat_interleave(self.batch_size, 0)
            copies = random_transform(copies, generator, jitter=0.0, scale=(1.0, 1.0), degrees=15.0)
            clean = sample_clean(target, n_patches * self.batch_size, generator, source_class)
            scores = target.model(paste_patches(clean, copies, generator, scale=_SCALE)).log_softmax(1)
            optimizer.zero_grad()
            (-scores[:, target_class].sum() / self.batch_size).backward()
            optimizer.step()
        return logits.detach().sigmoid()


def _alone_on_grey(patches: torch.Tensor, image_size: int) -> torch.Tensor:
    """Patches enlarged to ``_ALONE_FRACTION`` of the image side, centred on the world's light grey."""
    side = round(_ALONE_FRACTION * image_size)
    start = (image_size - side) // 2
    canvas = torch.tensor(BACKDROP, dtype=patches.dtype).view(1, 3, 1, 1).repeat(len(patches), 1, image_size,
                                                                                  image_size)
    canvas[:, :, start:start + side, start:start + side] = F.interpolate(patches, size=(side, side),
                                                                          mode="bilinear", align_corners=False)
    return canvas
