"""PEZ (Wen et al. 2023, "Hard Prompts Made Easy: Gradient-Based Discrete Optimization for Prompt Tuning and
Discovery"): continuous trigger embeddings, projected onto the vocabulary at every step."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...params import Interval
from ...registry import register_method
from .base import InversionProblem, TriggerInversion


@register_method
class PEZ(TriggerInversion):
    """Each of ``batch_size`` triggers (optimized side by side) is a matrix of continuous embeddings ``P``,
    initialised to random allowed tokens' embeddings. Each step projects ``P`` onto its nearest allowed token
    embeddings (cosine similarity, as the paper's code), measures the objective *at the projected point*
    (:meth:`InversionProblem.embedding_loss` on real token embeddings, so the loss is the discrete trigger's own,
    recorded as a candidate at no extra cost), and applies that gradient to the continuous ``P`` with AdamW.

    The paper's settings (its released configuration, for CLIP prompt discovery): AdamW, learning rate 0.1,
    weight decay 0.1, 3000 steps, the best projected prompt kept. Changed here: the learning rate is
    relative to the embeddings' scale (``lr`` times the mean norm of the allowed embeddings, so the same setting
    serves models whose embeddings differ in size; GPT-2-style embeddings are far smaller than CLIP's), several
    triggers are optimized in one batch (``batch_size``, a restart in parallel), and ``steps`` is a ceiling: the
    budget (``3 * batch_size * contexts`` sequence passes per step) usually ends the search first.
    """

    name = "pez"
    paper = "Wen et al. 2023, PEZ (Hard Prompts Made Easy)"
    parameter_constraints = {"steps": Interval(int, 1, None), "batch_size": Interval(int, 1, None),
                             "lr": Interval(float, 0, None, closed="neither"),
                             "weight_decay": Interval(float, 0, None), "n_candidates": Interval(int, 1, None)}
    quick_params = {"steps": 50, "batch_size": 2}

    def __init__(self, *, steps: int = 3000, batch_size: int = 4, lr: float = 0.1, weight_decay: float = 0.1,
                 n_candidates: int = 5):
        self.steps, self.batch_size, self.lr, self.weight_decay = steps, batch_size, lr, weight_decay
        self.n_candidates = n_candidates

    def _invert(self, problem: InversionProblem, generator: torch.Generator, found: list) -> None:
        allowed = problem.allowed.long()
        vocabulary = problem.embedding_matrix.detach()[allowed.to(problem.device)].float()  # [A, dim]
        unit_vocabulary = F.normalize(vocabulary, dim=-1)
        scale = float(vocabulary.norm(dim=-1).mean())
        picks = torch.randint(len(allowed), (self.batch_size, problem.max_length), generator=generator)
        continuous = vocabulary[picks.to(problem.device)].clone().requires_grad_(True)  # random allowed tokens
        optimizer = torch.optim.AdamW([continuous], lr=self.lr * scale, weight_decay=self.weight_decay)
        best = [float("inf")] * self.batch_size
        for _ in range(self.steps):
            with torch.no_grad():
                nearest = (F.normalize(continuous, dim=-1) @ unit_vocabulary.T).argmax(-1)  # [B, L]
            projected = vocabulary[nearest].detach().requires_grad_(True)
            loss = problem.embedding_loss(projected)
            (gradient,) = torch.autograd.grad(loss.sum(), projected)
            optimizer.zero_grad()
            continuous.grad = gradient.to(continuous.dtype)
            optimizer.step()
            tokens = allowed[nearest.cpu()]
            for row, value in enumerate(loss.detach().cpu().tolist()):
                if value < best[row]:
                    best[row] = value
                    found.append((tokens[row].tolist(), value))
