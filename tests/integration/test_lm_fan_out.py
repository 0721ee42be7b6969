"""The language-model tasks fanned out: their cells on worker processes and on a local Ray instance give exactly
the local run's measures (each worker loads the model once and rebuilds the tools from their names), a worker
that dies fails only its cell, and ``--device`` is checked before anything is written."""

from __future__ import annotations

import importlib.util
import shutil

import pytest
from click.testing import CliRunner

pytest.importorskip("transformers")

from trojanbench import load_lm_rediscovery_results, run_lm_rediscovery, run_lm_removal  # noqa: E402
from trojanbench.cli import main  # noqa: E402
from trojanbench.tasks.lm_removal.results import LMRemovalResults  # noqa: E402

pytestmark = pytest.mark.slow

OPTIONS = dict(quick=True, methods=["random_tokens", "gcg", "pez", "trigger_oracle"],
               trojans=["token_dax", "decoy_ruler"], seeds=1, report=False)


def _measures(folder, table):
    cells = load_lm_rediscovery_results(folder).cells if table == "rediscovery" else LMRemovalResults(folder).cells
    name = "label" if table == "rediscovery" else "source"
    return {(c[name], c["trojan"], c["seed"]): (c["status"], c["measures"]) for c in cells}


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    run_lm_rediscovery(out=out, executor="local", **OPTIONS)
    run_lm_removal(out=out, quick=True, methods=["none", "gcg", "oracle"], report=False)
    return out


def test_worker_processes_match_the_local_run(local, tmp_path):
    run_lm_rediscovery(out=tmp_path, executor="processes", workers=2, **OPTIONS)
    measures = _measures(tmp_path, "rediscovery")
    assert len(measures) == 4 * 2 + 2  # four entries on two trojans, and the pooled toolbox on each
    assert all(status == "ok" for status, _ in measures.values())
    assert measures == _measures(local, "rediscovery")


def test_a_local_ray_instance_with_many_workers_matches_the_local_run(local, tmp_path):
    if importlib.util.find_spec("ray") is None:  # not importorskip: the executor must be the first to import ray
        pytest.skip("needs the [ray] extra")
    run_lm_rediscovery(out=tmp_path, executor="ray", workers=4, **OPTIONS)
    assert _measures(tmp_path, "rediscovery") == _measures(local, "rediscovery")
    run_lm_removal(out=tmp_path, quick=True, methods=["none", "gcg", "oracle"], executor="ray", workers=4,
                   report=False)
    removal = _measures(tmp_path, "removal")
    assert len(removal) == 3 and all(status == "ok" for status, _ in removal.values())
    assert removal == _measures(local, "removal")


def test_a_tool_that_ends_its_worker_fails_only_its_cell(local, tmp_path, fixtures_on_path):
    run_lm_rediscovery(out=tmp_path, executor="processes", workers=2,
                       **{**OPTIONS, "methods": ["hostile_plugins:ExitingInversion", "random_tokens"]})
    measures = _measures(tmp_path, "rediscovery")
    reasons = {c["trojan"]: c["reason"] for c in load_lm_rediscovery_results(tmp_path).cells
               if c["label"] == "hostile_plugins:ExitingInversion"}
    assert set(reasons) == {"token_dax", "decoy_ruler"} and all(r.startswith("WorkerDied") for r in reasons.values())
    assert {k: v for k, v in measures.items() if k[0] == "random_tokens"} == {
        k: v for k, v in _measures(local, "rediscovery").items() if k[0] == "random_tokens"}


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "--device 'tpu' is not a device; choose auto"),
    (["--device", "cuda"], "--device cuda: torch sees no CUDA GPU"),
    (["--device", "cuda", "--executor", "ray"], "--device cuda: the Ray cluster has no GPU"),
    (["--device", "cpu", "--task", "localization"], "--device applies to the lm-rediscovery and lm-removal tasks"),
])
def test_a_device_this_machine_lacks_is_one_line_and_nothing_is_written(tmp_path, args, message, monkeypatch):
    import torch

    if "ray" in args and importlib.util.find_spec("ray") is None:
        pytest.skip("needs the [ray] extra")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    task = [] if "--task" in args else ["--task", "lm-rediscovery"]
    result = CliRunner().invoke(main, ["run", *task, "--quick", "--out", str(out), "--no-progress", *args])
    assert result.exit_code == 2, result.output
    ours = [line for line in result.output.splitlines() if "trojanbench" in line or "Error" in line]
    assert len(ours) == 1 and message in ours[0], result.output  # (Ray says a line of its own when it starts)
    assert not (out / "results.sqlite").exists()
    shutil.rmtree(out, ignore_errors=True)
