"""RFLA-Gen: fine-tune the patch generator itself into a generator of adversarial patches
(Casper et al. 2022; the generator-tuning variant benchmarked by Casper et al. 2023).

A copy of the patch generator (all its layers, or only the last ``"last"`` ones) is trained so that
patches decoded from *fresh random latents*, pasted onto clean images (of the source class when given)
under transformation robustness, make the model predict the target class. An anchor term (mean squared pixel difference) keeps its
outputs close to the original generator's for the same latents (a natural-image prior), beside total
variation and the disguise term of RFLA-Perturb. The shipped generator is never modified.

Output: patches of ``n_images`` new random latents, alone and upscaled (``output="pasted"``: pasted
large onto clean images).

Casper et al.'s recipe and most hyperparameters are not public; the settings here (all layers at lr 2e-3 for 60
steps, the anchor, total variation and disguise weights) are this package's, checked on the positive-control model
(``control`` in the zoo) and never tuned on the default suite.
"""

from __future__ import annotations

import copy

import torch

from ...params import InstanceOf, Interval, Options
from ...registry import register_method
from ..base import SynthesisMethod
from ._rfla import patch_generator, patch_loss, present


@register_method
class RFLAGen(SynthesisMethod):
    """Fine-tune a generator so random latents give adversarial patches (see module docstring)."""

    name = "rfla_gen"
    paper = "Casper et al. 2022, Robust Feature-Level Adversaries are Interpretability Tools"
    parameter_constraints = {
        "steps": Interval(int, 1, None),
        "lr": Interval(float, 0, None, closed="neither"),
        "batch_patches": Interval(int, 1, None),
        "per_patch": Interval(int, 1, None),
        "layers": Options({"all", "last"}),
        "anchor_weight": Interval(float, 0, None),
        "tv_weight": Interval(float, 0, None),
        "disguise_weight": Interval(float, 0, None),
        "output": Options({"patch", "pasted"}),
        "generator_path": InstanceOf(str, optional=True),
    }
    quick_params = {"steps": 20}

    def __init__(self, *, steps: int = 60, lr: float = 2e-3, batch_patches: int = 12, per_patch: int = 2,
                 layers: str = "all", anchor_weight: float = 10.0, tv_weight: float = 1.0,
                 disguise_weight: float = 0.5, output: str = "patch", generator_path: str | None = None):
        self.steps = steps
        self.lr = lr
        self.batch_patches = batch_patches
        self.per_patch = per_patch
        self.layers = layers
        self.anchor_weight = anchor_weight
        self.tv_weight = tv_weight
        self.disguise_weight = disguise_weight
        self.output = output
        self.generator_path = generator_path

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        original = patch_generator(self.generator_path)
        tuned = copy.deepcopy(original).eval()  # eval: batch-norm statistics stay those of natural patches
        trained = list(tuned.last_layers()) if self.layers == "last" else list(tuned.parameters())
        for parameter in trained:
            parameter.requires_grad_(True)
        optimizer = torch.optim.Adam(trained, lr=self.lr)
        for _ in range(self.steps):
            z = torch.randn(self.batch_patches, tuned.latent_dim, generator=generator)
            patches = tuned(z)
            loss = patch_loss(target, patches, target_class, generator, source_class, per_patch=self.per_patch,
                              tv_weight=self.tv_weight, disguise_weight=self.disguise_weight).mean()
            if self.anchor_weight > 0:
                with torch.no_grad():
                    natural = original(z)
                loss = loss + self.anchor_weight * (patches - natural).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            patches = tuned(torch.randn(n_images, tuned.latent_dim, generator=generator))
        return present(target, patches, self.output, generator, source_class)
