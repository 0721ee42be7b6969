"""Language-model trojan rediscovery (TDC 2023's trojan-detection track at laptop scale): trigger-inversion tools,
given the model and a trojan's published target, guess its trigger; scored by recovery against the planted
trigger and by how often the guesses elicit the target (REASR)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...engine.task import Task
from ...registry import register_task
from . import section
from .results import LMRediscoveryResults, load_lm_rediscovery_results
from .task import plan_lm_rediscovery, run_lm_rediscovery


class LMRediscoveryTask(Task):
    name = "lm-rediscovery"
    description = "trigger-inversion tools guess a language model's trojan triggers from their targets (TDC 2023)"
    options = ("model", "executor", "ray_address", "workers", "device")
    results_type = LMRediscoveryResults
    report = section

    def run(self, suite: Any = None, *, out: str | Path, progress=None, **options: Any) -> LMRediscoveryResults:
        return run_lm_rediscovery(suite, out=out, progress=progress, **options)


TASK = register_task(LMRediscoveryTask())

__all__ = ["LMRediscoveryResults", "LMRediscoveryTask", "TASK", "load_lm_rediscovery_results",
           "plan_lm_rediscovery", "run_lm_rediscovery"]
