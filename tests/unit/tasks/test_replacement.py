"""The replacement task's parts: budgets, the area under the log-budget curve, the explanation rank, the
anchors' fidelity against ground truth, evaluation images that never overlap the fit images, and the measured
explanation check on the shipped trojaned model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from trojanbench.audit import trojans_of
from trojanbench.config import TrojanSpec
from trojanbench.errors import ConfigError
from trojanbench.methods.replacement import ConceptLinear, ConstantPredictor, NetworkReplacement, ReplacementModel
from trojanbench.methods.replacement import count_nonzero_parameters
from trojanbench.models import load_model
from trojanbench.tasks.replacement.metrics import (
    area_under_log_budget,
    evaluation_sets,
    explanation_rank,
    fit_data,
    measure,
    ood_set,
    original_predictions,
    parameter_budget,
)
from trojanbench.world import OBJECT_CLASSES, generate_scenes

from image_digests import image_digests


class TinyNet(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 5, stride=4)
        self.fc = nn.Linear(8, len(OBJECT_CLASSES))

    def forward(self, images):
        return self.fc(torch.relu(self.conv(images)).mean((2, 3)))


@pytest.mark.parametrize("budget, expected", [("3000", 3000), ("1%", 3110), ("0.1%", 311), ("10%", 31096)])
def test_parameter_budget(budget, expected):
    assert parameter_budget(budget, 310960) == expected


@pytest.mark.parametrize("budget", ["0", "1.5", "abc", "-1%", "0.0001%"])
def test_bad_parameter_budgets_are_refused(budget):
    with pytest.raises(ConfigError, match="(?i)budget"):
        parameter_budget(budget, 310960)


def test_area_under_log_budget_matches_the_trapezoid_rule():
    # equal steps in log budget: the mean of the two trapezoids
    assert area_under_log_budget([10, 100, 1000], [0.2, 0.4, 1.0]) == pytest.approx((0.3 + 0.7) / 2)
    assert area_under_log_budget([1000, 10, 100], [1.0, 0.2, 0.4]) == pytest.approx(0.5)  # order does not matter
    assert area_under_log_budget([10, 1000], [0.5, 0.5]) == pytest.approx(0.5)
    assert area_under_log_budget([50], [0.7]) == pytest.approx(0.7)


class Scores(ReplacementModel):
    def __init__(self, scores):
        self.scores = scores

    def concept_scores(self, class_index):
        return self.scores


def test_explanation_rank_sets_the_class_shapes_aside_and_counts_ties_against_the_trigger():
    spec = TrojanSpec(name="smiley", kind="patch", trigger="smiley", target=OBJECT_CLASSES.index("bowtie"))
    scores = {"bowtie": 9.0, "kite": 4.0, "smiley": 2.0, "sun": 1.0, "jaguar": 0.5}
    assert explanation_rank(Scores(scores), spec, OBJECT_CLASSES) == 1  # class shapes do not count
    assert explanation_rank(Scores({**scores, "sun": 2.0}), spec, OBJECT_CLASSES) == 2  # a tie goes against it
    assert explanation_rank(Scores({**scores, "frowny": 3.0}), spec, OBJECT_CLASSES) == 2
    assert explanation_rank(NetworkReplacement(TinyNet()), spec, OBJECT_CLASSES) is None  # opaque: no rank


@pytest.fixture(scope="module")
def small_sets():
    trojans = list(trojans_of(load_model("trojaned")).trojans)[::4]  # one patch, one style, one natural
    return evaluation_sets(trojans, n_clean=60, n_per_trojan=12, seed=0)


def test_the_original_scores_fidelity_one_and_the_constant_its_class_frequency(small_sets):
    network = TinyNet()
    original = original_predictions(network, small_sets)
    itself = measure(NetworkReplacement(network), small_sets, original, OBJECT_CLASSES)
    assert itself["fidelity"]["clean"] == 1.0 and itself["fidelity"]["ood"] == 1.0
    assert set(itself["fidelity"]["triggered"].values()) == {1.0}
    assert set(itself["fidelity"]["near_miss"].values()) == {1.0}
    assert itself["parameters"] == count_nonzero_parameters(network)
    for constant_class in (0, int(original["clean"].mode().values)):
        constant = measure(ConstantPredictor(constant_class), small_sets, original, OBJECT_CLASSES)
        share = float((original["clean"] == constant_class).float().mean())
        assert constant["fidelity"]["clean"] == pytest.approx(share)
        for trojan, predictions in original["triggered"].items():
            assert constant["fidelity"]["triggered"][trojan] == pytest.approx(
                float((predictions == constant_class).float().mean()))
        assert constant["parameters"] == 1


def test_evaluation_images_never_overlap_the_fit_images(small_sets):
    data = fit_data(TinyNet(), 200, seed=0, detectors={})
    fit = image_digests(data.images)
    for images in (small_sets.clean, small_sets.ood, *small_sets.triggered.values(), *small_sets.near_miss.values()):
        assert not fit & image_digests(images)
    assert len(small_sets.near_miss) == len(small_sets.trojans)


def test_ood_scenes_are_new_and_deterministic():
    ood = ood_set(20, seed=3)
    assert ood.shape == (20, 3, 64, 64) and torch.equal(ood, ood_set(20, seed=3))
    assert not image_digests(ood) & image_digests(generate_scenes("test", 200, seed=3).images)
    assert 0 <= float(ood.min()) and float(ood.max()) <= 1


@pytest.mark.slow
def test_concept_linear_names_the_patch_triggers_first_on_the_shipped_trojaned_model():
    """Measured on the shipped model and detectors with the default suite's fit set (16000 images, seed 0) at
    the 10% budget: the concept-linear replacement's weights for each universal patch trojan's target class put
    the trigger icon first."""
    loaded = load_model("trojaned")
    patches = [t for t in trojans_of(loaded).trojans if t.kind == "patch" and t.source is None]
    data = fit_data(loaded.model, 16000, seed=0)
    replacement = ConceptLinear().replace(loaded.model, data, parameter_budget("10%", 310960), seed=0)
    assert {t.name: explanation_rank(replacement, t, OBJECT_CLASSES) for t in patches} == {t.name: 1 for t in patches}


def test_detector_names_and_widths_round_trip():
    from trojanbench.zoo.observer import detector_name, detector_width

    assert detector_width(detector_name(9)) == 9
    assert [detector_width(name) for name in ("observer", "detector_wx", "detector_w")] == [None, None, None]


def _replacement_folder(folder, cells):
    """A hand-built replacement store with trojans a and b: ``cells`` as ``(label, budget parameters, seed,
    status)``, each with fidelity 0.5 + seed / 10 on every distribution."""
    from trojanbench.engine import Store
    from trojanbench.tasks.replacement.results import REPLACEMENT_CELLS

    with Store(folder, cell_tables=(REPLACEMENT_CELLS,)) as store:
        keys = [f"{label}-{budget}-{seed}" for label, budget, seed, _ in cells]
        run_id = store.start_run({"task": "replacement", "cell_keys": keys, "budgets": ["100", "1000"],
                                  "trojan_kinds": {"a": "patch", "b": "style"}, "seeds": [0, 1]}, {})
        for key, (label, budget, seed, status) in zip(keys, cells):
            value = 0.5 + seed / 10
            measures = {"fidelity": {"clean": value, "ood": value, "triggered": {"a": value, "b": value - 0.2},
                                     "near_miss": {"a": value, "b": value}},
                        "attack_success": {"a": 0.9, "b": 0.8}, "explanation_rank": {"a": None, "b": None},
                        "top_concepts": {"a": [], "b": []}}
            store.record_json_cell(REPLACEMENT_CELLS.name, run_id, {
                "key": key, "method": label, "label": label, "role": "anchor" if label == "original" else "method",
                "params": {}, "budget": str(budget), "budget_parameters": budget, "seed": seed, "status": status,
                "reason": None if status == "ok" else "boom", "seconds": 1.0, "measures": measures})
        store.finish_run(run_id)


def test_each_replacement_row_says_how_many_cells_it_rests_on_and_hides_a_one_cell_interval(tmp_path):
    from trojanbench.report import markdown_summary, write_report
    from trojanbench.tasks.replacement import load_replacement_results

    cells = [("linear", budget, seed, "ok") for budget in (100, 1000) for seed in (0, 1)]
    cells[-1] = ("linear", 1000, 1, "over_budget")  # scored as the constant predictor, counted as failed
    cells += [("tree", budget, 0, "ok") for budget in (100, 1000)] + [("original", 5000, s, "ok") for s in (0, 1)]
    _replacement_folder(tmp_path, cells)
    results = load_replacement_results(tmp_path)
    assert results.cell_counts("linear") == {"n_cells": 3, "failed": 1}
    assert results.cell_counts("linear", 1000) == {"n_cells": 1, "failed": 1}
    assert results.cell_counts("tree", 100) == {"n_cells": 1, "failed": 0}
    assert results.summary("linear", 1000, "clean").ci_low < results.summary("linear", 1000, "clean").ci_high
    assert math.isnan(results.summary("tree", 100, "clean").ci_low)  # one seed: a point, not an interval
    assert not math.isnan(results.summary("tree", 100, "triggered").ci_low)  # two trojans
    lines = results.table().splitlines()
    assert lines[2].endswith("cells") and lines[3].startswith("linear") and lines[3].endswith(" 3 (1 failed)")
    per_budget = [line for line in lines if line.split()[:2] == ["linear", "1000*"]]
    assert len(per_budget) == 1 and per_budget[0].endswith(" 1 (1 failed)")
    assert "| 1 (1 failed) |" in markdown_summary(tmp_path)
    html = write_report(tmp_path).read_text(encoding="utf-8")
    table = html[html.index('id="replacement-budgets"'):html.index("</table>", html.index('id="replacement-budgets"'))]
    assert '<td>1 <span class="bad" title="1 failed or over budget">(1)</span></td>' in table
    assert "0.500 –" in table  # the tree's clean fidelity at one seed
    areas = html[html.index('id="replacement-areas"'):html.index("</table>", html.index('id="replacement-areas"'))]
    assert '<td>3 <span class="bad" title="1 failed or over budget">(1)</span></td>' in areas
