"""Verdicts that count: on each question, only the judges that pass every check of their validity battery there.

A judge's score on a question means something only where the judge was shown to see what a person would see on that
very question (:mod:`trojanbench.judges.battery`). Here each cell's score is the consensus (mean p(true), and the
top-1 of the mean) of the judges valid on its question, cells whose question has no valid judge are left out, and a
cell where valid judges disagree on whether the true trigger wins is flagged. The summary of each method rests only
on such cells, and says on how many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...engine.stats import Summary, enough_for_interval, interval_text, summarize

Question = tuple[str, int]


@dataclass(frozen=True)
class CountedVerdicts:
    """``valid``: the judges valid on each question that has a battery; ``p_true`` and ``top1``: the consensus per
    method and question (questions with a valid judge only); ``disagreements``: per method, the questions on which
    its valid judges disagree on the top-1."""

    valid: dict[Question, tuple[str, ...]]
    p_true: dict[str, dict[Question, float]]
    top1: dict[str, dict[Question, float]]
    disagreements: dict[str, list[Question]]

    @property
    def counted_questions(self) -> list[Question]:
        return sorted(q for q, judges in self.valid.items() if judges)

    def valid_counts(self) -> dict[str, int]:
        """How many questions each judge is valid on (judges valid on none left out)."""
        counts: dict[str, int] = {}
        for judges in self.valid.values():
            for judge in judges:
                counts[judge] = counts.get(judge, 0) + 1
        return dict(sorted(counts.items()))

    def summaries(self, kinds: dict[str, str]) -> dict[str, Summary]:
        return {method: enough_for_interval(summarize(scores, self.top1[method], kinds))
                for method, scores in self.p_true.items() if scores}

    def to_dict(self) -> dict[str, Any]:
        return {"valid_judges": [{"trojan": t, "seed": s, "judges": list(j)}
                                 for (t, s), j in sorted(self.valid.items())],
                "disagreements": {m: [{"trojan": t, "seed": s} for t, s in q] for m, q in self.disagreements.items()}}


def counted_verdicts(battery: dict[str, dict[Question, list[dict]]],
                     scores: dict[str, dict[str, dict[Question, tuple[float, float]]]]) -> CountedVerdicts:
    """From each judge's battery per question (``{judge: {question: checks}}``) and its scores (``{judge: {method:
    {question: (p_true, top1)}}}``)."""
    questions = sorted({q for per_question in battery.values() for q in per_question})
    valid = {q: tuple(j for j, per_question in battery.items()
                      if q in per_question and all(c["passed"] for c in per_question[q])) for q in questions}
    methods = sorted({m for per_method in scores.values() for m in per_method})
    p_true: dict[str, dict[Question, float]] = {m: {} for m in methods}
    top1: dict[str, dict[Question, float]] = {m: {} for m in methods}
    disagreements: dict[str, list[Question]] = {}
    for method in methods:
        for question, judges in valid.items():
            verdicts = [scores[j][method][question] for j in judges if question in scores[j].get(method, {})]
            if not verdicts:
                continue
            p_true[method][question] = float(np.mean([p for p, _ in verdicts]))
            hits = {bool(hit) for _, hit in verdicts}
            top1[method][question] = float(np.mean([hit for _, hit in verdicts]))
            if len(hits) > 1:
                disagreements.setdefault(method, []).append(question)
    return CountedVerdicts(valid, p_true, top1, disagreements)


def verdict_lines(verdicts: CountedVerdicts, summaries: dict[str, Summary], order: list[str]) -> list[str]:
    """The verdicts that count in words: how many questions have a valid judge (and which judges), then the consensus
    of each method in ``order`` that has such a cell, with the cells it rests on and its disagreements."""
    counted, total = verdicts.counted_questions, len(verdicts.valid)
    if not total:
        return []
    if not counted:
        return [f"verdicts that count: none; no judge passes every check of its battery on any of the {total} "
                "questions, so every score above rests on a judge a person may not agree with (ask people: "
                "trojanbench survey)"]
    lines = [f"verdicts that count: {len(counted)} of {total} questions have a judge that passes every check there ("
             + ", ".join(f"{j} on {n}" for j, n in verdicts.valid_counts().items()) + "); consensus of those judges:"]
    for method in (m for m in order if m in summaries):
        s = summaries[method]
        split = len(verdicts.disagreements.get(method, []))
        lines.append(f"  {method:<24}{s.mean:.3f} {interval_text(s.ci_low, s.ci_high, '.2f'):<13} top-1 {s.top1:.2f}  "
                     f"{s.n_cells} cells" + (f", valid judges disagree on {split}" if split else ""))
    return lines
