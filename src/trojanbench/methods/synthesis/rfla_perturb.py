"""RFLA-Perturb: robust feature-level adversarial patches from a generator (Casper et al. 2022).

Random latents of the patch generator are decoded to patches; the latents and a perturbation of the
generator's intermediate activations are optimised so the patches, pasted onto clean images (of the
source class when given) at random places and sizes under transformation robustness, make the model
predict the target class. Regularisers keep the patch natural: a Gaussian prior on the latent, a
penalty on the activation perturbation, total variation, and the paper's *disguise* term (the patch
alone should not look like the target class, so the patch shows what the model wrongly associates
with it, e.g. a trojan trigger, rather than the class itself).

Output: by default each optimised patch alone, upscaled to the image size (like the options that show
a trigger alone); ``output="pasted"`` shows it pasted large onto a clean image instead.

Casper et al. (2023) describe RFLA-Perturb as perturbing the generator's latents, so the latent moves fastest
(learning rate ``lr * latent_lr_factor`` = 0.03) and the activations barely (``lr`` = 0.001). Chosen on the
positive-control model (``control`` in the zoo), never on the default suite: with the activations at 0.1 and the
latent at 0.05, the patches were generic adversaries (pasted, they flipped 0.99 of clean scenes on the control
and 0.82 on the clean model); with these rates 0.67 against 0.29, the trojan's feature.
"""

from __future__ import annotations

from ...params import InstanceOf, Interval, Options
from ...registry import register_method
from ..base import SynthesisMethod
from ._rfla import patch_generator, perturb_latents, present


@register_method
class RFLAPerturb(SynthesisMethod):
    """Feature-level adversarial patches by perturbing a generator's latents (see module docstring)."""

    name = "rfla_perturb"
    paper = "Casper et al. 2022, Robust Feature-Level Adversaries are Interpretability Tools"
    parameter_constraints = {
        "steps": Interval(int, 1, None),
        "lr": Interval(float, 0, None, closed="neither"),
        "latent_lr_factor": Interval(float, 0, None),
        "per_patch": Interval(int, 1, None),
        "offset_weight": Interval(float, 0, None),
        "tv_weight": Interval(float, 0, None),
        "disguise_weight": Interval(float, 0, None),
        "output": Options({"patch", "pasted"}),
        "generator_path": InstanceOf(str, optional=True),
    }
    quick_params = {"steps": 20}

    def __init__(self, *, steps: int = 60, lr: float = 0.001, latent_lr_factor: float = 30.0, per_patch: int = 2,
                 offset_weight: float = 0.5, tv_weight: float = 1.0, disguise_weight: float = 0.5,
                 output: str = "patch", generator_path: str | None = None):
        self.steps = steps
        self.lr = lr
        self.latent_lr_factor = latent_lr_factor
        self.per_patch = per_patch
        self.offset_weight = offset_weight
        self.tv_weight = tv_weight
        self.disguise_weight = disguise_weight
        self.output = output
        self.generator_path = generator_path

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        patches = perturb_latents(
            target, patch_generator(self.generator_path), target_class, n_images, generator, source_class,
            steps=self.steps, lr=self.lr, latent_lr_factor=self.latent_lr_factor, per_patch=self.per_patch,
            offset_weight=self.offset_weight, tv_weight=self.tv_weight, disguise_weight=self.disguise_weight)
        return present(target, patches, self.output, generator, source_class)
