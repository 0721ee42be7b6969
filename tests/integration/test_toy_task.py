"""A new task added from outside the package, through the public API only: it runs through `trojanbench run --task
toy`, is stored, resumes after a kill, and appears in `trojanbench ls tasks`, the report and its exports."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trojanbench.engine import content_key

TOY_MODULE = '''
"""A toy task: each cell squares a number (slowly, so that a kill can land mid-run)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import trojanbench
from trojanbench.engine import CellTable, Store, attempt, content_key, run_pending
from trojanbench.engine.runs import last_run_and_cells, run_document, run_header

TABLE = CellTable("toy_cells", (("number", "INTEGER NOT NULL"), ("status", "TEXT NOT NULL"), ("reason", "TEXT"),
                                ("seconds", "REAL NOT NULL"), ("measures", "TEXT NOT NULL")), order_by="number")


@dataclass(frozen=True)
class ToyCell:
    number: int

    @property
    def key(self) -> str:
        return content_key({"task": "toy", "number": self.number})


def square(number: int) -> int:
    time.sleep(float(os.environ.get("TOY_SLEEP", "0")))
    if number == 3:
        raise ValueError("three is not allowed")
    with open(os.environ["TOY_LOG"], "a") as log:
        log.write(f"{number}\\n")
    return number * number


class ToyResults:
    def __init__(self, folder):
        with Store(folder, create=False, cell_tables=(TABLE,)) as store:
            self.run, self.cells = last_run_and_cells(store.runs(), "toy", store.json_cells(TABLE.name),
                                                      itemgetter("key"))

    def __bool__(self):
        return bool(self.cells)

    def total(self) -> int:
        return sum(cell["measures"].get("square", 0) for cell in self.cells)

    def table(self) -> str:
        return f"toy: {len(self.cells)} cells, sum of squares {self.total()}"


class ToyTask(trojanbench.Task):
    name = "toy"
    description = "squares the numbers 0..N-1 (a test task)"

    def run(self, suite=None, *, out, progress=None, seeds=None, **options):
        cells = [ToyCell(number) for number in range(seeds or 6)]
        with Store(out, cell_tables=(TABLE,)) as store:
            def compute(run_id, todo):
                for cell in todo:
                    outcome = attempt(lambda: square(cell.number), timeout=60, what=f"toy cell {cell.number}")
                    store.record_json_cell(TABLE.name, run_id, {
                        "key": cell.key, "number": cell.number, "status": outcome.status, "reason": outcome.reason,
                        "seconds": outcome.seconds, "measures": {"square": outcome.value} if outcome.ok else {}})
                    yield cell

            run_pending(store, cells, {"task": "toy", "name": "toy-suite", "seeds": [0]}, {"model": {}},
                        TABLE.name, compute, progress)
        return ToyResults(out)

    def results(self, folder):
        return ToyResults(folder)

    def section(self, results, files):
        return {**run_header(results), "cells": results.cells, "total": results.total()}

    def document(self, results):
        return {**run_document(results), "squares": {c["number"]: c["measures"].get("square") for c in results.cells}}

    def markdown(self, results):
        return ["## Toy", "", results.table()]


TASK = trojanbench.register_task(ToyTask())
'''

TOY_TEMPLATE = '''
{% macro provenance(data) %}<dt>toy suite</dt><dd>{{ data.suite.get("name") }}; {{ data.n_cells }} cells</dd>{% endmacro %}
{% macro body(data) %}
<h2 id="toy">Toy squares</h2>
<p>Sum of squares: {{ data.total }}.</p>
<ul>{% for c in data.cells %}<li>{{ c.number }}: {{ c.status }}{% if c.reason %} ({{ c.reason }}){% endif %}</li>{% endfor %}</ul>
{% endmacro %}
'''


@pytest.fixture
def toy_plugin(tmp_path):
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "toy_task.py").write_text(textwrap.dedent(TOY_MODULE), encoding="utf-8")
    (folder / "section.html.j2").write_text(TOY_TEMPLATE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
           "TOY_LOG": str(tmp_path / "computed.log")}
    return env, tmp_path / "computed.log"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "trojanbench.cli", *args]


def _finished(folder: Path) -> dict[str, float]:
    path = folder / "results.sqlite"
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        try:
            return dict(db.execute("SELECT key, finished FROM toy_cells"))
        except sqlite3.OperationalError:  # the table is not created yet
            return {}


def test_ls_tasks_lists_the_builtin_tasks_and_a_plugin_task(toy_plugin):
    env, _ = toy_plugin
    listed = subprocess.run(_cli("ls", "tasks", "--json", "--plugin", "toy_task:TASK"), env=env, check=True,
                            capture_output=True, text=True, timeout=1800)
    rows = {row["task"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"rediscovery", "localization", "removal", "editing", "replacement", "lm-rediscovery",
                         "lm-removal", "toy"}
    assert all(row["description"] for row in rows.values())
    assert rows["removal"]["options"] == "budgets, model, data, image_size" and rows["toy"]["module"] == "toy_task"


def test_a_task_from_outside_the_package_runs_resumes_after_a_kill_and_is_reported(toy_plugin, tmp_path):
    env, computed = toy_plugin
    out = tmp_path / "out"
    command = _cli("run", "--task", "toy", "--plugin", "toy_task:TASK", "--out", str(out), "--no-progress")
    process = subprocess.Popen(command, env={**env, "TOY_SLEEP": "0.5"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600  # a hang guard: a loaded machine is only slower
    while time.monotonic() < deadline and process.poll() is None and len(_finished(out)) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _finished(out)
    assert 2 <= len(before) < 6, "the kill must land mid-run"
    first = computed.read_text().split() if computed.exists() else []

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr
    assert "toy: 6 cells, sum of squares 46" in result.stdout  # 0 + 1 + 4 + 16 + 25; 3 failed
    after = _finished(out)
    assert len(after) == 6
    assert {key: after[key] for key in before} == before, "finished cells are never recomputed"
    recomputed = computed.read_text().split()[len(first):]
    missing = [n for n in (0, 1, 2, 4, 5) if content_key({"task": "toy", "number": n}) not in before]
    assert sorted(int(n) for n in recomputed) == missing, "only the cells the killed run had not committed"

    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Toy squares" in html and "Sum of squares: 46." in html
    assert "3: failed (ValueError: three is not allowed)" in html
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert document["toy"]["squares"] == {"0": 0, "1": 1, "2": 4, "3": None, "4": 16, "5": 25}
    markdown = subprocess.run(_cli("report", str(out), "--format", "md", "--plugin", "toy_task:TASK"), env=env,
                              check=True, capture_output=True, text=True, timeout=1800).stdout
    assert "## Toy" in markdown and "sum of squares 46" in markdown


def test_the_toy_task_rejects_options_it_does_not_take(toy_plugin, tmp_path):
    env, _ = toy_plugin
    result = subprocess.run(_cli("run", "--task", "toy", "--plugin", "toy_task:TASK", "--budgets", "1%", "--out",
                                 str(tmp_path / "out")), env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 2
    assert "--budgets applies to the removal and replacement tasks, not to the toy task" in result.stderr
    assert not (tmp_path / "out" / "results.sqlite").exists()
