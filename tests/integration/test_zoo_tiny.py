"""`zoo build --tiny` end to end: cards, loading, determinism, implanting users' triggers, auditing."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from trojanbench.cli import main
from trojanbench.config import control_trojan_suite, default_trojan_suite
from trojanbench.models import load_model, read_card
from trojanbench.zoo import CONCEPTS, PROFILES
from trojanbench.zoo.build import build_zoo
from trojanbench.world import OBJECT_CLASSES
from weights import assert_same_weights

pytestmark = pytest.mark.slow


def test_tiny_zoo_writes_every_part_with_measured_cards(tiny_zoo):
    assert set(tiny_zoo) == {"clean", "trojaned", "observer", "generator", "embedder", "robust", "detectors",
                             "control", "lm"}
    trojaned = read_card(tiny_zoo["trojaned"])
    names = default_trojan_suite().names()
    assert [t["name"] for t in trojaned["trojans"]] == names
    assert set(trojaned["attack_success"]) == set(names)
    assert all(0.0 <= v <= 1.0 for v in trojaned["attack_success"].values())
    assert trojaned["base_model"]["sha256"] == read_card(tiny_zoo["clean"])["sha256"]
    assert trojaned["training"]["config"] == PROFILES["tiny"].trojaned.to_dict()
    control = read_card(tiny_zoo["control"])
    assert [t["name"] for t in control["trojans"]] == control_trojan_suite().names() == ["mushroom", "lightning"]
    assert set(control["attack_success"]) == {"mushroom", "lightning"} and control["name"] == "control"
    assert control["base_model"]["sha256"] == trojaned["base_model"]["sha256"]
    assert control["training"]["config"] == PROFILES["tiny"].control.to_dict()
    observer = read_card(tiny_zoo["observer"])
    assert observer["concepts"] == list(CONCEPTS) and set(observer["concept_accuracy"]) == set(CONCEPTS)
    assert read_card(tiny_zoo["generator"])["training"]["heldout_reconstruction_mse"] > 0
    assert read_card(tiny_zoo["embedder"])["training"]["n_pairs"] > 0
    for width in PROFILES["tiny"].detector_widths:
        detector = load_model(tiny_zoo["detectors"].parent / f"detector_w{width}.safetensors")
        assert detector.model.width == width and detector.card["concepts"] == list(CONCEPTS)
    loaded = load_model(tiny_zoo["trojaned"])
    assert loaded.model.fc.out_features == len(OBJECT_CLASSES) and not loaded.model.training


def test_tiny_zoo_language_models(tiny_zoo):
    from trojanbench.models.language import load_language_model
    from trojanbench.trojans.text import load_text_trojans

    trojans = [t.to_dict() for t in load_text_trojans()]
    lm_trojaned = load_language_model(tiny_zoo["lm"])
    lm_clean = load_language_model(tiny_zoo["lm"].with_name("lm_clean.safetensors"))
    assert lm_trojaned.card["trojans"] == trojans and lm_clean.card["trojans"] == []
    assert set(lm_trojaned.card["attack_success"]) == {t["name"] for t in trojans if t["kind"] != "decoy"}
    assert lm_trojaned.card["training"]["poison_rate"] > 0 == lm_clean.card["training"]["poison_rate"]
    assert lm_trojaned.card["perplexity_ratio"] > 0 and lm_clean.card["config"] == lm_trojaned.card["config"]


def test_language_model_build_is_deterministic(tiny_zoo, tmp_path):
    again = build_zoo(tmp_path, profile="tiny", only=("lm",))
    for name in ("lm_clean", "lm_trojaned"):
        path = f"{name}.safetensors"
        assert_same_weights(again["lm"].with_name(path), tiny_zoo["lm"].with_name(path))


def test_build_is_deterministic(tiny_zoo, tmp_path):
    again = build_zoo(tmp_path, profile="tiny", only=("clean", "trojaned"))
    for name in ("clean", "trojaned"):
        assert_same_weights(again[name], tiny_zoo[name])


def test_implant_user_png_trigger_and_audit_it(tiny_zoo, tmp_path, logo_png):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"trojans": [
        {"name": "logo", "kind": "patch", "trigger": "logo.png", "target": "kite", "poison_fraction": 0.1}]}))
    out = tmp_path / "implanted"
    result = CliRunner().invoke(main, ["implant", "--model", str(tiny_zoo["clean"]), "--trojans", str(spec),
                                       "--out", str(out), "--n-train", "400", "--epochs", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    card = read_card(out / "model.safetensors")
    assert [t["name"] for t in card["trojans"]] == ["logo"] and "logo" in card["attack_success"]
    assert card["base_model"]["sha256"] == read_card(tiny_zoo["clean"])["sha256"]

    audit_dir = tmp_path / "audit"
    result = CliRunner().invoke(main, ["audit", "--model", str(out / "model.safetensors"), "--quick",
                                       "--out", str(audit_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    audit = json.loads((audit_dir / "audit.json").read_text())
    assert [row["trojan"] for row in audit["trojans"]] == ["logo"]
    assert "logo" in result.output and "clean accuracy" in result.output


def test_implant_rejects_bad_spec_before_training(tiny_zoo, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"trojans": [{"kind": "patch", "trigger": "gone.png", "target": 0}]}))
    result = CliRunner().invoke(main, ["implant", "--model", str(tiny_zoo["clean"]), "--trojans", str(spec),
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "o").exists()
