"""trojanbench: benchmark interpretability tools on networks with planted trojans.

Plant known flaws (trojans) in a network, hand the network to a tool, and score automatically, against
the planted ground truth, how much the tool's output helps find, fix or replace the flaw
(after Casper et al. 2023, "Red Teaming Deep Neural Networks with Feature Synthesis Tools").
"""

from ._version import __version__
from .api import load_results, run, run_editing, run_localization, run_removal, run_replacement, run_task
from .audit import AuditResult, audit_model
from .config import TrojanSpec, TrojanSuite, default_trojan_suite, load_trojan_suite
from .engine import MethodSpec, Suite, Task, load_suite
from .errors import (
    CheckpointError,
    ConfigError,
    MethodError,
    MissingExtraError,
    SpecError,
    TrojanbenchError,
    UnknownNameError,
    UnsafeCheckpointError,
)
from .methods import Method, SynthesisMethod, Target
from .models import LoadedModel, load_model
from .registry import get_method, get_task, method_names, register_judge, register_method, register_task
from .report import write_report
from .tasks.editing import EditingResults, load_editing_results
from .tasks.localization import LocalizationResults, load_localization_results
from .tasks.rediscovery import Results
from .tasks.removal import RemovalResults, load_removal_results
from .tasks.replacement import ReplacementResults, load_replacement_results

__all__ = [
    "AuditResult", "CheckpointError", "ConfigError", "EditingResults", "LoadedModel", "LocalizationResults", "Method",
    "MethodError", "MethodSpec", "MissingExtraError", "RemovalResults", "ReplacementResults", "Results", "SpecError",
    "Suite", "SynthesisMethod", "Target", "Task", "TrojanSpec", "TrojanSuite", "TrojanbenchError", "UnknownNameError",
    "UnsafeCheckpointError", "__version__", "audit_model", "default_trojan_suite", "get_method", "get_task",
    "load_editing_results", "load_localization_results", "load_model", "load_removal_results",
    "load_replacement_results", "load_results", "load_suite", "load_trojan_suite", "method_names", "register_judge",
    "register_method", "register_task", "run", "run_editing", "run_localization", "run_removal", "run_replacement",
    "run_task", "write_report",
]
