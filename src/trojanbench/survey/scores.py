"""Scores from people's answers, beside the automatic judges' scores on the same cells.

- Human accuracy per tool and per (tool, trojan) cell with Wilson score intervals (Wilson 1927).
- Agreement with the judges: Spearman's rank correlation over tools and over cells (average ranks for ties),
  and how often a person picked the judge's top option.
- Agreement among people: Krippendorff's alpha for nominal data (Krippendorff 2004, ch. 11), items as units.
- How many answers a cell needs: the two-proportion sample size (Fleiss, Levin & Paik 2003, eq. 4.14,
  without continuity correction).

Only answers of *scored* participants count: those who completed the study and passed both attention checks, in
the first session under their crowd-platform id, and whose answers were not withdrawn. The report reads only the
people's study (``survey.sqlite``), never a simulation's.
"""

from __future__ import annotations

import math
from collections import Counter
from statistics import NormalDist
from typing import Any, Hashable, Iterable, Sequence

import numpy as np

from ..errors import ConfigError
from ..tasks.rediscovery.results import ROLE_ORDER
from ..tasks.rediscovery.store import RediscoveryStore
from ..engine.stats import CHANCE, spearman
from .store import SURVEY_FILE, SurveyStore
from .study import participant_statuses, repeated_sessions

Z95 = NormalDist().inv_cdf(0.975)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``successes / n`` (Wilson 1927); ``(nan, nan)`` when ``n == 0``:

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``.
    """
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def krippendorff_alpha_nominal(units: Iterable[Sequence[Hashable]]) -> float:
    """Krippendorff's alpha for nominal values: ``1 - D_o / D_e`` from the coincidence matrix.

    ``units``: per unit, the values its coders gave (any number; units with fewer than 2 are not pairable).
    Each ordered pair of values within a unit of ``m`` values adds ``1/(m-1)`` to the coincidence of those
    values; ``D_o`` is the off-diagonal total, ``D_e = Σ_{c≠k} n_c n_k / (n - 1)``. NaN when nothing varies.
    """
    coincidences: Counter = Counter()
    for values in units:
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                coincidences[c, k] += (n_c * (n_k - (c == k))) / (m - 1)
    totals: Counter = Counter()
    for (c, _), value in coincidences.items():
        totals[c] += value
    n = sum(totals.values())
    observed = sum(v for (c, k), v in coincidences.items() if c != k)
    expected = (n * n - sum(v * v for v in totals.values())) / (n - 1) if n > 1 else 0.0
    return float("nan") if expected == 0 else 1 - observed / expected


def _check_plan(accuracy: float, difference: float, alpha: float, power: float) -> None:
    checks = {"accuracy": (accuracy, 0 < accuracy < 1), "alpha": (alpha, 0 < alpha < 1),
              "power": (power, 0 < power < 1),
              "difference": (difference, difference != 0 and 0 < accuracy + difference < 1)}
    for name, (value, ok) in checks.items():
        if not ok:
            bound = "non-zero, with accuracy + difference in (0, 1)" if name == "difference" else "in (0, 1)"
            raise ConfigError(f"The {name!r} of a sample-size plan must be {bound}. Got {value!r} instead.")


def answers_per_cell(accuracy: float, difference: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Answers each of two cells needs to tell accuracies ``accuracy`` and ``accuracy + difference`` apart
    (two-sided test of two proportions at level ``alpha`` with the given power):

    ``n = (z_{1-α/2} sqrt(2 p̄ q̄) + z_{1-β} sqrt(p1 q1 + p2 q2))² / (p1 - p2)²``, ``p̄ = (p1 + p2) / 2``.
    """
    _check_plan(accuracy, difference, alpha, power)
    p1, p2 = accuracy, accuracy + difference
    mean = (p1 + p2) / 2
    z_alpha, z_power = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
    root = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_power * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root * root / (difference * difference))


