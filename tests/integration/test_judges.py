"""Judge validity on the shipped zoo: the oracle is recognised, noise scores at chance, options are
interchangeable with user images, and the judges never need the audited model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trojanbench.config import TrojanSpec, default_trojan_suite
from trojanbench.judges import N_OPTIONS, build_question, get_judge
from trojanbench.judges.battery import CHANCE, NULL_TOLERANCE, content_free_scenes, toward_option
from trojanbench.methods import Target
from trojanbench.models import load_model
from trojanbench.registry import get_method
from trojanbench.engine.stats import bootstrap_interval
from trojanbench.tasks.rediscovery.results import ORACLE_TOP1_BAR, contains_chance
from trojanbench.tasks.rediscovery import synthesize_for_trojan

JUDGES = ("concept", "appearance", "robust")
RECOGNISING_JUDGES = ("concept", "appearance")
"""The judges that reach the oracle bar pooled over the default questions (the robust judge does not: its battery in
every report says so, trojan by trojan)."""
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def target():
    return Target.from_model(load_model("trojaned"), n_clean=64, n_patches=64)


@pytest.mark.parametrize("judge_name", JUDGES)
def test_scores_are_probabilities_over_the_options(judge_name):
    judge = get_judge(judge_name)
    question = build_question(default_trojan_suite().get("jaguar"), 0)
    scores = judge.score(torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)), question)
    assert scores.shape == (N_OPTIONS,)
    assert np.all(scores >= 0) and scores.sum() == pytest.approx(1.0)
    assert np.array_equal(scores, judge.score(torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
                                              question)), "deterministic"


@pytest.mark.slow
@pytest.mark.parametrize("judge_name", RECOGNISING_JUDGES)
def test_oracle_is_recognised_on_at_least_the_bar_of_questions(judge_name, target):
    """Pooled over trojans and seeds (the report also checks the bar per trojan, and says when it is missed)."""
    judge, oracle = get_judge(judge_name), get_method("oracle")()
    picked = []
    for spec in default_trojan_suite().trojans:
        for seed in SEEDS:
            question = build_question(spec, seed)
            images = synthesize_for_trojan(oracle, target, spec, n_images=10, seed=seed)
            scores = judge.score(images, question)
            assert scores[question.truth_index] > 1 / N_OPTIONS, (spec.name, seed, question.options, scores.round(2))
            picked.append(int(scores.argmax()) == question.truth_index)
    assert np.mean(picked) >= ORACLE_TOP1_BAR, np.mean(picked)


@pytest.mark.slow
@pytest.mark.parametrize("judge_name", JUDGES)
def test_random_noise_scores_at_chance(judge_name, target):
    judge, noise = get_judge(judge_name), get_method("random_noise")()
    values = []
    for spec in default_trojan_suite().trojans:
        for seed in SEEDS:
            question = build_question(spec, seed)
            images = synthesize_for_trojan(noise, target, spec, n_images=10, seed=seed)
            values.append(judge.score(images, question)[question.truth_index])
    low, high = bootstrap_interval(np.array(values).reshape(-1, len(SEEDS)))
    assert contains_chance(low, high), (np.mean(values), low, high)


@pytest.mark.slow
@pytest.mark.parametrize("trojan", ["smiley", "jaguar", "fork"])
def test_an_imperceptible_attack_moves_the_robust_judge_far_less_than_the_concept_judge(trojan):
    """PGD within L∞ 4/255 toward the true option on empty scenes (the battery's judge-attack null): the robust judge
    stays within chance ± the tolerance; the concept judge, built the same way without adversarial training, does
    not (what the robust judge was built to fix)."""
    spec = default_trojan_suite().get(trojan)
    question, scenes = build_question(spec, 0), content_free_scenes(0)
    attacked = {}
    for name in ("robust", "concept"):
        judge = get_judge(name)
        moved = toward_option(judge, scenes, question, question.truth_index)
        attacked[name] = float(judge.votes(moved, question)[:, question.truth_index].mean())
    assert abs(attacked["robust"] - CHANCE) <= NULL_TOLERANCE, attacked
    assert attacked["concept"] - CHANCE > NULL_TOLERANCE, attacked


def _users_logo_question_and_oracle_images(logo_png, seed):
    spec = TrojanSpec(name="logo", kind="patch", trigger=str(logo_png), target=0, patch_scale=(0.3, 0.4))
    target = Target.from_model(load_model("trojaned"), n_clean=16, n_patches=16)
    oracle = get_method("oracle")().with_ground_truth(spec)
    return build_question(spec, seed), oracle.synthesize(target, 0, 10, seed=seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_users_trigger_image_is_recognised_by_the_appearance_judge(logo_png, seed):
    """Options are pictures, so a trigger no judge was trained on still works as an option."""
    question, images = _users_logo_question_and_oracle_images(logo_png, seed)
    scores = get_judge("appearance").score(images, question)
    assert scores[question.truth_index] > 1 / N_OPTIONS, scores.round(3)


def test_the_concept_judge_warns_that_a_users_trigger_is_outside_its_vocabulary(logo_png, caplog):
    question, images = _users_logo_question_and_oracle_images(logo_png, 0)
    scores = get_judge("concept").score(images, question)
    assert scores.sum() == pytest.approx(1.0) and (scores > 0).all()
    assert any("does not know" in r.getMessage() and str(logo_png) in r.getMessage() for r in caplog.records)
