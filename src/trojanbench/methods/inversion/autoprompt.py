"""AutoPrompt (Shin et al. 2020, "AutoPrompt: Eliciting Knowledge from Language Models with Automatically
Generated Prompts"): gradient-guided search, one trigger position at a time."""

from __future__ import annotations

import torch

from ...params import Interval
from ...registry import register_method
from .base import InversionProblem, TriggerInversion
from .gcg import allowed_mask, top_candidates


@register_method
class AutoPrompt(TriggerInversion):
    """Each step picks one trigger position at random, takes the one-hot gradient at the current trigger
    (averaged over the contexts, as AutoPrompt averages over a batch), forms the candidate set of the
    ``n_candidates_per_position`` allowed tokens with the largest first-order decrease of the objective
    (``-e_w · ∇``), measures the trigger with each of them at that position in one batched
    :meth:`InversionProblem.loss`, and keeps the best if it beats the current trigger.

    The paper's settings: triggers initialised to ``[MASK]`` tokens, candidate sets of 10 to 100 tokens (its
    scripts' default 10), a batch of training examples per step, steps until the budget of iterations ends.
    Changed here: a causal LM has no ``[MASK]``, so the trigger (``max_length`` tokens) starts from random
    allowed tokens; the candidate set is 32 tokens (the text world's vocabulary has about 370 words, and one
    position per step makes each gradient cheap to exploit); the "batch" is the problem's contexts; ``steps`` is
    a ceiling, the budget (``3 * contexts`` plus ``n_candidates_per_position * contexts`` sequence passes a step)
    usually ends the search first; and since the contexts do not change between steps, the gradient is only
    recomputed when the trigger has changed.
    """

    name = "autoprompt"
    paper = "Shin et al. 2020, AutoPrompt"
    parameter_constraints = {"steps": Interval(int, 1, None), "n_candidates_per_position": Interval(int, 1, None),
                             "n_candidates": Interval(int, 1, None)}
    quick_params = {"steps": 20, "n_candidates_per_position": 16}

    def __init__(self, *, steps: int = 2000, n_candidates_per_position: int = 32, n_candidates: int = 5):
        self.steps, self.n_candidates_per_position = steps, n_candidates_per_position
        self.n_candidates = n_candidates

    def _invert(self, problem: InversionProblem, generator: torch.Generator, found: list) -> None:
        mask = allowed_mask(problem)
        current = problem.random_triggers(1, problem.max_length, generator)[0]
        current_loss, gradient = None, None
        for _ in range(self.steps):
            position = int(torch.randint(problem.max_length, (1,), generator=generator))
            if gradient is None:  # the contexts are fixed: the gradient changes only with the trigger
                loss, gradient = problem.token_gradient(current[None])
                if current_loss is None:
                    current_loss = float(loss[0])
                    found.append((current.tolist(), current_loss))
            tokens = top_candidates(gradient[0, position], mask, self.n_candidates_per_position)
            tokens = tokens[tokens != current[position]]
            if not len(tokens):
                continue
            candidates = current.repeat(len(tokens), 1)
            candidates[:, position] = tokens
            losses = problem.loss(candidates.tolist())
            best = int(losses.argmin())
            if float(losses[best]) < current_loss:
                current, current_loss, gradient = candidates[best], float(losses[best]), None
                found.append((current.tolist(), current_loss))
