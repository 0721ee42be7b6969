"""What `implant`, `zoo build` and `audit` tell the user: progress on stderr, measures against thresholds (warnings
recorded in the card), and no files nobody asked for."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from trojanbench.cli import main
from trojanbench.models import read_card
from trojanbench.trojans.implant import MIN_ATTACK_SUCCESS, MIN_CLEAN_ACCURACY

pytestmark = pytest.mark.slow


def test_implant_shows_progress_reports_against_thresholds_and_records_warnings(tiny_zoo, tmp_path, monkeypatch):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"trojans": [{"name": "faint", "kind": "style", "trigger": "marble",
                                                 "target": "kite", "poison_fraction": 0.01}]}))
    out = tmp_path / "implanted"
    result = CliRunner().invoke(main, ["implant", "--model", str(tiny_zoo["clean"]), "--trojans", str(spec),
                                       "--out", str(out), "--n-train", "300", "--epochs", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "implant · epoch 1/1 · loss" in result.stderr and "ETA" in result.stderr
    card = read_card(out / "model.safetensors")
    assert card["thresholds"] == {"clean_accuracy": MIN_CLEAN_ACCURACY, "attack_success": MIN_ATTACK_SUCCESS}
    assert any("'faint' has attack success" in w for w in card["warnings"])  # one epoch of 300 images plants nothing
    assert "threshold 75%" in result.stdout and "BELOW" in result.stdout
    assert f"with {len(card['warnings'])} warning(s)" in result.stdout
    assert "below 75%" in result.stderr  # logged as a warning too

    monkeypatch.chdir(tmp_path)
    audit = CliRunner().invoke(main, ["audit", "--model", str(out / "model.safetensors"), "--quick"],
                               catch_exceptions=False)
    assert audit.exit_code == 0, audit.output
    assert "model model" not in audit.output and f"model {out / 'model.safetensors'}" in audit.output
    assert not (tmp_path / "trojanbench-audit").exists() and "Wrote" not in audit.output


def test_zoo_build_shows_each_training_runs_progress(tmp_path):
    result = CliRunner().invoke(main, ["zoo", "build", "--tiny", "--only", "clean", "--only", "generator",
                                       "--out", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "clean · epoch 2/2 · loss" in result.stderr and "[8/8] generator · loss" in result.stderr
    assert "ETA" in result.stderr and "clean:" in result.stdout
    quiet = CliRunner().invoke(main, ["zoo", "build", "--tiny", "--only", "generator", "--out", str(tmp_path / "q"),
                                      "--no-progress"], catch_exceptions=False)
    assert quiet.exit_code == 0 and "generator ·" not in quiet.stderr
