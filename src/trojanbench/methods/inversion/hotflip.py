"""Universal Adversarial Triggers (Wallace et al. 2019, "Universal Adversarial Triggers for Attacking and
Analyzing NLP") with HotFlip's first-order token swaps (Ebrahimi et al. 2018, "HotFlip: White-Box Adversarial
Examples for Text Classification")."""

from __future__ import annotations

import torch

from ...params import Interval
from ...registry import register_method
from .base import InversionProblem, TriggerInversion
from .gcg import allowed_mask, top_candidates


@register_method
class HotFlip(TriggerInversion):
    """UAT's search. Each iteration takes the one-hot gradient at the best trigger (averaged over the contexts,
    as UAT averages over a batch of examples), HotFlip's ``n_candidates_per_position`` best first-order swaps
    at every position, and then a beam search over the positions left to right: at each position every beam
    is extended by each of its candidate tokens there, all ``beam_size * n_candidates_per_position`` triggers
    (and the beams unchanged) measured in one batched :meth:`InversionProblem.loss`, the ``beam_size`` best
    kept. The best trigger of the sweep starts the next iteration.

    The paper's settings: triggers initialised to repeats of "the" (``the the the``), 40 candidates per position
    (the language-model attack: 100), beam search of size 1 to 4 (its code's default 1), iterations until the
    loss stops falling. Changed here: the trigger has ``max_length`` tokens initialised at random from the
    allowed tokens (a repeated common word is no neutral start in the text world, whose triggers are rare
    words), beam size 4, and the search restarts from a fresh random trigger when a whole sweep brings no
    improvement (the paper stops there; here the budget ends the search). A sweep costs ``3 * contexts`` for
    the gradient plus about ``max_length * beam_size * n_candidates_per_position * contexts`` sequence passes.
    """

    name = "hotflip"
    paper = "Wallace et al. 2019, Universal Adversarial Triggers (HotFlip: Ebrahimi et al. 2018)"
    parameter_constraints = {"iterations": Interval(int, 1, None), "n_candidates_per_position": Interval(int, 1, None),
                             "beam_size": Interval(int, 1, None), "n_candidates": Interval(int, 1, None)}
    quick_params = {"iterations": 3, "n_candidates_per_position": 10, "beam_size": 2}

    def __init__(self, *, iterations: int = 100, n_candidates_per_position: int = 40, beam_size: int = 4,
                 n_candidates: int = 5):
        self.iterations, self.n_candidates_per_position = iterations, n_candidates_per_position
        self.beam_size, self.n_candidates = beam_size, n_candidates

    def _invert(self, problem: InversionProblem, generator: torch.Generator, found: list) -> None:
        mask = allowed_mask(problem)
        current = problem.random_triggers(1, problem.max_length, generator)[0]
        current_loss = float("inf")
        for _ in range(self.iterations):
            loss, gradient = problem.token_gradient(current[None])
            current_loss = min(current_loss, float(loss[0]))
            if not found:
                found.append((current.tolist(), current_loss))
            top = top_candidates(gradient[0], mask, self.n_candidates_per_position)  # [L, k]
            beams, beam_losses = current[None], torch.tensor([current_loss])
            for position in range(problem.max_length):
                extended = beams.repeat_interleave(top.shape[1], dim=0)  # [beams * k, L]
                extended[:, position] = top[position].repeat(len(beams))
                extended = torch.unique(extended, dim=0)
                extended = extended[~(extended[:, None] == beams[None]).all(-1).any(-1)]  # the beams are measured
                if not len(extended):
                    continue
                losses = problem.loss(extended.tolist())
                pool, pool_losses = torch.cat([beams, extended]), torch.cat([beam_losses, losses])
                keep = pool_losses.argsort(stable=True)[:self.beam_size]
                beams, beam_losses = pool[keep], pool_losses[keep]
                found.append((beams[0].tolist(), float(beam_losses[0])))
            if float(beam_losses[0]) < current_loss:
                current, current_loss = beams[0], float(beam_losses[0])
            else:  # a sweep with no improvement: UAT would stop; start again elsewhere
                current = problem.random_triggers(1, problem.max_length, generator)[0]
                current_loss = float("inf")
