"""Statistics of the survey, checked against published or hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trojanbench.errors import ConfigError
from trojanbench.engine.stats import average_ranks, spearman
from trojanbench.survey.scores import (answers_for_judge_gap, answers_per_cell, krippendorff_alpha_nominal,
                                      wilson_interval)


def test_wilson_interval_matches_hand_computed_values():
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 10)
    assert low == pytest.approx(0, abs=1e-12) and round(high, 4) == 0.2775
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_wilson_interval_covers_the_true_proportion_about_95_percent_of_the_time():
    # coverage oscillates with p for a fixed n (the binomial is discrete); averaged over p it is close to 95%
    rng = np.random.default_rng(0)
    proportions = rng.uniform(0.05, 0.95, 6000)
    hits = [low <= p <= high for p in proportions for low, high in [wilson_interval(int(rng.binomial(50, p)), 50)]]
    assert 0.935 <= np.mean(hits) <= 0.965


def test_krippendorff_alpha_reproduces_krippendorffs_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", 4 observers x 12 units, nominal: 0.743.
    observers = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
                 [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
                 [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
                 [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    units = [[v for v in unit if v is not None] for unit in zip(*observers)]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_is_one_for_perfect_agreement_and_near_zero_for_chance():
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b", "b"], ["c", "c"]]) == 1.0
    rng = np.random.default_rng(1)
    random_units = [list(rng.integers(0, 8, 5)) for _ in range(2000)]
    assert abs(krippendorff_alpha_nominal(random_units)) < 0.02
    assert math.isnan(krippendorff_alpha_nominal([["a", "a"], ["a"]]))


def test_spearman_uses_average_ranks_for_ties():
    assert list(average_ranks([3, 1, 3, 2])) == [2.5, 0, 2.5, 1]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    # ties: Pearson's r of average ranks (0.5, 0.5, 2, 3) and (0, 1, 2, 3)
    expected = np.corrcoef([0.5, 0.5, 2, 3], [0, 1, 2, 3])[0, 1]
    assert spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(expected)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_answers_per_cell_matches_the_textbook_two_proportion_formula():
    assert answers_per_cell(0.4, 0.2) == 97  # p1 = .4, p2 = .6, alpha .05, power .8: the classic 97 per group
    assert answers_per_cell(0.125, 0.1) == 226
    assert answers_per_cell(0.6, -0.2) == answers_per_cell(0.4, 0.2)
    assert answers_per_cell(0.3, 0.1, power=0.9) > answers_per_cell(0.3, 0.1)


def test_a_judge_vs_people_gap_is_a_one_sample_test_against_the_judges_fixed_rate():
    # p0 = .5, p1 = .6, alpha .05, power .8: (1.96 * .5 + .8416 * sqrt(.24))^2 / .01 = 193.9 -> 194
    assert answers_for_judge_gap(0.5, 0.1) == 194
    assert answers_for_judge_gap(0.5, 0.1) < answers_per_cell(0.5, 0.1)  # the judge's side is not sampled
    assert answers_for_judge_gap(0.4, -0.1) > answers_for_judge_gap(0.4, -0.2)
    with pytest.raises(ConfigError, match="difference"):
        answers_for_judge_gap(0.9, 0.2)


@pytest.mark.parametrize("kwargs, word", [({"accuracy": 0, "difference": 0.1}, "accuracy"),
                                          ({"accuracy": 0.5, "difference": 0.6}, "difference"),
                                          ({"accuracy": 0.5, "difference": 0}, "difference"),
                                          ({"accuracy": 0.5, "difference": 0.1, "alpha": 1.5}, "alpha"),
                                          ({"accuracy": 0.5, "difference": 0.1, "power": 0}, "power")])
def test_answers_per_cell_refuses_impossible_plans(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        answers_per_cell(**kwargs)
