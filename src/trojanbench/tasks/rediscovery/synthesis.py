"""Trojan rediscovery (Casper et al. 2023): a synthesis method, given only the model and a trojan's
target class (and source class for class-conditional trojans), makes images meant to reveal the trigger."""

from __future__ import annotations

from typing import Any

import torch

from ...config import TrojanSpec
from ...methods import SynthesisMethod, Target
from ...registry import make_method_of


def make_method(name: str, params: dict[str, Any] | None = None, *, quick: bool = False) -> SynthesisMethod:
    """Instantiate a registered (or ``module:Class``) synthesis method with ``params`` over its defaults
    (over its ``quick_params`` when ``quick``), and validate them."""
    return make_method_of(name, params, SynthesisMethod, "a synthesis method", quick=quick)


def synthesize_for_trojan(method: SynthesisMethod, target: Target, trojan: TrojanSpec, *, n_images: int = 10,
                          seed: int = 0) -> torch.Tensor:
    """Run ``method`` for one trojan: target class, source class if class-conditional; only an oracle
    is handed the trigger itself."""
    if method.is_oracle:
        method = method.with_ground_truth(trojan)
    return method.synthesize(target, trojan.target, n_images, seed, source_class=trojan.source)
