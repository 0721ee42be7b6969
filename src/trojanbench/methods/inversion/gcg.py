"""GCG (Zou et al. 2023, "Universal and Transferable Adversarial Attacks on Aligned Language Models"): Greedy
Coordinate Gradient search over the trigger's tokens.

Also the home of the small helpers the gradient-guided tools share (:func:`allowed_mask`,
:func:`top_candidates`).
"""

from __future__ import annotations

import torch

from ...params import Interval
from ...registry import register_method
from .base import InversionProblem, TriggerInversion


def allowed_mask(problem: InversionProblem) -> torch.Tensor:
    """``[vocabulary]`` bools: the tokens a trigger may use."""
    mask = torch.zeros(problem.embedding_matrix.shape[0], dtype=torch.bool)
    mask[problem.allowed.long()] = True
    return mask


def top_candidates(gradient: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """HotFlip's first-order candidates: per position the ``k`` allowed tokens whose swap in lowers the
    objective most by the linear approximation (the largest negative one-hot gradient) ``[..., L, k]``."""
    scores = (-gradient.float()).masked_fill(~mask, float("-inf"))
    return scores.topk(min(k, int(mask.sum())), dim=-1).indices


@register_method
class GCG(TriggerInversion):
    """Greedy Coordinate Gradient. Each step: the one-hot gradient of the objective at the current trigger
    (:meth:`InversionProblem.token_gradient`); per position the ``top_k`` allowed tokens with the most negative
    gradient; ``search_width`` candidates, each the current trigger with ``n_replace`` positions (drawn at
    random) swapped for one of their top-k tokens (drawn at random); all of them measured in one batched
    :meth:`InversionProblem.loss`; the best becomes the current trigger (as in the paper and nanogcg, even when
    it is worse than the current one, which lets the search leave a local minimum; the best seen is kept).

    The paper (and nanogcg 0.3.0's defaults): 500 (nanogcg: 250) steps, batch (search width) 512, top-k 256, one
    token replaced per candidate, a 20-token suffix initialised to ``"! ! ! ..."`` (nanogcg ``"x x x ..."``).
    Changed here: ``top_k`` 64 and ``search_width`` 128, since the text world's vocabulary has about 370 words
    (top-k 256 would be two thirds of it, the gradient barely guiding) and the benchmark's budgets are counted
    in sequence passes (a step costs ``3 * contexts`` for the gradient plus ``search_width * contexts``); the
    trigger has the problem's ``max_length`` tokens, initialised at random from the allowed tokens (no
    ``"!"``-like filler token is safe in a word vocabulary); ``steps`` is a ceiling, the budget usually ends the
    search first. Candidate filtering for retokenization (nanogcg's ``filter_ids``) is unnecessary with a
    word-level tokenizer, but repeated candidates are dropped before they are measured.
    """

    name = "gcg"
    paper = "Zou et al. 2023, GCG (Universal and Transferable Adversarial Attacks on Aligned Language Models)"
    parameter_constraints = {"steps": Interval(int, 1, None), "search_width": Interval(int, 1, None),
                             "top_k": Interval(int, 1, None), "n_replace": Interval(int, 1, None),
                             "n_candidates": Interval(int, 1, None)}
    quick_params = {"steps": 20, "search_width": 64}

    def __init__(self, *, steps: int = 500, search_width: int = 128, top_k: int = 64, n_replace: int = 1,
                 n_candidates: int = 5):
        self.steps, self.search_width, self.top_k = steps, search_width, top_k
        self.n_replace, self.n_candidates = n_replace, n_candidates

    def _invert(self, problem: InversionProblem, generator: torch.Generator, found: list) -> None:
        mask = allowed_mask(problem)
        length = problem.max_length
        current = problem.random_triggers(1, length, generator)[0]
        n_replace = min(self.n_replace, length)
        for _ in range(self.steps):
            loss, gradient = problem.token_gradient(current[None])
            if not found:
                found.append((current.tolist(), float(loss[0])))
            top = top_candidates(gradient[0], mask, self.top_k)  # [L, k]
            candidates = sample_swaps(current, top, self.search_width, n_replace, generator)
            losses = problem.loss(candidates.tolist())
            best = int(losses.argmin())
            current = candidates[best]
            found.append((current.tolist(), float(losses[best])))


def sample_swaps(current: torch.Tensor, top: torch.Tensor, width: int, n_replace: int,
                 generator: torch.Generator) -> torch.Tensor:
    """``width`` distinct copies of ``current`` (``[L]``), each with ``n_replace`` random positions set to one
    of their ``top`` tokens (``[L, k]``) drawn at random (nanogcg's ``sample_ids_from_grad``); fewer when
    fewer distinct ones exist, never the current trigger itself."""
    length, k = top.shape
    positions = torch.rand((width, length), generator=generator).argsort(-1)[:, :n_replace]  # [W, n]
    picks = torch.randint(0, k, (width, n_replace), generator=generator)
    values = top[positions, picks]
    candidates = current.repeat(width, 1).scatter(1, positions, values)
    candidates = torch.unique(candidates, dim=0)  # sorted: the same order for the same draws
    changed = (candidates != current).any(-1)
    return candidates[changed] if changed.any() else candidates
