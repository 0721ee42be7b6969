"""Trojan rediscovery (Casper et al. 2023): synthesis tools, given only the model and a trojan's target class,
make images meant to reveal the trigger; automatic judges score them by an 8-option multiple-choice test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...engine.task import Task
from ...registry import register_task
from . import section
from .results import Results, load_results
from .synthesis import make_method, synthesize_for_trojan
from .task import plan_run, run_rediscovery


class RediscoveryTask(Task):
    """The rediscovery task (the default of ``trojanbench run``)."""

    name = "rediscovery"
    description = "synthesis tools draw each trojan's trigger from the model alone; judged by 8-option multiple choice"
    options = ("executor", "ray_address", "workers", "model", "data", "image_size", "judges",
               "judge_settings")
    document_key = None  # its part of results.json is the document's top level (format trojanbench-results/1)
    results_type = Results
    report = section

    def run(self, suite: Any = None, *, out: str | Path, progress=None, **options: Any) -> Results:
        return run_rediscovery(suite, out=out, progress=progress, **options)

    def summary(self, results: Results) -> str:
        text = "\n\n".join(results.table(judge, failures=judge == results.judges[-1]) for judge in results.judges)
        closing = [line for line in (results.agreement_line(),) if line] + results.verdict_lines()
        parts = [text] + ["\n".join(lines) for lines in (closing, results.diagnostic_lines()) if lines]
        return "\n\n".join(parts)


TASK = register_task(RediscoveryTask())

__all__ = ["RediscoveryTask", "Results", "TASK", "load_results", "make_method", "plan_run", "run_rediscovery",
           "synthesize_for_trojan"]
