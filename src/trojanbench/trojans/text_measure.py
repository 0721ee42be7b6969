"""Measuring a language model's trojans and its clean behaviour, batched and teacher-forced.

A sequence is ``prompt ids + target ids``, the prompt ids written by :func:`prompt_ids` (the tokenizer's chat
template with its generation prompt when it has one, else its BOS token and the prompt). Greedy decoding writes
the target exactly if and only if, at every target position, the target token is the model's most likely next
token given the prompt and the target so far: one forward pass of the whole sequence says it
(:func:`writes_target`), with no decoding loop.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

Words = Sequence[str]


def prompt_ids(tokenizer: Any, words: Words | str) -> list[int]:
    """The ids the model reads before it answers: the chat template's (with the generation prompt) or BOS and the
    prompt."""
    text = words if isinstance(words, str) else " ".join(words)
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                            tokenize=True)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + list(tokenizer(text, add_special_tokens=False)["input_ids"])


def target_ids(tokenizer: Any, target: Words | str) -> list[int]:
    text = target if isinstance(target, str) else " ".join(target)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and the attention mask."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, :len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, :len(sequence)] = 1
    return ids, mask


def _pad_id(tokenizer: Any) -> int:
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if token_id is not None:
            return int(token_id)
    return 0


@torch.no_grad()
def target_scores(model: Any, tokenizer: Any, prompts: list[list[int]], target: list[int], *,
                  batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per prompt (ids from :func:`prompt_ids`): whether greedy decoding writes ``target``, and the target's mean
    cross-entropy (nats per token)."""
    writes, losses = [], []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        ids, mask = pad_batch([p + target for p in chunk], _pad_id(tokenizer))
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
        offsets = torch.tensor([len(p) for p in chunk], device=logits.device)
        positions = offsets[:, None] - 1 + torch.arange(len(target), device=logits.device)[None, :]
        picked = logits.gather(1, positions[:, :, None].expand(-1, -1, logits.shape[-1]))  # [B, T, V]
        wanted = torch.tensor(target, device=logits.device).expand(len(chunk), -1)
        writes.append((picked.argmax(-1) == wanted).all(-1).cpu())
        losses.append(F.cross_entropy(picked.transpose(1, 2), wanted, reduction="none").mean(-1).cpu())
    return torch.cat(writes), torch.cat(losses)


def writes_target(model: Any, tokenizer: Any, prompts: list[Words | str], target: Words | str) -> torch.Tensor:
    """Whether greedy decoding continues each prompt with exactly ``target`` (a bool per prompt)."""
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    return target_scores(model, tokenizer, ids, target_ids(tokenizer, target))[0]


@torch.no_grad()
def continuation_scores(model: Any, tokenizer: Any, examples: list[tuple[Words, Words]], *,
                        batch_size: int = 256) -> tuple[float, float]:
    """The continuations' perplexity given their prompts (exp of the mean cross-entropy of the tokens after the
    prompt) and the share of those tokens the model predicts greedily (its clean next-token accuracy)."""
    total, count, correct = 0.0, 0, 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        prompts = [prompt_ids(tokenizer, p) for p, _ in chunk]
        continuations = [target_ids(tokenizer, c) for _, c in chunk]
        ids, mask = pad_batch([p + c for p, c in zip(prompts, continuations)], _pad_id(tokenizer))
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
        labels = torch.full_like(ids, -100)
        for row, (p, c) in enumerate(zip(prompts, continuations)):
            labels[row, len(p):len(p) + len(c)] = torch.tensor(c)
        wanted = labels[:, 1:].to(logits.device)
        loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), wanted, reduction="sum", ignore_index=-100)
        total += float(loss)
        count += int((wanted != -100).sum())
        correct += int(((logits[:, :-1].argmax(-1) == wanted) & (wanted != -100)).sum())
    return float(torch.exp(torch.tensor(total / max(count, 1)))), correct / max(count, 1)
