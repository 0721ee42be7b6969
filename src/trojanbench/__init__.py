"""trojanbench: benchmark interpretability tools on networks with planted trojans.

Plant known flaws (trojans) in a network, hand the network to a tool, and score automatically, against
the planted ground truth, how much the tool's output helps find, fix or replace the flaw
(after Casper et al. 2023, "Red Teaming Deep Neural Networks with Feature Synthesis Tools").
"""

__version__ = "0.1.0"

from .audit import AuditResult, audit_model  # noqa: E402
from .config import TrojanSpec, TrojanSuite, default_trojan_suite, load_trojan_suite  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    MethodError,
    MissingExtraError,
    SpecError,
    TrojanbenchError,
    UnknownNameError,
    UnsafeCheckpointError,
)
from .methods import Method, SynthesisMethod, Target  # noqa: E402
from .models import LoadedModel, load_model  # noqa: E402
from .registry import get_method, method_names, register_method  # noqa: E402
from .report import write_report  # noqa: E402
from .runner import (  # noqa: E402
    EditingResults,
    LocalizationResults,
    MethodSpec,
    RemovalResults,
    ReplacementResults,
    Results,
    Suite,
    load_editing_results,
    load_localization_results,
    load_removal_results,
    load_replacement_results,
    load_results,
    load_suite,
    run,
    run_editing,
    run_localization,
    run_removal,
    run_replacement,
)

__all__ = [
    "AuditResult", "CheckpointError", "ConfigError", "EditingResults", "LoadedModel", "LocalizationResults", "Method",
    "MethodError", "MethodSpec", "MissingExtraError", "RemovalResults", "ReplacementResults", "Results", "SpecError",
    "Suite", "SynthesisMethod", "Target", "TrojanSpec", "TrojanSuite", "TrojanbenchError", "UnknownNameError",
    "UnsafeCheckpointError", "__version__", "audit_model", "default_trojan_suite", "get_method",
    "load_editing_results", "load_localization_results", "load_model", "load_removal_results",
    "load_replacement_results", "load_results", "load_suite", "load_trojan_suite", "method_names", "register_method",
    "run", "run_editing", "run_localization", "run_removal", "run_replacement", "write_report",
]
