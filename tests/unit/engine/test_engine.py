"""The engine on hand-built stores (no zoo, no training): store round trips, the resumable loop, the results rule,
the failure path, executors, suites, statistics, task options and the registry."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from trojanbench.engine import CellTable, Store, Task, attempt, content_key, run_pending
from trojanbench.engine.executors import Job, make_executor
from trojanbench.engine.runs import last_run_and_cells, task_runs
from trojanbench.engine.stats import paired_comparison, rank_agreement, summarize
from trojanbench.engine.suite import TaskSuite, parse_suite_config, with_overrides
from trojanbench.params import Interval
from trojanbench.errors import ConfigError, UnknownNameError
from trojanbench.registry import Registry, TASKS

TABLE = CellTable("toy_cells", (("number", "INTEGER NOT NULL"), ("params", "TEXT NOT NULL"),
                                ("status", "TEXT NOT NULL"), ("reason", "TEXT"), ("seconds", "REAL NOT NULL"),
                                ("measures", "TEXT NOT NULL")), order_by="number")


class Cell:
    def __init__(self, number: int):
        self.number, self.key = number, content_key({"number": number})


def _row(cell: Cell, status: str = "ok") -> dict:
    return {"key": cell.key, "number": cell.number, "params": {"b": 2, "a": 1}, "status": status, "reason": None,
            "seconds": 0.5, "measures": {"square": cell.number ** 2, "nested": [1.5, None]}}


def test_runs_round_trip_with_planned_keys(tmp_path):
    with Store(tmp_path) as store:
        run_id = store.start_run({"task": "toy", "cell_keys": ["a"]}, {"model": {"sha256": "x"}})
        store.add_planned(run_id, ["b", "a", "c"])
        store.finish_run(run_id)
        (run,) = store.runs()
    assert run["suite"] == {"task": "toy", "cell_keys": ["a", "b", "c"]}
    assert run["provenance"] == {"model": {"sha256": "x"}}
    assert run["status"] == "completed" and run["finished"] >= run["started"]


def test_cell_table_round_trip_keeps_json_and_order(tmp_path):
    cells = [Cell(n) for n in (3, 1, 2)]
    with Store(tmp_path, cell_tables=(TABLE,)) as store:
        for cell in cells:
            store.record_json_cell(TABLE.name, 1, _row(cell))
        store.record_json_cell(TABLE.name, 1, _row(cells[0], "failed"))  # a cell is written again, not twice
        rows = store.json_cells(TABLE.name)
        assert store.finished_keys(TABLE.name) == {cell.key for cell in cells}
    assert [row["number"] for row in rows] == [1, 2, 3]
    assert rows[0]["measures"] == {"square": 1, "nested": [1.5, None]} and rows[0]["params"] == {"a": 1, "b": 2}
    assert rows[2]["status"] == "failed"


def test_image_strips_round_trip_exactly(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    with Store(tmp_path) as store:
        name = store.save_images("strip", pixels)
        assert np.array_equal(store.load_image_strip(name), pixels)
    assert not list((tmp_path / "images").glob("*.tmp.png"))


def test_opening_a_folder_without_results_is_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="holds no results") as caught:
        Store(tmp_path / "nothing", create=False)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "nothing").exists()


def _compute(store: Store, calls: list[int], stop_after: int | None = None):
    def compute(run_id, todo):
        for index, cell in enumerate(todo):
            if stop_after is not None and index == stop_after:
                raise KeyboardInterrupt  # the run is killed
            calls.append(cell.number)
            store.record_json_cell(TABLE.name, run_id, _row(cell))
            yield cell
    return compute


def test_the_loop_resumes_where_a_killed_run_stopped(tmp_path):
    cells = [Cell(n) for n in range(5)]
    calls: list[int] = []
    with Store(tmp_path, cell_tables=(TABLE,)) as store:
        with pytest.raises(KeyboardInterrupt):
            run_pending(store, cells, {"task": "toy"}, {}, TABLE.name, _compute(store, calls, stop_after=2))
        seen = []
        run_pending(store, cells, {"task": "toy"}, {}, TABLE.name, _compute(store, calls),
                    lambda done, total, cell: seen.append((done, total, cell.number)))
        runs = store.runs()
    assert calls == [0, 1, 2, 3, 4], "each cell computed once"
    assert seen == [(3, 5, 2), (4, 5, 3), (5, 5, 4)]
    assert [r["status"] for r in runs] == ["interrupted", "completed"]  # stopped by an exception (kill -9: running)
    assert runs[1]["suite"]["cell_keys"] == [cell.key for cell in cells]


def _run(run_id: int, task: str | None, keys: list[str] | None) -> dict:
    suite = {} if task is None else {"task": task}
    if keys is not None:
        suite["cell_keys"] = keys
    return {"run_id": run_id, "suite": suite, "provenance": {}}


def test_results_are_the_cells_of_the_last_run_with_a_finished_cell():
    cells = ["a", "b", "c"]
    runs = [_run(1, "toy", ["a", "b"]), _run(2, "other", ["c"]), _run(3, "toy", ["c", "d"]), _run(4, "toy", ["e"])]
    run, chosen = last_run_and_cells(runs, "toy", cells, str)
    assert run["run_id"] == 3 and chosen == ["c"], "run 4 has no finished cell: it hides nothing"
    assert last_run_and_cells(runs[:2], "toy", cells, str)[1] == ["a", "b"]
    assert last_run_and_cells(runs, "missing", cells, str) == (None, [])


def test_a_run_that_lists_no_cells_counts_every_cell_of_its_task():
    runs = [_run(1, None, None)]  # a rediscovery run recorded by trojanbench 0.1.0
    assert task_runs(runs, "rediscovery") == runs
    assert last_run_and_cells(runs, "rediscovery", ["a", "b"], str)[1] == ["a", "b"]


def test_attempt_returns_values_and_failures_never_raises():
    ok = attempt(lambda: 42, timeout=5, what="answer")
    assert (ok.status, ok.value, ok.reason) == ("ok", 42, None)

    def boom():
        raise ValueError("no")

    failed = attempt(boom, timeout=None, what="boom", key="k")
    assert (failed.key, failed.status, failed.value, failed.reason) == ("k", "failed", None, "ValueError: no")


def test_attempt_stops_work_past_its_time_budget():
    outcome = attempt(lambda: time.sleep(30), timeout=0.2, what="sleeper")
    assert outcome.status == "failed"
    assert outcome.reason == "CellTimeout: exceeded its wall-clock guard of 0.2 s"


def square_outcome(key: str, number: int):
    return attempt(lambda: number * number, timeout=None, what=key, key=key)


def test_the_local_executor_runs_jobs_in_order():
    executor = make_executor("local")
    outcomes = list(executor.map([Job(str(n), square_outcome, (str(n), n), 10.0) for n in range(4)]))
    executor.close()
    assert [(o.key, o.value) for o in outcomes] == [("0", 0), ("1", 1), ("2", 4), ("3", 9)]
    with pytest.raises(UnknownNameError, match="Did you mean: local"):
        make_executor("locl")


@pytest.mark.parametrize("raw, words", [
    ({"methods": ["a"], "sedes": [0]}, "Unknown suite key(s) ['sedes']"),
    ({"methods": []}, "non-empty 'methods' list"),
    ({"methods": ["a"], "seeds": [0, 0]}, "distinct ints"),
    ({"methods": ["a"], "n_images": 0}, "'n_images' must be an int in [1, 100]"),
    ({"methods": ["a"], "cell_timeout": -1}, "'cell_timeout'"),
    ({"methods": [{"name": "a", "prams": {}}]}, "methods[0]"),
])
def test_suite_parsing_names_what_was_wrong(raw, words):
    with pytest.raises(ConfigError) as caught:
        parse_suite_config(raw)
    assert words in str(caught.value)


def test_suite_overrides():
    suite = parse_suite_config({"methods": ["a", {"name": "b", "params": {"steps": 3}}], "seeds": [4, 5, 6]})
    assert [m.label for m in suite.methods] == ["a", "b[steps=3]"]
    assert with_overrides(suite, seeds=2).seeds == (0, 1)
    assert with_overrides(suite, quick=True).seeds == (4,)
    assert [m.name for m in with_overrides(suite, methods=["c"]).methods] == ["c"]


@dataclass(frozen=True)
class ToySuite(TaskSuite):
    n_eval: int = 20
    budgets: tuple[str, ...] = ("1%",)
    task: ClassVar[str] = "toy"
    constraints: ClassVar[dict] = {"n_eval": Interval(int, 10, None)}
    converters: ClassVar[dict] = {"budgets": lambda value: tuple(map(str, value))}


def test_a_task_suite_checks_its_own_keys_with_the_shared_vocabulary():
    suite = ToySuite.parse({"methods": ["a"], "seeds": [1], "budgets": [100, "5%"]})
    assert (suite.n_eval, suite.budgets, suite.suite.seeds) == (20, ("100", "5%"), (1,))
    assert suite.to_dict()["budgets"] == ["100", "5%"] and suite.to_dict()["methods"] == [{"name": "a", "params": {}}]
    with pytest.raises(ConfigError, match=r"'n_eval' must be an int in \[10, inf\). Got 3 instead."):
        ToySuite.parse({"methods": ["a"], "n_eval": 3})
    with pytest.raises(ConfigError, match="Unknown suite key"):
        ToySuite.parse({"methods": ["a"], "n_evl": 3})


def test_every_task_suite_declares_each_of_its_keys():
    from trojanbench.tasks.editing.task import EditingSuite
    from trojanbench.tasks.removal.task import RemovalSuite
    from trojanbench.tasks.replacement.task import ReplacementSuite

    for suite in (EditingSuite, RemovalSuite, ReplacementSuite, ToySuite):
        suite.check_declared()

    @dataclass(frozen=True)
    class Undeclared(TaskSuite):
        n_eval: int = 20

    with pytest.raises(TypeError, match=r"keys without a constraint or converter \['n_eval'\]"):
        Undeclared.check_declared()


def test_summaries_give_mean_worst_and_an_interval_around_the_mean():
    scores = {(t, s): value for t, base in (("x", 0.2), ("y", 0.6)) for s, value in enumerate([base, base + 0.1])}
    summary = summarize(scores, {k: 1.0 for k in scores}, {"x": "patch", "y": "style"})
    assert summary.mean == pytest.approx(0.45)
    assert (summary.worst, summary.worst_trojan) == (pytest.approx(0.25), "x")
    assert summary.ci_low <= summary.mean <= summary.ci_high
    assert summary.by_kind == {"patch": pytest.approx(0.25), "style": pytest.approx(0.65)}
    same = paired_comparison("a", "b", scores, scores)
    assert (same.mean_difference, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)


def test_rank_agreement_of_two_judges_over_methods_with_its_interval():
    rng = np.random.default_rng(0)
    level = {f"m{i}": i / 10 for i in range(6)}
    judge = {m: {(t, s): base + rng.normal(0, 0.01) for t in "abcd" for s in (0, 1)} for m, base in level.items()}
    same = rank_agreement(judge, judge)
    assert (same.spearman, same.ci_low, same.ci_high, same.n_methods) == (1.0, 1.0, 1.0, 6)
    reversed_judge = {m: {cell: -v for cell, v in scores.items()} for m, scores in judge.items()}
    opposite = rank_agreement(judge, reversed_judge)
    assert opposite.spearman == -1.0 and opposite.ci_high == -1.0
    noise = {m: {cell: rng.random() for cell in scores} for m, scores in judge.items()}
    unrelated = rank_agreement(judge, noise)
    assert unrelated.ci_low < unrelated.spearman < unrelated.ci_high and unrelated.ci_high - unrelated.ci_low > 0.3
    only_shared = rank_agreement(judge, {m: judge[m] for m in list(judge)[:4]})
    assert only_shared.n_methods == 4


def test_a_comparison_reads_as_a_sentence_with_its_cells():
    better = paired_comparison("snafue", "tabor", {("x", 0): 0.5, ("y", 0): 0.7, ("z", 0): 0.3},
                               {("x", 0): 0.3, ("y", 0): 0.6, ("z", 0): 0.2})
    text = str(better)
    assert text.startswith("snafue - tabor: +0.133 [+") and "over 3 shared cells" in text
    assert f"snafue better in {better.probability_a_better:.0%} of resamples" in text
    one = str(paired_comparison("a", "b", {("x", 0): 0.5}, {("x", 0): 0.2}))
    assert one.startswith("a - b: +0.300 – (") and one.endswith("over 1 shared cell")  # no one-point "interval"


class Budgeted(Task):
    name = "budgeted"
    options = ("budgets",)


def test_a_task_rejects_options_it_does_not_take():
    Budgeted().check_options({"budgets": ["1%"], "quick": True, "executor": None})
    with pytest.raises(ConfigError, match="--executor applies to the lm-rediscovery, lm-removal and rediscovery "
                                          "tasks, not to the budgeted task. Drop it, or use --task lm-rediscovery, "
                                          "--task lm-removal or --task rediscovery."):
        Budgeted().check_options({"executor": "ray"})
    with pytest.raises(ConfigError, match="No task takes --colour"):
        Budgeted().check_options({"colour": "red"})


def test_the_registry_checks_kinds_names_and_collisions():
    registry = Registry("widget", "trojanbench.widgets", (), lambda entry: None)

    class Widget:
        name = "spanner"

    class Other:
        name = "spanner"

    registry.register(Widget)
    registry.register(Widget)  # the same entry again is no collision
    with pytest.raises(ConfigError, match="Widget name 'spanner' is already taken by .*Widget"):
        registry.register(Other)
    with pytest.raises(UnknownNameError, match="Did you mean: spanner"):
        registry.get("spaner")
    with pytest.raises(ConfigError, match="must look like 'package.module:Name'"):
        registry.load("no-colon")
    assert registry.get("test_engine:Budgeted") is Budgeted
    with pytest.raises(ConfigError, match="must be an instance of trojanbench.engine.Task"):
        TASKS.register(Budgeted)  # a class, not an instance


def test_every_builtin_task_is_registered_with_a_description():
    assert TASKS.names() == ["editing", "lm-rediscovery", "lm-removal", "localization", "rediscovery", "removal",
                             "replacement"]
    assert all(task.description and len(task.description) < 130 for _, task in TASKS.items())


def _exit_now(key: str):
    import os

    os._exit(3)


def _hang(key: str):
    while True:  # blocks the worker's own guard too: only the executor can stop it
        try:
            time.sleep(0.05)
        except BaseException:  # noqa: BLE001 - the misbehaviour under test
            pass


def test_the_process_executor_computes_in_workers_and_contains_what_kills_or_hangs_them():
    executor = make_executor("processes", workers=2)
    executor.startup_grace = 15.0  # the hang below must cost the test seconds, not ten minutes
    jobs = [Job(str(n), square_outcome, (str(n), n), 600.0) for n in range(4)]
    jobs += [Job("exit", _exit_now, ("exit",), 600.0), Job("hang", _hang, ("hang",), 0.1)]
    jobs += [Job("after", square_outcome, ("after", 5), 600.0)]
    try:
        outcomes = {o.key: o for o in executor.map(jobs)}
    finally:
        executor.close()
    assert {key: outcomes[key].value for key in ("0", "1", "2", "3", "after")} == {"0": 0, "1": 1, "2": 4, "3": 9,
                                                                                  "after": 25}
    assert outcomes["exit"].reason.startswith("WorkerDied: the worker process ended (exit code 3)")
    assert outcomes["hang"].reason.startswith("CellTimeout") and "worker process was stopped" in outcomes["hang"].reason
    assert not executor._running, "close() stops every worker"


def test_executor_options_are_checked_before_any_work():
    with pytest.raises(ConfigError, match="--workers applies to --executor processes or ray"):
        make_executor("local", workers=2)
    with pytest.raises(ConfigError, match="--ray-address applies only"):
        make_executor("processes", ray_address="127.0.0.1:1")
    with pytest.raises(ConfigError, match="--workers"):
        make_executor("processes", workers=0)
