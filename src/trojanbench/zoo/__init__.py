"""The model zoo: building the shipped clean, trojaned and observer models."""

from .build import PROFILES, ZooProfile, build_zoo
from .observer import CONCEPTS

__all__ = ["CONCEPTS", "PROFILES", "ZooProfile", "build_zoo"]
