"""The model zoo: building the shipped clean, trojaned and observer models.

``ZOO_PARTS`` is defined here, without torch, for the command line; the rest is imported when first used.
"""

from .._lazy import lazy_exports

ZOO_PARTS = ("clean", "trojaned", "observer", "generator", "embedder", "robust", "detectors", "control", "lm")

__getattr__ = lazy_exports(__name__, {".build": ["PROFILES", "ZooProfile", "build_zoo"], ".observer": ["CONCEPTS"]})
__all__ = ["CONCEPTS", "PROFILES", "ZOO_PARTS", "ZooProfile", "build_zoo"]
