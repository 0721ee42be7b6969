"""The judge-validity battery: its checks tell a judge that sees nothing, and one that answers without looking, from
a judge that sees; its pictures stay imperceptibly close where they must; it is deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trojanbench.config import TrojanSpec
from trojanbench.judges import Judge, build_question, get_judge
from trojanbench.judges.battery import (CHANCE, NULL_TOLERANCE, PERTURBATION, content_free_scenes, half_visibility,
                                        run_battery, toward_class, toward_option)
from trojanbench.models import load_model

SMILEY = TrojanSpec(name="smiley", kind="patch", trigger="smiley", target=3)
FORK = TrojanSpec(name="fork", kind="natural", trigger="fork", target=3)


class SeesNothing(Judge):
    name = "sees_nothing"

    def option_scores(self, images, question):
        return torch.zeros(len(images), len(question.options))


class AlwaysSaysTruth(Judge):
    """Answers the question without looking at the pictures: what the nulls exist to catch."""

    name = "always_says_truth"

    def option_scores(self, images, question):
        logits = torch.full((len(images), len(question.options)), -10.0)
        logits[:, question.truth_index] = 10.0
        return logits


class ReadsPixelNoise(Judge):
    """Sees the true option in a fine checkerboard of pixel noise: at chance on smooth pictures, and swayed by a change
    nobody would see (what the judge-attack null exists to catch)."""

    name = "reads_pixel_noise"

    def option_scores(self, images, question):
        checker = (torch.arange(images.shape[-1])[:, None] + torch.arange(images.shape[-1])) % 2 * 2 - 1.0
        logits = torch.zeros(len(images), len(question.options))
        logits[:, question.truth_index] = 150 * (images * checker).mean((1, 2, 3))
        return logits


def _by_name(checks):
    return {check.name: check for check in checks}


@pytest.mark.parametrize("trojan", [SMILEY, FORK], ids=["patch", "natural"])
def test_a_judge_that_sees_nothing_fails_the_oracle_and_confusion_and_passes_the_nulls(trojan):
    checks = _by_name(run_battery(SeesNothing(), build_question(trojan, 0), trojan))
    assert checks["oracle_top1"].value == 0 and not checks["oracle_top1"].passed  # a tie at the top is a miss
    assert checks["oracle_p_true"].value == pytest.approx(CHANCE) and not checks["oracle_p_true"].passed
    for name in ("null_noise", "null_flat", "null_scenes"):
        assert checks[name].value == pytest.approx(CHANCE) and checks[name].margin == pytest.approx(NULL_TOLERANCE)
    assert "null_scenes_perturbed" not in checks  # no audited model given
    assert "null_scenes_attacked" not in checks  # its scores carry no gradient: it cannot be attacked by PGD
    assert checks["confusion"].value == 0 and not checks["confusion"].passed
    assert checks["dose_response"].value == 0 and checks["dose_response"].passed
    assert checks["dose_response"].detail["half_visibility"] is None  # never above chance


def test_a_judge_that_answers_without_looking_fails_every_null_and_the_confusion_matrix():
    question = build_question(SMILEY, 1)
    checks = _by_name(run_battery(AlwaysSaysTruth(), question, SMILEY))
    assert checks["oracle_top1"].passed and checks["oracle_p_true"].passed
    assert all(not checks[name].passed and checks[name].value > 0.9 for name in ("null_noise", "null_flat",
                                                                               "null_scenes"))
    matrix = checks["confusion"].detail["matrix"]
    assert [row[question.truth_index] for row in matrix] == [1.0] * 8  # every option is taken for the truth
    assert not checks["confusion"].passed and checks["confusion"].detail["worst_taken_for"] == question.truth


def test_the_concept_judge_on_a_planted_patch_passes_the_nulls_and_its_result_is_deterministic():
    loaded = load_model("trojaned")
    question = build_question(SMILEY, 0)
    first = run_battery(get_judge("concept"), question, SMILEY, loaded.model)
    again = run_battery(get_judge("concept"), question, SMILEY, loaded.model)
    assert [c.to_dict() for c in first] == [c.to_dict() for c in again]
    checks = _by_name(first)
    assert all(checks[f"null_{name}"].passed for name in ("noise", "flat", "scenes", "scenes_perturbed"))
    assert checks["oracle_p_true"].value > 0.6  # it sees the smiley it was shown
    curve = checks["dose_response"].detail["p_true"]
    assert curve[0] > curve[-1] == pytest.approx(CHANCE, abs=NULL_TOLERANCE)  # fully faded: nothing to see


def test_the_perturbed_null_stays_within_its_budget_and_moves_the_model_toward_the_target():
    model = load_model("trojaned").model
    scenes = content_free_scenes(0, 8)
    moved = toward_class(model, scenes, target=3)
    assert (moved - scenes).abs().max() <= PERTURBATION + 1e-6 and moved.min() >= 0 and moved.max() <= 1
    with torch.no_grad():
        assert model(moved).log_softmax(1)[:, 3].mean() > model(scenes).log_softmax(1)[:, 3].mean()


def test_an_attack_on_the_judge_itself_catches_a_judge_swayed_by_invisible_changes():
    question = build_question(SMILEY, 0)
    checks = _by_name(run_battery(ReadsPixelNoise(), question, SMILEY))
    assert checks["null_scenes"].passed  # smooth scenes hold no checkerboard
    assert checks["null_scenes_attacked"].value > 0.5 and not checks["null_scenes_attacked"].passed
    moved = toward_option(ReadsPixelNoise(), content_free_scenes(0, 4), question, question.truth_index)
    assert (moved - content_free_scenes(0, 4)).abs().max() <= PERTURBATION + 1e-6


def test_half_visibility_interpolates_where_p_true_falls_halfway_to_chance():
    assert half_visibility((1.0, 0.5, 0.0), [0.9, 0.5, CHANCE]) == pytest.approx(1 - 0.5 * (0.9 - 0.5125) / 0.4)
    assert half_visibility((1.0, 0.5, 0.0), [0.9, 0.85, 0.8]) is None  # never falls that far
    assert half_visibility((0.0, 2.0, 4.0), [0.6, 0.2, CHANCE]) == pytest.approx(2 * (0.6 - 0.3625) / 0.4)


def test_the_battery_runs_on_a_users_trigger_image(logo_png):
    trojan = TrojanSpec(name="logo", kind="patch", trigger=str(logo_png), target=2)
    question = build_question(trojan, 0)
    checks = _by_name(run_battery(SeesNothing(), question, trojan))
    assert question.truth == str(logo_png) and len(checks["confusion"].detail["matrix"]) == 8
    assert checks["oracle_p_true"].value == pytest.approx(CHANCE)


def test_the_held_out_triggers_are_what_their_script_draws(tmp_path, monkeypatch):
    import importlib.util

    import numpy as np
    from PIL import Image

    folder = Path(__file__).parents[2] / "fixtures" / "heldout_triggers"
    spec = importlib.util.spec_from_file_location("draw_heldout", folder / "draw.py")
    draw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draw)
    monkeypatch.setattr(draw, "HERE", tmp_path)
    draw.main()
    names = sorted(p.name for p in folder.glob("*.png"))
    assert names == sorted(p.name for p in tmp_path.glob("*.png")) and len(names) == 7
    for name in names:
        assert np.array_equal(np.asarray(Image.open(folder / name)), np.asarray(Image.open(tmp_path / name))), name


def test_mild_changes_are_small_and_the_stability_check_reports_each():
    from trojanbench.judges.battery import mild_changes

    scenes = content_free_scenes(0, 4)
    changed = mild_changes(scenes)
    assert set(changed) == {"blur", "jpeg", "shift"}
    for images in changed.values():
        assert images.shape == scenes.shape and 0 < (images - scenes).abs().mean() < 0.08
        assert images.min() >= 0 and images.max() <= 1
    checks = _by_name(run_battery(AlwaysSaysTruth(), build_question(SMILEY, 0), SMILEY))
    assert checks["stability"].detail["kept"] == {"blur": 1.0, "jpeg": 1.0, "shift": 1.0}
