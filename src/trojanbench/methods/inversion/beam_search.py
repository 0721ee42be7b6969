"""Gradient-free beam search, after BEAST (Sadasivan et al. 2024, "Fast Adversarial Attacks on Language Models In
One GPU Minute"): the trigger built token by token, each beam extended by tokens sampled from the model's own
next-token distribution."""

from __future__ import annotations

import torch

from ...params import Interval, Options
from ...registry import register_method
from .base import InversionProblem, TriggerInversion
from .gcg import allowed_mask


@register_method
class BeamSearch(TriggerInversion):
    """BEAST's beam search. The first token: ``beam_width`` tokens sampled (without replacement) from the
    model's next-token distribution at the trigger's position (after the prompt's opening ``<bos>``); then, for
    each further position up to ``max_length``, each beam is extended by ``expansions`` tokens sampled from the
    model's distribution after it, all ``beam_width * expansions`` triggers are measured in one batched
    :meth:`InversionProblem.loss` and the ``beam_width`` best kept. With ``sampling="uniform"`` the tokens are
    drawn uniformly from the allowed ones instead (a plain random beam search). Every beam, at every length,
    is a candidate (the base class shortens the best).

    The paper's settings: beam width ``k1 = 15``, ``k2 = 15`` tokens sampled per beam from the model's
    distribution (multinomial, the model's default temperature), an adversarial suffix of 40 tokens, one pass.
    Changed here: the trigger has ``max_length`` tokens (the task's triggers are short) and, since one pass then
    costs a few thousand sequence passes, the search starts again from scratch, with fresh samples, until
    ``rounds`` passes are done or the budget ends; the distribution is restricted to the allowed tokens and
    sharpened or flattened by ``temperature``. The model's next-token distributions are a no-grad forward of
    each beam (``<bos>`` and the trigger so far: the trigger comes first in the prompt, so no context is
    needed), charged to the budget as one sequence pass per beam.
    """

    name = "beam_search"
    paper = "Sadasivan et al. 2024, BEAST (Fast Adversarial Attacks on Language Models In One GPU Minute)"
    parameter_constraints = {"beam_width": Interval(int, 1, None), "expansions": Interval(int, 1, None),
                             "rounds": Interval(int, 1, None), "sampling": Options({"model", "uniform"}),
                             "temperature": Interval(float, 0, None, closed="neither"),
                             "n_candidates": Interval(int, 1, None)}
    quick_params = {"beam_width": 6, "expansions": 6, "rounds": 2}

    def __init__(self, *, beam_width: int = 15, expansions: int = 15, rounds: int = 1000, sampling: str = "model",
                 temperature: float = 1.0, n_candidates: int = 5):
        self.beam_width, self.expansions, self.rounds = beam_width, expansions, rounds
        self.sampling, self.temperature, self.n_candidates = sampling, temperature, n_candidates

    def _invert(self, problem: InversionProblem, generator: torch.Generator, found: list) -> None:
        mask = allowed_mask(problem)
        for _ in range(self.rounds):
            beams = torch.zeros((1, 0), dtype=torch.long)
            for _ in range(problem.max_length):
                width = self.beam_width if beams.shape[1] == 0 else self.expansions
                tokens = self._next_tokens(problem, beams, mask, width, generator)  # [beams, width]
                candidates = torch.cat([beams.repeat_interleave(tokens.shape[1], dim=0), tokens.reshape(-1, 1)], 1)
                candidates = torch.unique(candidates, dim=0)
                losses = problem.loss(candidates.tolist())
                keep = losses.argsort(stable=True)[:self.beam_width]
                beams = candidates[keep]
                found.extend(zip(beams.tolist(), losses[keep].tolist()))

    def _next_tokens(self, problem: InversionProblem, beams: torch.Tensor, mask: torch.Tensor, width: int,
                     generator: torch.Generator) -> torch.Tensor:
        """``width`` distinct allowed tokens per beam ``[beams, width]``, sampled from the model after each beam
        (or uniformly)."""
        width = min(width, int(mask.sum()))
        if self.sampling == "uniform":
            probabilities = mask.float().expand(len(beams), -1)
        else:
            probabilities = next_token_distribution(problem, beams, self.temperature)
            probabilities = probabilities.clamp_min(1e-30).masked_fill(~mask, 0.0)  # every allowed token possible
        return torch.multinomial(probabilities, width, replacement=False, generator=generator)


@torch.no_grad()
def next_token_distribution(problem: InversionProblem, beams: torch.Tensor, temperature: float) -> torch.Tensor:
    """The model's next-token probabilities after ``<bos>`` (the prompt's opening) and each beam ``[beams, V]``;
    charges one sequence pass per beam."""
    problem.budget.charge(len(beams))
    before = torch.tensor(problem._frame[0], dtype=torch.long)
    ids = torch.cat([before.expand(len(beams), -1), beams], 1).to(problem.device)
    logits = problem.model(input_ids=ids).logits[:, -1].float().cpu()
    return torch.softmax(logits / temperature, dim=-1)
