"""Tasks that score methods against planted ground truth (rediscovery now; localization, removal and
replacement follow)."""

from .rediscovery import make_method, synthesize_for_trojan

__all__ = ["make_method", "synthesize_for_trojan"]
