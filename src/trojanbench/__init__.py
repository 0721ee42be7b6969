"""trojanbench: benchmark interpretability tools on networks with planted trojans.

Plant known flaws (trojans) in a network, hand the network to a tool, and score automatically, against
the planted ground truth, how much the tool's output helps find, fix or replace the flaw
(after Casper et al. 2023, "Red Teaming Deep Neural Networks with Feature Synthesis Tools").
"""

__version__ = "0.1.0"

from .config import TrojanSpec, TrojanSuite, default_trojan_suite, load_trojan_suite  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    MissingExtraError,
    SpecError,
    TrojanbenchError,
    UnknownNameError,
    UnsafeCheckpointError,
)
from .models import LoadedModel, load_model  # noqa: E402
from .audit import audit_model, AuditResult  # noqa: E402

__all__ = [
    "AuditResult",
    "CheckpointError",
    "ConfigError",
    "LoadedModel",
    "MissingExtraError",
    "SpecError",
    "TrojanSpec",
    "TrojanSuite",
    "TrojanbenchError",
    "UnknownNameError",
    "UnsafeCheckpointError",
    "__version__",
    "audit_model",
    "default_trojan_suite",
    "load_model",
    "load_trojan_suite",
]
