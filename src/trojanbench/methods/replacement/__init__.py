"""The replacement family: concept-linear and concept-tree replacements, pruned subnetworks (magnitude,
attribution, random) and a distilled student. Importing this package registers them all."""

from .base import (BudgetError, ConstantPredictor, FitData, NetworkReplacement, ReplacementMethod, ReplacementModel,
                   count_nonzero_parameters)
from .concepts import ConceptLinear, ConceptTree
from .networks import AttributionPruning, DistilledStudent, MagnitudePruning, RandomPruning

__all__ = ["AttributionPruning", "BudgetError", "ConceptLinear", "ConceptTree", "ConstantPredictor",
           "DistilledStudent", "FitData", "MagnitudePruning", "NetworkReplacement", "RandomPruning",
           "ReplacementMethod", "ReplacementModel", "count_nonzero_parameters"]
