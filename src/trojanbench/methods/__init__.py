"""Interpretability methods by family, their contract, and the baselines."""

from .attribution import AttributionMethod
from .base import Method, SynthesisMethod, check_images
from .params import Boolean, Interval, Options
from .target import Target, natural_patch_pool

__all__ = ["AttributionMethod", "Boolean", "Interval", "Method", "Options", "SynthesisMethod", "Target", "check_images",
           "natural_patch_pool"]