def answers_for_judge_gap(judge_rate: float, gap: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Answers, pooled over the cells a judge scored, that tell people's accuracy from the judge's top-1 rate
    ``judge_rate`` on the same cells when they differ by ``gap`` (the judge's rate is a fixed number, not a sample, so
    this is a two-sided one-sample test of a proportion; answers are taken as independent):

    ``n = (z_{1-α/2} sqrt(p0 q0) + z_{1-β} sqrt(p1 q1))² / (p1 - p0)²``, ``p0 = judge_rate``, ``p1 = p0 + gap``.
    """
    _check_plan(judge_rate, gap, alpha, power)
    p0, p1 = judge_rate, judge_rate + gap
    z_alpha, z_power = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
    root = z_alpha * math.sqrt(p0 * (1 - p0)) + z_power * math.sqrt(p1 * (1 - p1))
    return math.ceil(root * root / (gap * gap))


def human_scores(results, store: SurveyStore) -> dict[str, Any]:
    """People's accuracy per tool and per cell beside each judge's mean p(true) and top-1 on the same cells,
    agreement statistics (per judge: Spearman with people over tools and over cells, and the calibration gap, the mean
    absolute difference between people's accuracy and the judge's p(true)) and participant counts. ``results``: the
    folder's :class:`~trojanbench.tasks.rediscovery.Results`."""
    statuses = participant_statuses(store)
    items = {item.item_id: item for item in store.items()}
    answers = [a for a in store.answers() if statuses[a["participant_id"]]["scored"]
               and items[a["item_id"]].kind == "cell"]
    judged: dict[str, dict[str, dict]] = {}
    with RediscoveryStore(results.folder, create=False) as results_store:
        every_score = results_store.scores()  # the study's cells may come from any run in the folder
    for score in every_score:
        judged.setdefault(score["key"], {})[score["judge"]] = score
    judges = results.judges
    cells = _group(answers, items, judged, judges, lambda item: (item.method, item.trojan))
    roles = {item.method: item.role for item in items.values() if item.kind == "cell"}
    methods = sorted(_group(answers, items, judged, judges, lambda item: item.method),
                     key=lambda r: (ROLE_ORDER.get(roles[r["group"]], 9), -r["accuracy"], r["group"]))
    agreement = {}
    for judge in judges:
        picked_top = [float(a["option"] == _top_option(items[a["item_id"]], judged, judge)) for a in answers
                      if judge in judged.get(items[a["item_id"]].cell_key, {})]
        agreement[judge] = {"spearman_tools": _versus(methods, judge), "spearman_cells": _versus(cells, judge),
                            "gap_tools": _gap(methods, judge), "gap_cells": _gap(cells, judge),
                            "picked_judge_top": _mean(picked_top)}
    by_item: dict[int, list[str]] = {}
    for answer in answers:
        by_item.setdefault(answer["item_id"], []).append(answer["option"])
    return {"participants": {"started": len(statuses), "completed": sum(s["completed"] for s in statuses.values()),
                             "excluded": sum(s["excluded"] for s in statuses.values()),
                             "repeated": len(repeated_sessions(store)),
                             "scored": sum(s["scored"] for s in statuses.values()),
                             "withdrawn": len(store.tombstones())},
            "simulation": store.simulation,
            "n_answers": len(answers), "judges": judges, "chance": CHANCE, "roles": roles,
            "methods": methods, "cells": cells, "agreement": agreement,
            "krippendorff_alpha": krippendorff_alpha_nominal(by_item.values()),
            "n_units": sum(len(v) > 1 for v in by_item.values())}


def human_section(results) -> dict[str, Any] | None:
    """:func:`human_scores` for the report, or ``None`` when the results folder holds no survey answers."""
    path = results.folder / SURVEY_FILE
    if not path.is_file():
        return None
    store = SurveyStore(path)
    try:
        return human_scores(results, store) if store.answers() else None
    finally:
        store.close()


def _versus(rows: list[dict], judge: str) -> float:
    """Spearman's rho of people's accuracy and the judge's mean p(true) over the rows (NaN below 3 rows)."""
    pairs = [(r["accuracy"], r["judges"][judge]["p_true"]) for r in rows if np.isfinite(r["judges"][judge]["p_true"])]
    return spearman(*zip(*pairs)) if len(pairs) > 2 else float("nan")


def _gap(rows: list[dict], judge: str) -> float:
    """Calibration: the mean absolute difference between people's accuracy and the judge's mean p(true) over the rows
    (0: the judge's probability of the truth is the share of people who name it)."""
    return _mean([abs(r["accuracy"] - r["judges"][judge]["p_true"]) for r in rows
                  if np.isfinite(r["judges"][judge]["p_true"])])


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _top_option(item, judged: dict, judge: str) -> str:
    probabilities = judged[item.cell_key][judge]["probabilities"]
    return item.question["options"][int(np.argmax(probabilities))]


def _group(answers: list[dict], items: dict, judged: dict, judges: list[str], key) -> list[dict[str, Any]]:
    """Rows of people's accuracy (Wilson interval) and each judge's mean p(true) and top-1 over the distinct
    cells answered, grouped by ``key(item)``."""
    groups: dict[Any, list[dict]] = {}
    for answer in answers:
        groups.setdefault(key(items[answer["item_id"]]), []).append(answer)
    rows = []
    for group, members in sorted(groups.items()):
        correct = sum(a["correct"] for a in members)
        low, high = wilson_interval(correct, len(members))
        keys = sorted({items[a["item_id"]].cell_key for a in members})
        scores = {judge: {field: _mean([judged[k][judge][field] for k in keys if judge in judged.get(k, {})])
                          for field in ("p_true", "top1")} for judge in judges}
        rows.append({"group": group, "n": len(members), "correct": correct, "accuracy": correct / len(members),
                     "ci_low": low, "ci_high": high, "judges": scores})
    return rows
