"""trojanbench: benchmark interpretability tools on networks with planted trojans.

Plant known flaws (trojans) in a network, hand the network to a tool, and score automatically, against
the planted ground truth, how much the tool's output helps find, fix or replace the flaw
(after Casper et al. 2023, "Red Teaming Deep Neural Networks with Feature Synthesis Tools").

The public names below are imported when first used (PEP 562), so that ``import trojanbench`` and
``trojanbench --help`` do not pay for torch until something needs it.
"""

from __future__ import annotations

from ._lazy import lazy_exports
from ._version import __version__ as __version__

_EXPORTS = {
    ".api": ["check_judges", "load_results", "run", "run_editing", "run_lm_rediscovery", "run_lm_removal",
             "run_localization", "run_removal", "run_replacement", "run_task"],
    ".audit": ["AuditResult", "audit_model"],
    ".config": ["TrojanSpec", "TrojanSuite", "default_trojan_suite", "load_trojan_suite"],
    ".data": ["ImageFolderData"],
    ".engine": ["MethodSpec", "Suite", "Task", "load_suite"],
    ".errors": ["CheckpointError", "ConfigError", "DataError", "MethodError", "MissingExtraError", "SpecError",
                "TrojanbenchError", "UnknownNameError", "UnsafeCheckpointError"],
    ".methods": ["Method", "SynthesisMethod", "Target"],
    ".models": ["LoadedModel", "load_model"],
    ".registry": ["get_method", "get_task", "method_names", "register_judge", "register_method", "register_task"],
    ".report": ["write_report"],
    ".tasks.editing": ["EditingResults", "load_editing_results"],
    ".tasks.lm_rediscovery": ["LMRediscoveryResults", "load_lm_rediscovery_results"],
    ".tasks.lm_removal": ["LMRemovalResults"],
    ".tasks.localization": ["LocalizationResults", "load_localization_results"],
    ".tasks.rediscovery": ["Results"],
    ".tasks.removal": ["RemovalResults", "load_removal_results"],
    ".tasks.replacement": ["ReplacementResults", "load_replacement_results"],
    ".trojans.implant": ["implant_checkpoint"],
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted([*(name for names in _EXPORTS.values() for name in names), "__version__"])
