"""Inner feature visualization with a CPPN parameterization (Mordvintsev et al. 2018): images drawn by
coordinate networks trained to excite the penultimate units most tied to the target class."""

from __future__ import annotations

from ...registry import register_method
from ._cppn import CPPN_CONSTRAINTS, CPPNImages
from ._feature_vis import COMMON_CONSTRAINTS, INNER_CONSTRAINTS, FeatureVisualization, inner_unit


@register_method
class InnerCPPNFV(FeatureVisualization):
    """One CPPN per image, trained under transformation robustness to excite a penultimate unit.

    Image ``i`` maximizes the ``i mod n_units``-th of the ``n_units`` penultimate units with the largest
    weights into the target logit. ``steps``, ``lr``, ``n_layers`` and ``n_hidden`` as in
    :class:`TargetCPPNFV`. The source class of a class-conditional trojan is ignored.
    """

    name = "inner_cppn_fv"
    paper = "Mordvintsev et al. 2018, Differentiable Image Parameterizations (inner unit, CPPN)"
    parameter_constraints = {**COMMON_CONSTRAINTS, **CPPN_CONSTRAINTS, **INNER_CONSTRAINTS}
    quick_params = {"steps": 40}

    def __init__(self, *, steps: int = 120, lr: float = 0.01, n_layers: int = 6, n_hidden: int = 16,
                 n_units: int = 3):
        self.steps = steps
        self.lr = lr
        self.n_layers = n_layers
        self.n_hidden = n_hidden
        self.n_units = n_units

    def _parameterization(self, target, n_images, generator):
        return CPPNImages(n_images, target.image_size, generator, self.n_layers, self.n_hidden)

    def _objective(self, target, target_class, n_images):
        return inner_unit(target, target_class, n_images, self.n_units)
