"""GBDA (Guo et al. 2021, "Gradient-based Adversarial Attacks against Text Transformers"): a distribution over
trigger tokens, optimized through its Gumbel-softmax relaxation."""

from __future__ import annotations

import torch

from ...params import Interval
from ...registry import register_method
from .base import BudgetExhausted, InversionProblem, TriggerInversion
from .gcg import allowed_mask


@register_method
class GBDA(TriggerInversion):
    """Gradient-based Distributional Attack. The trigger is a matrix ``Θ`` of logits over the vocabulary per
    position (disallowed tokens masked out). Each step draws ``batch_size`` Gumbel-softmax samples
    ``π̃ = softmax((Θ + g) / τ)``, feeds their expected embeddings ``π̃ E`` to the model
    (:meth:`InversionProblem.embedding_loss`) and takes an Adam step on ``Θ``. Every ``eval_every`` steps and at
    the end, ``n_samples`` discrete triggers drawn from ``Categorical(softmax(Θ))`` (plus its per-position
    argmax) are measured with one batched :meth:`InversionProblem.loss`, and the improving ones kept.

    The paper (attacking classifiers, from a given sentence): Adam, learning rate 0.3, 100 iterations, 10
    Gumbel samples per step, ``τ = 1``, ``Θ`` initialised to the sentence's tokens, with fluency and BERTScore
    constraints. Changed here, as in the TDC 2023 / HarmBench GBDA baseline for trigger inversion: no sentence to
    start from, so ``Θ`` starts at zero plus Gaussian noise (``noise_scale`` 0.2), no fluency or similarity term
    (the objective is the target's cross-entropy alone), learning rate 0.2, and the discrete candidates are
    sampled periodically during the search rather than only once at the end, so that the budget (``3 *
    batch_size * contexts`` sequence passes per step, ``n_samples * contexts`` per evaluation) can end the search
    at any time with candidates in hand (and once more, with what the budget has left, when it ends the search);
    ``steps`` is a ceiling.
    """

    name = "gbda"
    paper = "Guo et al. 2021, GBDA (Gradient-based Adversarial Attacks against Text Transformers)"
    parameter_constraints = {"steps": Interval(int, 1, None), "batch_size": Interval(int, 1, None),
                             "lr": Interval(float, 0, None, closed="neither"),
                             "temperature": Interval(float, 0, None, closed="neither"),
                             "noise_scale": Interval(float, 0, None), "eval_every": Interval(int, 1, None),
                             "n_samples": Interval(int, 1, None), "n_candidates": Interval(int, 1, None)}
    quick_params = {"steps": 40, "batch_size": 4, "eval_every": 10, "n_samples": 8}

    def __init__(self, *, steps: int = 500, batch_size: int = 10, lr: float = 0.2, temperature: float = 1.0,
                 noise_scale: float = 0.2, eval_every: int = 10, n_samples: int = 32, n_candidates: int = 5):
        self.steps, self.batch_size, self.lr, self.temperature = steps, batch_size, lr, temperature
        self.noise_scale, self.eval_every, self.n_samples = noise_scale, eval_every, n_samples
        self.n_candidates = n_candidates

    def _invert(self, problem: InversionProblem, generator: torch.Generator, found: list) -> None:
        device, matrix = problem.device, problem.embedding_matrix.detach()
        mask = allowed_mask(problem).to(device)
        shape = (problem.max_length, matrix.shape[0])
        logits = (torch.randn(shape, generator=generator) * self.noise_scale).to(device).requires_grad_(True)
        optimizer = torch.optim.Adam([logits], lr=self.lr)
        state = {"best": float("inf")}
        step_cost = 3 * self.batch_size * len(problem.contexts)
        sample_cost = (self.n_samples + 1) * len(problem.contexts)
        current = False  # whether the distribution was sampled since its last step
        try:
            for step in range(1, self.steps + 1):
                if problem.budget.left < step_cost + sample_cost:
                    break  # keep room to sample the distribution at the end
                uniform = torch.rand((self.batch_size, *shape), generator=generator).to(device)
                gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1 - 1e-10)))
                scores = ((logits + gumbel) / self.temperature).masked_fill(~mask, float("-inf"))
                soft = torch.softmax(scores, dim=-1)  # [B, L, V]
                loss = problem.embedding_loss(soft.to(matrix.dtype) @ matrix)
                (gradient,) = torch.autograd.grad(loss.mean(), logits)  # not into the model's own .grad
                logits.grad = gradient
                optimizer.step()
                current = False
                if step % self.eval_every == 0:
                    self._sample(problem, logits.detach(), mask, generator, found, state)
                    current = True
        except BudgetExhausted:
            pass
        if not current:  # the end of the search (its steps or the budget's): sample with what is left
            self._sample(problem, logits.detach(), mask, generator, found, state)

    def _sample(self, problem: InversionProblem, logits: torch.Tensor, mask: torch.Tensor,
                generator: torch.Generator, found: list, state: dict) -> None:
        """Measure the distribution's argmax and ``n_samples`` triggers drawn from it (fewer when the budget has
        not room for them all); keep the improving ones."""
        n = min(self.n_samples, problem.budget.left // len(problem.contexts) - 1)
        probabilities = torch.softmax(logits.float().masked_fill(~mask, float("-inf")), dim=-1).cpu()  # [L, V]
        if n < 0:
            return
        drawn = torch.multinomial(probabilities, max(n, 1), replacement=True, generator=generator).T[:n]
        triggers = torch.unique(torch.cat([probabilities.argmax(-1)[None], drawn]), dim=0)
        losses = problem.loss(triggers.tolist())
        for trigger, value in sorted(zip(triggers.tolist(), losses.tolist()), key=lambda pair: pair[1]):
            if value < state["best"] or len(found) < self.n_candidates:
                found.append((trigger, value))
                state["best"] = min(state["best"], value)
