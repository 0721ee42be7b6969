"""The Python API of runs: any registered task by name, and one function per built-in task.

Each runs its task into ``out`` (resuming what is there), then, with ``report``, writes the report and exports of
the whole folder, and returns the task's results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .registry import get_task, load_plugins


def run_task(task: str, suite: Any = None, *, out: str | Path = "trojanbench-results",
             progress: bool | Callable[[int, int, Any], None] = False, report: bool = True,
             threads: int | None = None, retry_failed: bool = False, **options: Any) -> Any:
    """Run the registered task ``task`` (its shipped suite unless ``suite`` names one) and return its results.

    ``options`` are the task's run options (``quick``, ``methods``, ``trojans``, ``seeds``, ``plugins`` and the
    task's own, e.g. ``budgets``); ``progress=True`` shows the progress display the command line shows (on stderr),
    a callable ``progress(done, total, cell)`` is called after each cell instead. ``threads``: torch
    threads per worker (default 1: see :mod:`trojanbench.engine.threads`); ``retry_failed``: recompute every
    failed cell, not only those that failed transiently (see :mod:`trojanbench.engine.loop`).
    """
    from .engine.loop import retrying_failed
    from .engine.threads import resolve_threads, torch_threads
    from .progress import make_progress

    load_plugins(options.get("plugins", ()))
    chosen = get_task(task)
    given = {k: v for k, v in options.items() if v is not None}
    chosen.check_options(given)
    threads = resolve_threads(threads)
    display = make_progress(threads=threads) if progress is True else None  # owned here, closed here
    try:
        with torch_threads(threads), retrying_failed(retry_failed):
            results = chosen.run(suite, out=out, progress=display if progress is True else progress or None,
                                 **given)
    finally:
        if display is not None:
            display.close()
    if report:
        from .report import write_report

        write_report(out)
    return results


def run(suite: Any = None, **options: Any):
    """The rediscovery task (the default benchmark): see :func:`run_task`; ``executor`` (``local``, ``processes``
    or ``ray``) and ``ray_address`` choose where cells run; ``model``, ``data`` (your image folder), ``judges``
    and ``judge_settings`` (e.g. ``{"clip": {"weights": FILE}}``) replace or add to the suite's."""
    return run_task("rediscovery", suite, **options)


def run_localization(suite: Any = None, **options: Any):
    """The localization task: see :func:`run_task`."""
    return run_task("localization", suite, **options)


def run_removal(suite: Any = None, **options: Any):
    """The removal task (tool guidance read from the rediscovery results in ``out``): see :func:`run_task`;
    ``budgets`` replaces the suite's defender data budgets."""
    return run_task("removal", suite, **options)


def run_editing(suite: Any = None, **options: Any):
    """The editing task: see :func:`run_task`."""
    return run_task("editing", suite, **options)


def run_replacement(suite: Any = None, **options: Any):
    """The replacement task: see :func:`run_task`; ``budgets`` replaces the suite's parameter budgets."""
    return run_task("replacement", suite, **options)


def run_lm_rediscovery(suite: Any = None, **options: Any):
    """The lm-rediscovery task (trigger inversion on a language model): see :func:`run_task`; ``model`` replaces
    the suite's language model (a zoo name, a ``.safetensors`` file with its card, or ``hf:FOLDER``)."""
    return run_task("lm-rediscovery", suite, **options)


def run_lm_removal(suite: Any = None, **options: Any):
    """The lm-removal task (unlearning with the triggers of the lm-rediscovery results in ``out``): see
    :func:`run_task`."""
    return run_task("lm-removal", suite, **options)


def check_judges(trojans: Any = None, *, judges: Any = None, seeds: int = 3, model: Any = "trojaned",
                 progress: bool = False, judge_settings: dict[str, dict] | None = None) -> dict[str, dict[str, Any]]:
    """Put each judge through its validity battery (:mod:`trojanbench.judges.battery`) on the questions of
    ``trojans`` (a trojan spec YAML path or a :class:`~trojanbench.config.TrojanSuite`; default: the trojans in
    ``model``'s card) under seeds ``0 .. seeds - 1``, before any tool runs: can these judges be trusted on these
    triggers? ``judges``: names (default: the shipped three), made with ``judge_settings`` (``{judge: {setting:
    value}}``, e.g. ``{"clip": {"weights": FILE}}``). Returns ``{judge: {trojan: {"checks", "seeds", "passed"}}}``
    (each check's worst seed); nothing is written. ``model`` (a zoo name or a
    :class:`~trojanbench.models.LoadedModel`) moves the perturbed null toward each trojan's target class."""
    from .audit import check_world_classifier, trojans_of
    from .config import TrojanSuite, load_trojan_suite
    from .engine.suite import DEFAULT_JUDGES, check_judge_settings
    from .errors import ConfigError
    from .judges import get_judge
    from .models import LoadedModel, load_model
    from .params import Interval, require
    from .progress import make_progress
    from .tasks.rediscovery.battery import judge_battery
    from .world import OBJECT_CLASSES

    seeds = require("seeds", seeds, Interval(int, 1, 100), owner="check_judges")
    judges = DEFAULT_JUDGES if judges is None else [judges] if isinstance(judges, str) else judges
    if not judges:
        raise ConfigError("check_judges needs at least one judge (e.g. judges=['concept']; see trojanbench ls judges).")
    judge_settings = check_judge_settings(judge_settings or {}, judges, "judge_settings")
    judges = [get_judge(name, judge_settings.get(name)) for name in judges]
    for judge in judges:
        judge.check()
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    check_world_classifier(loaded)
    suite = trojans if isinstance(trojans, TrojanSuite) else (
        load_trojan_suite(trojans, OBJECT_CLASSES) if trojans is not None else trojans_of(loaded))
    display = make_progress() if progress else None
    try:
        return judge_battery(judges, list(suite.trojans), range(seeds), loaded.model, display)
    finally:
        if display is not None:
            display.close()


def load_results(folder: str | Path, task: str = "rediscovery") -> Any:
    """The results of ``task`` in ``folder``."""
    return get_task(task).results(folder)
