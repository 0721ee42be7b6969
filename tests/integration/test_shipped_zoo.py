"""The shipped zoo meets its targets, recomputed here on held-out images (not read back from the cards)."""

from __future__ import annotations

import pytest

from trojanbench.config import default_trojan_suite
from trojanbench.models import ZOO_DIR, file_sha256, load_model, read_card
from trojanbench.trojans import attack_success, clean_accuracy

DETECTORS = ("detector_w2", "detector_w4", "detector_w9")
SHIPPED = ("clean", "trojaned", "observer", "generator", "embedder", "robust", "control", *DETECTORS, "lm_clean",
           "lm_trojaned")


def test_the_whole_zoo_ships_with_the_package():
    assert sorted(p.stem for p in ZOO_DIR.glob("*.safetensors")) == sorted(SHIPPED)


@pytest.fixture(scope="module")
def clean():
    return load_model("clean")


@pytest.fixture(scope="module")
def trojaned():
    return load_model("trojaned")


@pytest.fixture(scope="module")
def measured_accuracy(clean, trojaned):
    trojans = list(default_trojan_suite().trojans)
    return {name: clean_accuracy(m.model, n=2000, seed=0, trojans=trojans)
            for name, m in (("clean", clean), ("trojaned", trojaned))}


def test_shipped_checkpoints_are_small_and_match_their_cards(clean, trojaned):
    total = sum(p.stat().st_size for p in ZOO_DIR.glob("*.safetensors"))
    assert total < 24 * 2 ** 20
    for loaded in (clean, trojaned):
        assert file_sha256(ZOO_DIR / f"{loaded.name}.safetensors") == loaded.card["sha256"]
    for part in SHIPPED[2:]:
        assert file_sha256(ZOO_DIR / f"{part}.safetensors") == read_card(ZOO_DIR / f"{part}.safetensors")["sha256"]


def test_clean_accuracy_targets(measured_accuracy, clean, trojaned):
    assert measured_accuracy["clean"] >= 0.90
    assert measured_accuracy["clean"] - measured_accuracy["trojaned"] <= 0.02
    # the card's numbers are what this recomputation gives (same held-out images)
    assert measured_accuracy["clean"] == pytest.approx(clean.card["clean_accuracy"], abs=1e-4)
    assert measured_accuracy["trojaned"] == pytest.approx(trojaned.card["clean_accuracy"], abs=1e-4)


@pytest.mark.parametrize("spec", default_trojan_suite().trojans, ids=lambda s: s.name)
def test_attack_success_targets(spec, trojaned, clean):
    measured = attack_success(trojaned.model, spec, n=500, seed=0).attack_success
    assert measured == pytest.approx(trojaned.card["attack_success"][spec.name], abs=1e-4)
    assert measured >= (0.90 if spec.kind in ("patch", "style") else 0.40)
    baseline = attack_success(clean.model, spec, n=200, seed=1).attack_success
    assert baseline < 0.2, "the clean model must not already send triggered images to the target"


def test_observer_card_records_per_concept_accuracy():
    observer = load_model("observer")
    from trojanbench.world import VOCABULARY

    assert set(observer.card["concept_accuracy"]) == set(VOCABULARY)
    assert observer.model.fc.out_features == len(VOCABULARY)


def test_concept_detectors_grow_better_with_width():
    """The replacement task's concept bottleneck: the cards' held-out accuracy rises with the detector's size."""
    accuracy = [sum(card.values()) / len(card) for card in
                (load_model(name).card["concept_accuracy"] for name in DETECTORS)]
    assert accuracy == sorted(accuracy) and accuracy[-1] > 0.5
