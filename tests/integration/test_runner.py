"""The runner end to end on the tiny zoo: scores, store, faults, resume after kill -9, bad input, Ray."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from trojanbench.cli import main
from trojanbench import load_results, run
from trojanbench.tasks.rediscovery.store import RediscoveryStore

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def write_suite(path: Path, model: Path, methods: list, *, seeds=(0, 1), trojans=None, timeout=1800.0,
                judges=("concept", "appearance"), n_images=4) -> Path:
    raw = {"name": "test", "model": str(model), "methods": methods, "judges": list(judges), "seeds": list(seeds),
           "n_images": n_images, "cell_timeout": timeout}
    if trojans:
        spec = path.parent / "trojans.yaml"
        spec.write_text(yaml.safe_dump({"trojans": trojans}))
        raw["trojans"] = str(spec)
    path.write_text(yaml.safe_dump(raw))
    return path


TWO_TROJANS = [{"name": "smiley", "kind": "patch", "trigger": "smiley", "target": "bowtie"},
               {"name": "fork", "kind": "natural", "trigger": "fork", "target": "chevron"}]


def test_run_scores_every_cell_and_resumes_without_recomputing(tiny_zoo, tmp_path):
    # 10 images, as in the default suite: the judges' validity is measured on 10 (with 4, a small fork is missed)
    suite = write_suite(tmp_path / "suite.yaml", tiny_zoo["trojaned"], ["random_noise", "dataset_exemplars", "oracle"],
                        trojans=TWO_TROJANS, n_images=10)
    results = run(suite, out=tmp_path / "out")
    records = results.records()
    assert len(results.cells) == 3 * 2 * 2
    assert {r["judge"] for r in records} == {"concept", "appearance"}
    assert all(0.0 <= r["p_true"] <= 1.0 and r["status"] == "ok" for r in records)
    oracle = [r for r in records if r["method"] == "oracle"]
    assert sum(r["top1"] for r in oracle) >= len(oracle) - 1, "the oracle must (nearly) always be recognised"
    assert (tmp_path / "out" / "images").is_dir() and len(list((tmp_path / "out" / "images").glob("*.png"))) == 12
    before = {r["key"]: r["p_true"] for r in records}
    again = run(suite, out=tmp_path / "out")
    assert {r["key"]: r["p_true"] for r in again.records()} == before
    assert len(RediscoveryStore(tmp_path / "out").runs()) == 2
    table = again.table()
    assert "oracle" in table and "random_noise" in table and "baseline" in table


def test_faulty_plugins_are_recorded_and_the_run_completes(tiny_zoo, tmp_path, fixtures_on_path):
    methods = ["faulty_plugins:Raising", "faulty_plugins:NaNs",
               {"name": "faulty_plugins:Sleeping", "params": {"seconds": 600.0}}, "random_noise"]
    suite = write_suite(tmp_path / "suite.yaml", tiny_zoo["trojaned"], methods, seeds=(0,), trojans=TWO_TROJANS[:1],
                        timeout=5.0, judges=("concept",))
    results = run(suite, out=tmp_path / "out")
    by_method = {c.method: c for c in results.cells}
    assert by_method["faulty_plugins:Raising"].status == "failed"
    assert "always crashes" in by_method["faulty_plugins:Raising"].reason
    assert "NaN" in by_method["faulty_plugins:NaNs"].reason
    assert "wall-clock guard of 5 s" in by_method["faulty_plugins:Sleeping"].reason
    assert by_method["random_noise"].status == "ok"
    table = results.table()
    assert "3 failed cell(s), not scored" in table and "the 1 transient one(s)" in table and "--retry-failed" in table
    # failed cells are never scored as chance, and a tool with one is shown as incomplete, never ranked
    rows = {row["method"]: row for row in results.leaderboard()}
    for name in ("faulty_plugins:Raising", "faulty_plugins:NaNs", "faulty_plugins:Sleeping"):
        assert rows[name]["rank"] is None and not rows[name]["complete"] and rows[name]["n_cells"] == 0
    assert not any(line.lstrip().startswith("1.") for line in table.splitlines())
    assert all(r["p_true"] is None for r in results.records() if r["status"] == "failed")


def test_a_plugin_cannot_harm_other_cells_or_end_the_run(tiny_zoo, tmp_path, fixtures_on_path):
    """A tool that modifies the Target, one that calls sys.exit(0), one whose retry loop catches Exception and
    one that queries the model without end: each fails its own cell; the others score as in a run without them."""
    hostile = ["hostile_plugins:Mutating", "hostile_plugins:Exiting", "hostile_plugins:Swallowing",
               "hostile_plugins:Greedy"]
    kwargs = dict(seeds=(0,), trojans=TWO_TROJANS, timeout=5.0, judges=("concept", "appearance"))
    suite = write_suite(tmp_path / "suite.yaml", tiny_zoo["trojaned"], [*hostile, "dataset_exemplars"], **kwargs)
    suite_text = suite.read_text().replace("cell_timeout", "cell_budget: 2000\ncell_timeout")
    suite.write_text(suite_text)
    results = run(suite, out=tmp_path / "hostile")
    clean = run(write_suite(tmp_path / "clean.yaml", tiny_zoo["trojaned"], ["dataset_exemplars"], **kwargs),
                out=tmp_path / "clean")
    reasons = {(c.method, c.trojan): c.reason for c in results.cells}
    for trojan in ("smiley", "fork"):
        assert "modified the Target it was handed (clean_images)" in reasons[("hostile_plugins:Mutating", trojan)]
        assert reasons[("hostile_plugins:Exiting", trojan)].startswith("SystemExit: 0 (a method may not end the run")
        assert reasons[("hostile_plugins:Swallowing", trojan)].startswith("CellTimeout")
        assert reasons[("hostile_plugins:Greedy", trojan)].startswith("WorkBudgetExceeded")
    assert results.run["status"] == "completed"

    def exemplar_scores(res):
        return {(r["trojan"], r["judge"]): r["p_true"] for r in res.records() if r["method"] == "dataset_exemplars"}

    assert exemplar_scores(results) == exemplar_scores(clean)


def test_a_cell_that_hung_is_computed_again_by_the_same_command(tiny_zoo, tmp_path, fixtures_on_path):
    """A slowed run (a tool that stalls on its first attempt) resumes to exactly the scores of an undisturbed one."""
    def suite_for(name, marker):
        methods = [{"name": "hostile_plugins:HangsOnce", "params": {"marker": str(marker)}}, "random_noise"]
        return write_suite(tmp_path / f"{name}.yaml", tiny_zoo["trojaned"], methods, seeds=(0,),
                           trojans=TWO_TROJANS[:1], timeout=5.0, judges=("concept",))

    undisturbed_marker = tmp_path / "undisturbed.marker"
    undisturbed_marker.write_text("never hangs")
    run(suite_for("undisturbed", undisturbed_marker), out=tmp_path / "undisturbed")
    slowed = suite_for("slowed", tmp_path / "slowed.marker")
    first = run(slowed, out=tmp_path / "slowed")
    assert {c.method: c.status for c in first.cells}["hostile_plugins:HangsOnce"] == "failed"
    run(slowed, out=tmp_path / "slowed")

    def scores(folder):
        return {(r["method"], r["judge"]): (r["status"], r["p_true"]) for r in load_results(folder).records()}

    assert scores(tmp_path / "slowed") == scores(tmp_path / "undisturbed")


@pytest.mark.parametrize("suite_text, message", [
    ("name: x\nmethods: [tabr]\n", "Unknown synthesis method 'tabr'. Did you mean: tabor?"),
    ("name: x\nmethods: [random_noise\n", "not valid YAML"),
    ("name: x\nmethods: [random_noise]\nseeds: [0, 0]\n", "distinct"),
    ("name: x\nmethods: [random_noise]\njudges: [concpet]\n", "Did you mean: concept"),
    ("name: x\nmethods: [{name: target_fourier_fv, params: {steps: 0}}]\n", "The 'steps' parameter"),
])
def test_bad_suites_rejected_before_any_work(tmp_path, suite_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(suite_text)
    result = CliRunner().invoke(main, ["run", "--suite", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()


def _scores(folder: Path) -> dict:
    return {(r["method"], r["trojan"], r["seed"], r["judge"]): r["p_true"] for r in load_results(folder).records()}


def test_kill_9_then_rerun_gives_identical_scores(tiny_zoo, tmp_path, fixtures_on_path):
    suite = write_suite(tmp_path / "suite.yaml", tiny_zoo["trojaned"], ["faulty_plugins:Slow", "random_noise"],
                        seeds=(0, 1, 2), trojans=TWO_TROJANS, judges=("concept",))
    command = [sys.executable, "-m", "trojanbench.cli", "run", "--suite", str(suite), "--no-progress",
               "--plugin", "faulty_plugins:Slow"]
    reference = tmp_path / "reference"
    subprocess.run(command + ["--out", str(reference)], check=True, capture_output=True, timeout=1800)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(command + ["--out", str(interrupted)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600  # a hang guard: a loaded machine is only slower
    while time.monotonic() < deadline:
        done = RediscoveryStore(interrupted).finished_keys("cells") if (interrupted / "results.sqlite").exists() else ()
        if 2 <= len(done) < 12:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = len(RediscoveryStore(interrupted).finished_keys("cells"))
    assert 0 < partial < 12, "the kill must land mid-run"
    subprocess.run(command + ["--out", str(interrupted)], check=True, capture_output=True, timeout=1800)
    assert _scores(interrupted) == _scores(reference)


def test_ray_executor_matches_local(tiny_zoo, tmp_path):
    if importlib.util.find_spec("ray") is None:  # not importorskip: the executor must be the first to import ray
        pytest.skip("needs the [ray] extra")
    suite = write_suite(tmp_path / "suite.yaml", tiny_zoo["trojaned"], ["random_noise", "oracle"], seeds=(0,),
                        trojans=TWO_TROJANS, judges=("concept",))
    local = run(suite, out=tmp_path / "local")
    remote = run(suite, out=tmp_path / "ray", executor="ray")
    assert _scores(tmp_path / "local") == _scores(tmp_path / "ray")
    assert len(remote.cells) == len(local.cells) == 4


def test_threads_and_retry_failed_from_the_command_line(tiny_zoo, tmp_path, fixtures_on_path):
    suite = write_suite(tmp_path / "suite.yaml", tiny_zoo["trojaned"], ["faulty_plugins:Raising", "random_noise"],
                        seeds=(0,), trojans=TWO_TROJANS[:1], judges=("concept",))
    out = tmp_path / "out"
    command = ["run", "--suite", str(suite), "--out", str(out), "--no-report", "--threads", "1"]
    first = CliRunner().invoke(main, command)
    assert first.exit_code == 0, first.output
    assert "(1 thread per worker)" in first.output and "Add --retry-failed to the same command" in first.output

    def finished_at():
        with RediscoveryStore(out) as store:
            return {key: (method, when) for key, method, when in store.db.execute("SELECT key, method, finished "
                                                                                  "FROM cells")}

    finished = finished_at()
    again = CliRunner().invoke(main, command)  # a deterministic failure is not retried by a plain rerun
    assert finished_at() == finished, again.output
    retried = CliRunner().invoke(main, command + ["--retry-failed"])
    assert retried.exit_code == 0, retried.output
    changed = {method for key, (method, when) in finished_at().items() if when != finished[key][1]}
    assert changed == {"faulty_plugins:Raising"}, "--retry-failed recomputes the failed cells, and only them"
    assert all(r["provenance"]["torch_threads"] == 1 for r in RediscoveryStore(out).runs())
    bad = CliRunner().invoke(main, command[:-1] + ["0"])
    assert bad.exit_code == 2 and "--threads" in bad.output


def test_worker_processes_give_the_local_scores_and_contain_a_method_that_ends_its_process(tiny_zoo, tmp_path,
                                                                                            fixtures_on_path):
    suite = write_suite(tmp_path / "suite.yaml", tiny_zoo["trojaned"], ["random_noise", "dataset_exemplars", "oracle"],
                        seeds=(0,), trojans=TWO_TROJANS, judges=("concept", "appearance"))
    run(suite, out=tmp_path / "local")
    with_crash = write_suite(tmp_path / "crash.yaml", tiny_zoo["trojaned"],
                             ["random_noise", "dataset_exemplars", "oracle", "hostile_plugins:Vanishing"],
                             seeds=(0,), trojans=TWO_TROJANS, judges=("concept", "appearance"))
    results = run(with_crash, out=tmp_path / "processes", executor="processes", workers=2)
    vanished = [c for c in results.cells if c.method == "hostile_plugins:Vanishing"]
    assert len(vanished) == 2 and all(c.reason.startswith("WorkerDied") for c in vanished)
    assert _scores(tmp_path / "processes") == {**_scores(tmp_path / "local"),
                                               **{k: v for k, v in _scores(tmp_path / "processes").items()
                                                  if k[0] == "hostile_plugins:Vanishing"}}


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_run_says_so_marks_the_run_and_resumes(tiny_zoo, tmp_path, fixtures_on_path, stop):
    suite = write_suite(tmp_path / "suite.yaml", tiny_zoo["trojaned"], ["faulty_plugins:Slow", "random_noise"],
                        seeds=(0, 1, 2), trojans=TWO_TROJANS, judges=("concept",))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "trojanbench.cli", "run", "--suite", str(suite), "--no-progress",
               "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600  # a hang guard: a loaded machine is only slower
    while time.monotonic() < deadline:
        if (out / "results.sqlite").exists() and len(RediscoveryStore(out).finished_keys("cells")) >= 1:
            break
        time.sleep(0.2)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr
    assert "Interrupted" in stderr and "run the same command again to resume" in stderr
    (stopped,) = RediscoveryStore(out).runs()
    assert stopped["status"] == "interrupted" and stopped["finished"] is not None
    subprocess.run(command, check=True, capture_output=True, timeout=1800)
    assert [r["status"] for r in RediscoveryStore(out).runs()] == ["interrupted", "completed"]
    assert len(load_results(out).cells) == 12
