"""Target feature visualization with a Fourier parameterization (Olah et al. 2017): images that
maximize the target logit."""

from __future__ import annotations

from ...registry import register_method
from ._feature_vis import COMMON_CONSTRAINTS, TARGET_CONSTRAINTS, FeatureVisualization, target_logit
from ._fourier import FOURIER_CONSTRAINTS, FourierImages, colour_sqrt


@register_method
class TargetFourierFV(FeatureVisualization):
    """Decorrelated Fourier images optimized, under transformation robustness, to raise the target logit.

    ``steps`` Adam steps at learning rate ``lr``; ``decay_power`` scales the spectrum by
    ``1 / frequency ** decay_power``; ``contrast`` subtracts that multiple of the mean other logit.
    The source class of a class-conditional trojan is ignored.
    """

    name = "target_fourier_fv"
    paper = "Olah et al. 2017, Feature Visualization (target logit, Fourier)"
    parameter_constraints = {**COMMON_CONSTRAINTS, **FOURIER_CONSTRAINTS, **TARGET_CONSTRAINTS}
    quick_params = {"steps": 64}

    def __init__(self, *, steps: int = 192, lr: float = 0.05, decay_power: float = 1.0, contrast: float = 0.0):
        self.steps = steps
        self.lr = lr
        self.decay_power = decay_power
        self.contrast = contrast

    def _parameterization(self, target, n_images, generator):
        return FourierImages(n_images, target.image_size, colour_sqrt(target.clean_images), generator,
                             self.decay_power)

    def _objective(self, target, target_class, n_images):
        return target_logit(target, target_class, self.contrast)
