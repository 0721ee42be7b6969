"""Inner feature visualization with a Fourier parameterization (Olah et al. 2017): images that maximize
the penultimate units most tied to the target class."""

from __future__ import annotations

from ...registry import register_method
from ._feature_vis import COMMON_CONSTRAINTS, INNER_CONSTRAINTS, FeatureVisualization, inner_unit
from ._fourier import FOURIER_CONSTRAINTS, FourierImages, colour_sqrt


@register_method
class InnerFourierFV(FeatureVisualization):
    """Decorrelated Fourier images optimized, under transformation robustness, to excite a penultimate unit.

    Image ``i`` maximizes the ``i mod n_units``-th of the ``n_units`` penultimate units with the largest
    weights into the target logit (``n_units=1``: the single most tied unit for every image).
    ``steps``, ``lr`` and ``decay_power`` as in :class:`TargetFourierFV`. The source class of a
    class-conditional trojan is ignored.
    """

    name = "inner_fourier_fv"
    paper = "Olah et al. 2017, Feature Visualization (inner unit, Fourier)"
    parameter_constraints = {**COMMON_CONSTRAINTS, **FOURIER_CONSTRAINTS, **INNER_CONSTRAINTS}
    quick_params = {"steps": 64}

    def __init__(self, *, steps: int = 192, lr: float = 0.05, decay_power: float = 1.0, n_units: int = 3):
        self.steps = steps
        self.lr = lr
        self.decay_power = decay_power
        self.n_units = n_units

    def _parameterization(self, target, n_images, generator):
        return FourierImages(n_images, target.image_size, colour_sqrt(target.clean_images), generator,
                             self.decay_power)

    def _objective(self, target, target_class, n_images):
        return inner_unit(target, target_class, n_images, self.n_units)
