"""A cell's limits and isolation: the work budget, the wall-clock guard no method can catch away, contained exits,
failed cells retried by the rules of :mod:`trojanbench.engine.loop`, the Target fingerprint and the thread policy.
No assertion here depends on how fast the machine is."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import pytest
import torch

from trojanbench.engine import CellTable, Store, attempt, content_key, run_pending
from trojanbench.engine.execute import is_transient, work_budget
from trojanbench.engine.isolation import changed_parts, fingerprint
from trojanbench.engine.loop import cells_to_compute, retrying_failed
from trojanbench.engine.threads import available_cores, resolve_threads, torch_threads
from trojanbench.errors import ConfigError
from trojanbench.judges import top1_hit

TABLE = CellTable("limit_cells", (("status", "TEXT NOT NULL"), ("reason", "TEXT"), ("seconds", "REAL NOT NULL"),
                                  ("params", "TEXT NOT NULL"), ("measures", "TEXT NOT NULL")), order_by="key")


def test_a_method_that_catches_exception_in_a_retry_loop_cannot_swallow_the_guard():
    def stubborn():
        while True:
            try:
                time.sleep(0.05)
            except Exception:  # noqa: BLE001 - the misbehaviour under test
                pass

    outcome = attempt(stubborn, timeout=0.3, what="stubborn")
    assert outcome.status == "failed" and outcome.reason.startswith("CellTimeout: exceeded its wall-clock guard")
    assert is_transient(outcome.reason)


def test_work_that_swallows_even_the_base_exception_and_returns_is_still_failed():
    def defiant():
        for _ in range(40):
            try:
                time.sleep(0.05)
            except BaseException:  # noqa: BLE001 - the misbehaviour under test
                pass
        return "images"

    outcome = attempt(defiant, timeout=0.1, what="defiant")
    assert outcome.status == "failed" and "caught the timeout" in outcome.reason


@pytest.mark.parametrize("exit_with", [SystemExit(0), KeyboardInterrupt(), GeneratorExit()])
def test_a_method_cannot_end_the_run(exit_with):
    def leave():
        raise exit_with

    outcome = attempt(leave, timeout=5, what="leaver")
    assert outcome.status == "failed" and outcome.reason.startswith(type(exit_with).__name__)
    assert "may not end the run" in outcome.reason


def test_the_users_own_ctrl_c_still_stops_the_run():
    def interrupted():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    with pytest.raises(KeyboardInterrupt):
        attempt(interrupted, timeout=10, what="cell")


def test_the_work_budget_counts_images_not_seconds_and_cannot_be_caught():
    model = torch.nn.Linear(4, 2)
    with work_budget(model, 10):
        model(torch.zeros(6, 4))
        model(torch.zeros(4, 4))  # exactly 10 images: within the budget

    def greedy():
        with work_budget(model, 10):
            for _ in range(100):
                try:
                    model(torch.zeros(3, 4))
                except Exception:  # noqa: BLE001 - the misbehaviour under test
                    pass

    outcome = attempt(greedy, timeout=None, what="greedy")
    assert outcome.status == "failed" and outcome.reason.startswith("WorkBudgetExceeded: exceeded its work budget")
    assert not is_transient(outcome.reason)
    assert not model._forward_pre_hooks, "the budget's hook is removed after the cell"


def _cell_row(key: str, status: str, reason: str | None) -> dict:
    return {"key": key, "status": status, "reason": reason, "seconds": 1.0, "params": {}, "measures": {}}


def test_transient_failures_are_retried_once_and_deterministic_ones_only_on_request(tmp_path):
    keys = ["ok", "timeout", "oom", "crash", "new"]
    with Store(tmp_path, cell_tables=(TABLE,)) as store:
        store.record_json_cell(TABLE.name, 1, _cell_row("ok", "ok", None))
        store.record_json_cell(TABLE.name, 1, _cell_row("timeout", "failed", "CellTimeout: exceeded its guard"))
        store.record_json_cell(TABLE.name, 1, _cell_row("oom", "failed", "OutOfMemoryError: CUDA out of memory"))
        store.record_json_cell(TABLE.name, 1, _cell_row("crash", "failed", "RuntimeError: this tool always crashes"))
        assert cells_to_compute(store, TABLE.name, keys) == ["timeout", "oom", "new"]
        store.mark_retried(["timeout", "oom"])  # they were computed again and failed again: they stay failed
        assert cells_to_compute(store, TABLE.name, keys) == ["new"]
        with retrying_failed():
            assert cells_to_compute(store, TABLE.name, keys) == ["timeout", "oom", "crash", "new"]
        assert cells_to_compute(store, TABLE.name, keys) == ["new"]


class _Cell:
    def __init__(self, name: str):
        self.name, self.key = name, content_key(name)


def test_a_run_recomputes_a_cell_that_timed_out_and_the_result_matches_an_undisturbed_run(tmp_path):
    """A slowed cell (its first attempt hangs past the guard) fails transiently; the same command run again
    computes it, and the folder ends with exactly the values of a run that was never slowed."""
    cells = [_Cell(name) for name in ("a", "b", "c")]
    slow_once = {"b"}

    def compute_into(store, hang):
        def compute(run_id, todo):
            for cell in todo:
                def work(cell=cell):
                    if hang and cell.name in slow_once:
                        slow_once.discard(cell.name)
                        time.sleep(30)
                    return len(cell.name) * 7
                outcome = attempt(work, timeout=0.2, what=cell.name)
                store.record_json_cell(TABLE.name, run_id, {
                    "key": cell.key, "status": outcome.status, "reason": outcome.reason, "seconds": outcome.seconds,
                    "params": {}, "measures": {"value": outcome.value}})
                yield cell
        return compute

    def values(folder, hang):
        with Store(folder, cell_tables=(TABLE,)) as store:
            run_pending(store, cells, {"task": "toy"}, {}, TABLE.name, compute_into(store, hang))
            return {row["key"]: (row["status"], row["measures"]["value"]) for row in store.json_cells(TABLE.name)}

    disturbed = values(tmp_path / "slowed", hang=True)
    assert disturbed[cells[1].key][0] == "failed"
    assert values(tmp_path / "slowed", hang=True) == values(tmp_path / "undisturbed", hang=False)


@dataclass
class _Shared:
    model: torch.nn.Module
    images: torch.Tensor
    name: str = "model"


def test_the_fingerprint_names_what_a_method_changed():
    shared = _Shared(torch.nn.Sequential(torch.nn.Linear(3, 3)).eval(), torch.zeros(4, 3))
    before = fingerprint(shared)
    assert changed_parts(before, fingerprint(shared)) == []
    shared.images[0, 0] = 1.0
    assert changed_parts(before, fingerprint(shared)) == ["images"]
    shared.images[0, 0] = 0.0
    shared.model.train()
    assert changed_parts(before, fingerprint(shared)) == ["model"]
    shared.model.eval()
    handle = shared.model[0].register_forward_hook(lambda *args: None)
    assert changed_parts(before, fingerprint(shared)) == ["model"]
    handle.remove()
    with torch.no_grad():
        shared.model[0].weight.add_(1e-6)
    assert changed_parts(before, fingerprint(shared)) == ["model"]


def test_top1_counts_a_tie_at_the_top_as_a_miss():
    assert top1_hit([1 / 8] * 8, 0) == 0
    assert top1_hit([0.3, 0.3, 0.4, 0, 0, 0, 0, 0], 2) == 1
    assert top1_hit([0.4, 0.4, 0.2, 0, 0, 0, 0, 0], 0) == 0
    assert top1_hit([0.4, 0.4 - 1e-9, 0.2, 0, 0, 0, 0, 0], 0) == 0, "a difference below the stored precision is a tie"


def test_the_thread_policy_is_one_per_worker_unless_told():
    assert resolve_threads(None) == 1
    assert resolve_threads(available_cores()) == available_cores()
    with pytest.raises(ConfigError, match="--threads"):
        resolve_threads(available_cores() + 1)
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
