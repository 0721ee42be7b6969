"""The editing family: removal procedures (guided unlearning and pruning, the no-op anchor, three reference
defences) and rule editors (a constrained rank-one rewrite and fine-tuning). Importing this package registers
them all."""

from .base import DefenderData, Guidance, ImageGuidance, RemovalProcedure, finetune
from .procedures import ChannelLipschitz, FinePruning, Identity, NeuralCleanseUnlearning, Pruning, Unlearning
from .rules import FinetuneRule, RankOneRewrite, RuleEditor

__all__ = ["ChannelLipschitz", "DefenderData", "FinePruning", "FinetuneRule", "Guidance", "Identity", "ImageGuidance",
           "NeuralCleanseUnlearning", "Pruning", "RankOneRewrite", "RemovalProcedure", "RuleEditor", "Unlearning",
           "finetune"]
