"""The runner end to end on the tiny zoo: scores, store, faults, resume after kill -9, bad input, Ray."""

from __future__ import annotations

import os
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


@pytest.fixture
def fixtures_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FIXTURES), os.environ.get("PYTHONPATH", "")]))


def write_suite(path: Path, model: Path, methods: list, *, seeds=(0, 1), trojans=None, timeout=60.0,
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
               {"name": "faulty_plugins:Sleeping", "params": {"seconds": 30.0}}, "random_noise"]
    suite = write_suite(tmp_path / "suite.yaml", tiny_zoo["trojaned"], methods, seeds=(0,), trojans=TWO_TROJANS[:1],
                        timeout=2.0, judges=("concept",))
    start = time.monotonic()
    results = run(suite, out=tmp_path / "out")
    assert time.monotonic() - start < 25, "the sleeping tool must be cut off at its budget"
    by_method = {c.method: c for c in results.cells}
    assert by_method["faulty_plugins:Raising"].status == "failed"
    assert "always crashes" in by_method["faulty_plugins:Raising"].reason
    assert "NaN" in by_method["faulty_plugins:NaNs"].reason
    assert "time budget" in by_method["faulty_plugins:Sleeping"].reason
    assert by_method["random_noise"].status == "ok"
    assert "failed cell(s) counted as chance" in results.table()


@pytest.mark.parametrize("suite_text, message", [
    ("name: x\nmethods: [tabr]\n", "Unknown method 'tabr'. Did you mean: tabor?"),
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
    command = [sys.executable, "-m", "trojanbench.cli", "run", "--suite", str(suite), "--quiet",
               "--plugin", "faulty_plugins:Slow"]
    reference = tmp_path / "reference"
    subprocess.run(command + ["--out", str(reference)], check=True, capture_output=True, timeout=300)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(command + ["--out", str(interrupted)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (interrupted / "results.sqlite").exists() and 2 <= len(RediscoveryStore(interrupted).finished_keys("cells")) < 12:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = len(RediscoveryStore(interrupted).finished_keys("cells"))
    assert 0 < partial < 12, "the kill must land mid-run"
    subprocess.run(command + ["--out", str(interrupted)], check=True, capture_output=True, timeout=300)
    assert _scores(interrupted) == _scores(reference)


def test_ray_executor_matches_local(tiny_zoo, tmp_path):
    pytest.importorskip("ray")
    suite = write_suite(tmp_path / "suite.yaml", tiny_zoo["trojaned"], ["random_noise", "oracle"], seeds=(0,),
                        trojans=TWO_TROJANS, judges=("concept",))
    local = run(suite, out=tmp_path / "local")
    remote = run(suite, out=tmp_path / "ray", executor="ray")
    assert _scores(tmp_path / "local") == _scores(tmp_path / "ray")
    assert len(remote.cells) == len(local.cells) == 4
