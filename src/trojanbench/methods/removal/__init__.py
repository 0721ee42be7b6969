"""Removal procedures (family ``"removal"``): guided unlearning and pruning, the no-op anchor and three
reference defences. Importing this package registers them all."""

from .base import DefenderData, Guidance, ImageGuidance, RemovalProcedure, finetune
from .procedures import ChannelLipschitz, FinePruning, Identity, NeuralCleanseUnlearning, Pruning, Unlearning

__all__ = ["ChannelLipschitz", "DefenderData", "FinePruning", "Guidance", "Identity", "ImageGuidance",
           "NeuralCleanseUnlearning", "Pruning", "RemovalProcedure", "Unlearning", "finetune"]
