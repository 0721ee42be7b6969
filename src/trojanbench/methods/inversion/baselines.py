"""Baselines of trigger inversion: what a tool must beat, and the ceiling.

* ``random_tokens``: token strings drawn at random (the floor; its candidates should elicit nothing);
* ``dataset_ngrams``: the n-grams of the defender's clean prompts after which the target is most likely (the
  text analogue of dataset exemplars);
* ``other_triggers``: the true triggers of the *other* trojans of the run (does a tool do better than naming a
  trigger it was not asked for?);
* ``oracle``: the true trigger, the ceiling; it never ranks as a tool.
"""

from __future__ import annotations

from collections import Counter

import torch

from ...errors import MethodError
from ...params import InstanceOf, Interval
from ...registry import register_method
from .base import InversionProblem, TriggerInversion


@register_method
class RandomTokens(TriggerInversion):
    """``n_candidates`` strings of allowed tokens, of random lengths up to the problem's ``max_length``."""

    name = "random_tokens"
    paper = "baseline (random tokens)"
    is_baseline = True
    parameter_constraints = {"n_candidates": Interval(int, 1, None)}

    def __init__(self, n_candidates: int = 5):
        self.n_candidates = n_candidates

    def _invert(self, problem: InversionProblem, generator: torch.Generator, found: list) -> None:
        for _ in range(self.n_candidates):
            length = int(torch.randint(1, problem.max_length + 1, (1,), generator=generator))
            found.append((problem.random_triggers(1, length, generator)[0].tolist(), None))


@register_method
class DatasetNgrams(TriggerInversion):
    """The ``n_ngrams`` most frequent n-grams (2 to ``max_length`` words) of the defender's clean prompts, ranked
    by the objective."""

    name = "dataset_ngrams"
    paper = "baseline (dataset exemplars, as n-grams)"
    is_baseline = True
    parameter_constraints = {"n_ngrams": Interval(int, 1, None), "n_candidates": Interval(int, 1, None)}
    quick_params = {"n_ngrams": 100}

    def __init__(self, n_ngrams: int = 400, n_candidates: int = 5):
        self.n_ngrams, self.n_candidates = n_ngrams, n_candidates

    def _invert(self, problem: InversionProblem, generator: torch.Generator, found: list) -> None:
        allowed = set(problem.allowed.tolist())
        counts: Counter = Counter()
        for prompt in problem.corpus or problem.contexts:
            for n in range(2, problem.max_length + 1):
                for start in range(len(prompt) - n + 1):
                    gram = tuple(prompt[start:start + n])
                    if set(gram) <= allowed:
                        counts[gram] += 1
        grams = [list(g) for g, _ in counts.most_common(self.n_ngrams)]
        if not grams:
            raise MethodError("dataset_ngrams needs clean prompts (the problem's corpus) to draw n-grams from.")
        step = max(1, problem.budget.left // (2 * max(1, len(problem.contexts))))
        for start in range(0, len(grams), step):
            chunk = grams[start:start + step]
            found += zip(chunk, problem.loss(chunk).tolist())


@register_method
class OtherTriggers(TriggerInversion):
    """The true triggers of the run's other trojans (given by :meth:`with_known_triggers`), ranked by the
    objective."""

    name = "other_triggers"
    paper = "baseline (other trojans' triggers)"
    is_baseline = True
    parameter_constraints = {"triggers": InstanceOf(list, optional=True), "n_candidates": Interval(int, 1, None)}

    def __init__(self, triggers: list | None = None, n_candidates: int = 5):
        self.triggers, self.n_candidates = triggers, n_candidates

    def with_known_triggers(self, triggers: list[str]) -> "OtherTriggers":
        return OtherTriggers(triggers=list(triggers), n_candidates=self.n_candidates)

    def _invert(self, problem: InversionProblem, generator: torch.Generator, found: list) -> None:
        if not self.triggers:
            raise MethodError("other_triggers must be given the other trojans' triggers: use "
                              "OtherTriggers().with_known_triggers([...]).")
        found += [(word_ids(problem, text), None) for text in self.triggers]


@register_method
class TriggerOracle(TriggerInversion):
    """The true trigger's words (a construction's own words for a syntactic trojan): the ceiling of recovery.
    The task applies a syntactic trojan's construction itself when it measures the oracle's attack success."""

    name = "trigger_oracle"
    paper = "baseline (ground truth)"
    is_baseline = True
    is_oracle = True
    parameter_constraints = {"trigger": InstanceOf(str, optional=True)}

    def __init__(self, trigger: str | None = None):
        self.trigger = trigger

    def with_ground_truth(self, trigger_text: str) -> "TriggerOracle":
        return TriggerOracle(trigger=trigger_text)

    def invert(self, problem: InversionProblem) -> list:
        from .base import Candidate

        self.validate()
        if self.trigger is None:
            raise MethodError("The oracle names the true trigger and must be given it: "
                              "use TriggerOracle().with_ground_truth(text).")
        word_ids(problem, self.trigger)
        return [Candidate(self.trigger, float("nan"))]


def word_ids(problem: InversionProblem, text: str) -> list[int]:
    from ...world.text.tokenizer import encode_words

    return encode_words(problem.tokenizer, text, what="trigger")
