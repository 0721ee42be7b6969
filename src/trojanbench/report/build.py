"""``trojanbench report``: an HTML page, figures and CSV/JSON exports, rendered from the store alone.

Deleting the report and running ``trojanbench report RESULTS_DIR`` again reproduces it: every number on the page
comes from ``results.sqlite``, every image from ``images/`` or from the world's renderer. The page is a shell; each
registered task whose results the folder holds contributes its section (:class:`~trojanbench.engine.task.Task`:
``section``, its template, ``document``, ``markdown``, ``exports``), the built-in tasks in their order, then any
other by name. Each task's results are read once per report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.store import STORE_FILE, Store
from ..errors import ConfigError
from ..registry import TASKS
from ..survey.scores import human_section
from ..templating import template_environment

log = logging.getLogger(__name__)

REPORT_FILE, JSON_FILE, FILES_DIR = "report.html", "results.json", "report_files"
RESULTS_FORMAT = "trojanbench-results/1"
SECTION_ORDER = ("rediscovery", "localization", "removal", "editing", "replacement", "lm-rediscovery", "lm-removal")
"""The built-in tasks' order in the report; other tasks follow by name."""
HUMANS_TASK = "rediscovery"
"""The task whose images people judge in the survey (its section shows their answers)."""


@dataclass
class Found:
    """A task whose results a folder holds, and those results."""

    task: Any
    results: Any


def task_results(folder: str | Path) -> list[Found]:
    """The registered tasks whose results ``folder`` holds, rediscovery first (each read once)."""
    folder = Path(folder)
    if not (folder / STORE_FILE).is_file():
        Store(folder, create=False)  # raises the one-line "holds no results" error
    rank = {name: index for index, name in enumerate(SECTION_ORDER)}
    order = sorted(TASKS.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))
    return [Found(task, results) for _, task in order if (results := task.results(folder))]


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _runs(folder: Path) -> list[dict[str, Any]]:
    with Store(folder, create=False) as store:
        return store.runs()


def results_document(runs: list[dict[str, Any]], found: list[Found]) -> dict[str, Any]:
    """A self-describing document: every run, then each task's part (rediscovery's at the top level)."""
    document: dict[str, Any] = {"format": RESULTS_FORMAT, "runs": runs}
    for entry in found:
        key = entry.task.document_key
        part = entry.task.document(entry.results)
        if key is None:
            document.update(part)
        else:
            document[key] = part
    return document


def write_report(folder: str | Path) -> Path:
    """Write ``report.html`` (with ``report_files/``), ``results.json`` and each task's exports (``results.csv``,
    ``localization.csv``, ``removal.csv``, ...) into ``folder``."""
    folder = Path(folder)
    found = task_results(folder)
    files = folder / FILES_DIR
    files.mkdir(exist_ok=True)
    for entry in found:
        entry.task.exports(entry.results, folder)
    runs = _runs(folder)
    (folder / JSON_FILE).write_text(json.dumps(results_document(runs, found), indent=1, default=_json_default),
                                    encoding="utf-8")
    sections = [{"name": entry.task.name, "template": f"{entry.task.name}/{entry.task.template}",
                 "data": entry.task.section(entry.results, files)} for entry in found if entry.task.template]
    rediscovery = next((entry.results for entry in found if entry.task.name == HUMANS_TASK), None)
    environment = template_environment({entry.task.name: entry.task.folder for entry in found})
    html = environment.get_template("report.html.j2").render(
        title=runs[-1]["suite"].get("name", "run") if runs else "run", sections=sections,
        humans=human_section(rediscovery) if rediscovery is not None else None)
    path = folder / REPORT_FILE
    path.write_text(html, encoding="utf-8")
    log.info("wrote %s", path)
    return path


def markdown_summary(folder: str | Path) -> str:
    """Each task's tables, judge validity and agreement as Markdown (``trojanbench report --format md``)."""
    folder = Path(folder)
    found = task_results(folder)
    if not found:
        raise ConfigError(f"{str(folder)!r} holds no finished cells of any task yet.")
    lines = [f"# trojanbench results: {folder}", ""]
    for index, entry in enumerate(found):
        lines += ([""] if index else []) + entry.task.markdown(entry.results)
    return "\n".join(lines) + "\n"
