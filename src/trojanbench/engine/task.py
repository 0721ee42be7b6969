"""What a task is to the rest of the package: a registered object with a name, a run, its results and its
section of the report.

The CLI's ``--task`` choices, ``trojanbench ls tasks``, the report and the exports iterate the task registry
(:data:`trojanbench.registry.TASKS`), so a new task is one folder and one :func:`~trojanbench.registry.register_task`
call (or an entry point in the group ``trojanbench.tasks``). A task plans its cells from a suite, computes them
through :func:`trojanbench.engine.loop.run_pending` into its tables of the store, and reads them back with the
engine's one rule for which cells are results (:func:`trojanbench.engine.runs.last_run_and_cells`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, ClassVar

from ..errors import ConfigError

COMMON_OPTIONS = ("quick", "methods", "trojans", "seeds", "plugins")
"""Run options every task takes (beside the suite, ``out`` and ``progress``)."""


class Task:
    """A task. Subclasses set ``name``, ``description`` (one line) and, if they take more run options than
    :data:`COMMON_OPTIONS`, ``options``, and implement :meth:`run`. For the rest they either set ``results_type``
    (``results(folder)`` is ``results_type(folder)``) and ``report`` (a module with ``data(results, files)``,
    ``document(results)``, ``markdown(results)`` and, if the task writes files beside the report, ``exports(results,
    folder)``), or override the methods. ``template`` is the report section's Jinja file beside the subclass's
    module, with the macros ``provenance(data)`` and ``body(data)``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[str, ...]] = ()
    template: ClassVar[str | None] = "section.html.j2"
    results_type: ClassVar[type | None] = None
    report: ClassVar[ModuleType | None] = None

    def run(self, suite: Any = None, *, out: str | Path, progress: Callable[[int, int, Any], None] | None = None,
            **options: Any) -> Any:
        """Plan and compute the task's cells into ``out`` (resuming what is there); return its results."""
        raise NotImplementedError

    def results(self, folder: str | Path) -> Any:
        """The task's results in ``folder`` (falsy when it holds none)."""
        if self.results_type is None:
            raise NotImplementedError(f"{type(self).__name__} sets no results_type and does not override results()")
        return self.results_type(folder)

    def summary(self, results: Any) -> str:
        """The text the CLI prints after a run."""
        return results.table()

    def section(self, results: Any, files: Path) -> dict[str, Any]:
        """The report section's data (figures written into ``files``)."""
        return self.report.data(results, files) if self.report else {}

    def document(self, results: Any) -> dict[str, Any]:
        """The task's part of ``results.json``."""
        return self.report.document(results) if self.report else {}

    def markdown(self, results: Any) -> list[str]:
        """The task's lines of the Markdown summary."""
        return self.report.markdown(results) if self.report else []

    def exports(self, results: Any, folder: Path) -> list[Path]:
        """Files the task writes beside the report (e.g. a CSV); returns their paths."""
        write = getattr(self.report, "exports", None)
        return write(results, folder) if write else []

    @property
    def document_key(self) -> str | None:
        """The key of the task's part of ``results.json`` (``None``: the document's top level)."""
        return self.name

    @property
    def folder(self) -> Path:
        """The folder of the module that defines the task (where its template lives)."""
        return Path(inspect.getfile(type(self))).resolve().parent

    def check_options(self, options: dict[str, Any]) -> None:
        """Reject run options the task does not take (given with a value other than ``None``)."""
        accepted = set(COMMON_OPTIONS) | set(self.options)
        extra = sorted(k for k, v in options.items() if k not in accepted and v not in (None, (), False))
        if not extra:
            return
        flags = _listed(["--" + k.replace("_", "-") for k in extra], "and")
        takers = _tasks_taking(extra)
        if not takers:
            raise ConfigError(f"No task takes {flags}. Drop {'it' if len(extra) == 1 else 'them'}.")
        raise ConfigError(f"{flags} appl{'ies' if len(extra) == 1 else 'y'} to the {_listed(takers, 'and')} "
                          f"task{'s' if len(takers) > 1 else ''}, not to the {self.name} task. Drop "
                          f"{'it' if len(extra) == 1 else 'them'}, or use "
                          f"{_listed(['--task ' + name for name in takers], 'or')}.")

    def __repr__(self) -> str:
        return f"<task {self.name}>"


def _listed(items: list[str], last: str) -> str:
    """``a``, ``a and b``, ``a, b and c`` (``last``: the final conjunction)."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def _tasks_taking(options: list[str]) -> list[str]:
    from ..registry import TASKS

    return [name for name, task in TASKS.items() if set(options) <= set(task.options)]
