"""Interpretability methods by family, their contract, and the baselines."""

from .attribution import AttributionMethod
from .base import Method, SynthesisMethod, check_images
from ..params import Boolean, InstanceOf, Interval, Options
from .replacement import FitData, ReplacementMethod, ReplacementModel
from .target import Target, natural_patch_pool

__all__ = ["AttributionMethod", "Boolean", "FitData", "InstanceOf", "Interval", "Method", "Options",
           "ReplacementMethod", "ReplacementModel", "SynthesisMethod", "Target", "check_images", "natural_patch_pool"]
