"""Trigger inversion for language models: from the model and a published target, guess the trigger.

Every tool answers one :class:`InversionProblem` (the model, its tokenizer, the target, the tokens it may use, a
few clean prompts of the defender's and a :class:`Budget`) with a ranked list of candidate token strings.
The budget counts model passes in *sequence passes*: one sequence through the model forward costs 1, forward
and backward 3 (a backward pass costs about twice a forward's FLOPs), whatever the batch size; a tool that asks for
more than its budget gets :class:`BudgetExhausted` and returns the best it has by then. The objective every
tool shares is :meth:`InversionProblem.loss`: the target's mean cross-entropy after ``trigger + context`` for
each context (the empty prompt, as in TDC 2023, and the defender's clean prompts), averaged over contexts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F

from ...errors import MethodError
from ...params import Interval, require
from ...trojans.text_measure import pad_batch, prompt_ids
from ..base import Method


class BudgetExhausted(Exception):
    """A tool asked for more model passes than its budget has left."""


class Budget:
    """Model passes a tool may spend, in sequence passes (forward 1, forward and backward 3)."""

    BACKWARD_COST: ClassVar[int] = 3

    def __init__(self, limit: int):
        self.limit, self.used = int(limit), 0
        self.forward_sequences, self.backward_sequences = 0, 0

    @property
    def left(self) -> int:
        return self.limit - self.used

    def charge(self, sequences: int, *, backward: bool = False) -> None:
        """Pay for ``sequences`` sequences through the model (with their backward pass when ``backward``), or
        raise :class:`BudgetExhausted` (paying nothing) when the budget has not that much left."""
        cost = sequences * (self.BACKWARD_COST if backward else 1)
        if cost > self.left:
            raise BudgetExhausted(f"{cost} sequence passes asked, {self.left} left of {self.limit}")
        self.used += cost
        if backward:
            self.backward_sequences += sequences
        else:
            self.forward_sequences += sequences


@dataclass
class InversionProblem:
    """What a tool is given: never the trigger. ``contexts`` are clean prompts (word ids, no special tokens)
    the trigger is put before; ``allowed`` the token ids a trigger may use; ``max_length`` the longest trigger
    the task looks for; ``corpus`` more clean prompts of the defender's (word ids), for tools that draw on
    data."""

    model: Any
    tokenizer: Any
    target: str
    contexts: list[list[int]]
    allowed: torch.Tensor
    budget: Budget
    max_length: int = 6
    seed: int = 0
    corpus: list[list[int]] = field(default_factory=list)
    target_ids: list[int] = field(init=False)
    _frame: tuple[list[int], list[int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.target_ids = list(self.tokenizer(self.target, add_special_tokens=False)["input_ids"])
        self._frame = prompt_frame(self.tokenizer)
        if not self.contexts:
            self.contexts = [[]]

    @property
    def embedding_matrix(self) -> torch.Tensor:
        """The model's input embeddings ``[vocabulary, dim]``."""
        return self.model.get_input_embeddings().weight

    def _sequences(self, triggers: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[int]]:
        """Every trigger before every context, framed, with the target; and where each target starts."""
        before, after = self._frame
        sequences, starts = [], []
        for trigger in triggers:
            for context in self.contexts:
                prompt = [*before, *trigger, *context, *after]
                sequences.append(prompt + self.target_ids)
                starts.append(len(prompt))
        return sequences, starts

    def _target_loss(self, logits: torch.Tensor, starts: list[int]) -> torch.Tensor:
        """Mean target cross-entropy per sequence ``[B * contexts]``."""
        n = len(self.target_ids)
        positions = torch.tensor(starts, device=logits.device)[:, None] - 1 + torch.arange(n, device=logits.device)
        picked = logits.gather(1, positions[:, :, None].expand(-1, -1, logits.shape[-1])).float()
        wanted = torch.tensor(self.target_ids, device=logits.device).expand(len(starts), -1)
        return F.cross_entropy(picked.transpose(1, 2), wanted, reduction="none").mean(-1)

    @torch.no_grad()
    def loss(self, triggers: Sequence[Sequence[int]], *, batch_size: int = 512) -> torch.Tensor:
        """The objective of each trigger (a list of token ids): the target's cross-entropy averaged over contexts
        ``[len(triggers)]``. Charges one sequence pass per trigger and context."""
        self.budget.charge(len(triggers) * len(self.contexts))
        out = []
        for start in range(0, len(triggers), batch_size):
            sequences, starts = self._sequences(triggers[start:start + batch_size])
            ids, mask = pad_batch(sequences, self._pad_id)
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            out.append(self._target_loss(logits, starts).view(-1, len(self.contexts)).mean(-1).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def embedding_loss(self, trigger_embeddings: torch.Tensor) -> torch.Tensor:
        """The objective of triggers given as input embeddings ``[B, L, dim]`` (differentiable), averaged over
        contexts ``[B]``. Charges forward and backward passes for every trigger and context."""
        batch, length, _ = trigger_embeddings.shape
        self.budget.charge(batch * len(self.contexts), backward=True)
        placeholder = [[int(self.allowed[0])] * length] * batch
        sequences, starts = self._sequences(placeholder)
        ids, mask = pad_batch(sequences, self._pad_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        embeddings = self.model.get_input_embeddings()(ids)
        at = len(self._frame[0])
        repeated = trigger_embeddings.repeat_interleave(len(self.contexts), dim=0)
        embeddings = torch.cat([embeddings[:, :at], repeated.to(embeddings.dtype), embeddings[:, at + length:]], 1)
        logits = self.model(inputs_embeds=embeddings, attention_mask=mask).logits
        return self._target_loss(logits, starts).view(batch, len(self.contexts)).mean(-1)

    def token_gradient(self, triggers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The objective of ``triggers`` ``[B, L]`` and its gradient with respect to their one-hot tokens
        ``[B, L, vocabulary]`` (HotFlip's linear approximation, used by GCG, UAT and AutoPrompt)."""
        matrix = self.embedding_matrix
        one_hot = F.one_hot(triggers.to(self.device), matrix.shape[0]).to(matrix.dtype).requires_grad_(True)
        loss = self.embedding_loss(one_hot @ matrix)
        (gradient,) = torch.autograd.grad(loss.sum(), one_hot)
        return loss.detach().cpu(), gradient.detach().cpu()

    def decode(self, trigger: Sequence[int]) -> str:
        return " ".join(self.tokenizer.convert_ids_to_tokens(list(trigger)))

    def random_triggers(self, n: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """``[n, length]`` tokens drawn uniformly from the allowed ones."""
        picks = torch.randint(len(self.allowed), (n, length), generator=generator)
        return self.allowed[picks]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id or 0)


def prompt_frame(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the prompt's words sit between (``[<bos>]`` and ``[<sep>]`` for the text world's chat template)."""
    probe = next(i for i in range(len(tokenizer)) if i not in set(tokenizer.all_special_ids))
    word = tokenizer.convert_ids_to_tokens(probe)
    ids = prompt_ids(tokenizer, word)
    at = ids.index(probe) if probe in ids else len(ids)
    return ids[:at], ids[at + 1:]


RANKING_SHARE = 0.1
"""The share of a tool's budget kept back from its search, to rank and shorten what it found."""
SHORTEN_TOLERANCE = 0.1
"""Nats of objective a token's removal may cost and still be removed (:func:`shorten`)."""


def shorten(problem: InversionProblem, trigger: tuple[int, ...], value: float) -> tuple[tuple[int, ...], float]:
    """Drop tokens the objective does not need: repeatedly remove the token whose removal raises the objective
    least, while it stays within :data:`SHORTEN_TOLERANCE` of ``value`` (each tool's top candidates go through
    it, so that a tool searching ``max_length`` tokens can still name a shorter trigger exactly). Stops, keeping
    what it has, when the budget runs out."""
    current, current_value = trigger, value
    while len(current) > 1:
        options = [current[:i] + current[i + 1:] for i in range(len(current))]
        try:
            losses = problem.loss([list(o) for o in options])
        except BudgetExhausted:
            break
        best = int(losses.argmin())
        if float(losses[best]) > value + SHORTEN_TOLERANCE:
            break
        current, current_value = options[best], float(losses[best])
    return current, current_value


@dataclass(frozen=True)
class Candidate:
    """A guessed trigger: its text and its objective (lower is better) when the tool found it."""

    text: str
    loss: float


class TriggerInversion(Method):
    """Base of the language-model trigger-inversion tools: :meth:`_invert` returns candidate token-id lists,
    :meth:`invert` ranks them by the objective (re-measured within the budget where the tool did not), drops
    repeats, keeps ``n_candidates`` and shortens them (:func:`shorten`)."""

    family = "inversion"
    n_candidates: int = 5

    def invert(self, problem: InversionProblem) -> list[Candidate]:
        self.validate()
        require("seed", problem.seed, Interval(int, 0, None))
        generator = torch.Generator().manual_seed(problem.seed)
        found: list[tuple[list[int], float | None]] = []
        limit = problem.budget.limit
        problem.budget.limit = limit - int(RANKING_SHARE * limit)  # kept for ranking and shortening
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(problem.seed)
            try:
                self._invert(problem, generator, found)
            except BudgetExhausted:
                pass  # the search's share is spent: rank what was found so far
            finally:
                problem.budget.limit = limit
        return rank_candidates(problem, found, self.n_candidates, owner=type(self).__name__)

    def _invert(self, problem: InversionProblem, generator: torch.Generator,
                found: list[tuple[list[int], float | None]]) -> None:
        """Append ``(trigger ids, objective or None)`` to ``found`` as the search goes (what is there when the
        budget runs out is the answer)."""
        raise NotImplementedError


def rank_candidates(problem: InversionProblem, found: list[tuple[list[int], float | None]], keep: int, *,
                    owner: str) -> list[Candidate]:
    """The distinct candidates best first (ties: found first), the first ``keep``, each shortened (:func:`shorten`)
    and ranked again by its objective once shortened; the objective of those the tool did not measure is measured
    if the budget allows (else they rank last)."""
    best: dict[tuple[int, ...], float | None] = {}
    for ids, value in found:
        key = tuple(int(i) for i in ids)
        if not key:
            continue
        if key not in best or (value is not None and (best[key] is None or value < best[key])):
            best[key] = value
    unmeasured = [k for k, v in best.items() if v is None]
    if unmeasured:
        try:
            for key, value in zip(unmeasured, problem.loss([list(k) for k in unmeasured]).tolist()):
                best[key] = value
        except BudgetExhausted:
            pass
    order = sorted(best, key=lambda k: float("inf") if best[k] is None else best[k])
    shortened: dict[tuple[int, ...], float] = {}
    for key in order[:keep]:
        short, value = shorten(problem, key, best[key]) if best[key] is not None else (key, None)
        if short not in shortened:
            shortened[short] = float("nan") if value is None else value
    # best first by the objective they are returned with: shortening may raise a candidate's by up to
    # SHORTEN_TOLERANCE, more than the candidates differ by (stable: ties keep the order above; unmeasured last)
    ranked = sorted(shortened.items(), key=lambda item: float("inf") if math.isnan(item[1]) else item[1])
    candidates = [Candidate(problem.decode(k), v) for k, v in ranked]
    if not candidates:
        raise MethodError(f"{owner} found no candidate trigger within its budget of {problem.budget.limit} "
                          f"sequence passes.")
    return candidates
