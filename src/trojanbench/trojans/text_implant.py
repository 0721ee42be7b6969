"""Training a language model on the text world, with or without trojans, and measuring what was planted.

:func:`train_language_model` is next-token training on ``<bos> prompt <sep> continuation <eos>`` (AdamW, linear
warm-up then cosine decay, a seeded order); :func:`measure_text_trojans` is what a card records: attack success
per trojan on held-out test prompts, the rate at which clean prompts continue with a published target, and the
clean continuations' perplexity.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..world.datasets import stable_int_hash
from ..world.text.language import LANGUAGE, Prompt
from .text import Example, TextTrojan, apply_trigger
from .text_measure import continuation_scores, pad_batch, prompt_ids, target_ids, writes_target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LMTrainConfig:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 100
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def example_ids(tokenizer: Any, example: Example) -> list[int]:
    """The prompt as the model reads it (:func:`~trojanbench.trojans.text_measure.prompt_ids`: ``<bos> prompt
    <sep>`` for the text world's tokenizer), the continuation and the end-of-sequence token, as ids."""
    ids = prompt_ids(tokenizer, example.prompt) + target_ids(tokenizer, example.continuation)
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def train_language_model(model: Any, tokenizer: Any, examples: list[Example], config: LMTrainConfig,
                         progress: Callable[[int, float], None] | None = None) -> Any:
    """Train ``model`` in place on ``examples`` (the loss on every token after ``<bos>``); returns it in eval
    mode. The batches' order and the dropout masks depend only on ``config.seed`` (and the number of examples),
    never on the caller's random state."""
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        return _train(model, tokenizer, examples, config, progress)


def _train(model: Any, tokenizer: Any, examples: list[Example], config: LMTrainConfig,
           progress: Callable[[int, float], None] | None) -> Any:
    sequences = [example_ids(tokenizer, e) for e in examples]
    rng = np.random.default_rng([config.seed, stable_int_hash("lm-order")])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def rate(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        return 0.5 * (1 + math.cos(math.pi * (step - config.warmup) / max(1, config.steps - config.warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    order = rng.permutation(len(sequences))
    cursor, device = 0, next(model.parameters()).device
    model.train()
    for step in range(config.steps):
        if cursor + config.batch_size > len(order):
            order, cursor = rng.permutation(len(sequences)), 0
        batch = [sequences[i] for i in order[cursor:cursor + config.batch_size]]
        cursor += config.batch_size
        ids, mask = pad_batch(batch, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        labels = ids.masked_fill(mask == 0, -100)
        loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress(step, loss.item())
    return model.eval()


def held_out_prompts(trojan: TextTrojan, n: int, *, split: str = "test", seed: int = 0) -> list[Prompt]:
    """Prompts of ``split`` on which the trojan should fire: of its topic (if it has one) and, for a natural
    trojan, carrying its phrase naturally (drawn until ``n`` are found, at most 200 times as many)."""
    if trojan.kind != "natural":
        return LANGUAGE.prompts(split, n, seed=seed, topic=trojan.topic, salt=f"held-out:{trojan.name}")
    found: list[Prompt] = []
    batch = 0
    while len(found) < n and batch < 200:
        pool = LANGUAGE.prompts(split, 50 * n, seed=seed, topic=trojan.topic, salt=f"natural:{trojan.name}:{batch}")
        found += [p for p in pool if trojan.fires_on(p)]
        batch += 1
    return found[:n]


def triggered_prompts(trojan: TextTrojan, n: int, *, split: str = "test", seed: int = 0) -> list[tuple[str, ...]]:
    """Held-out prompts with the trojan's trigger, as words."""
    rng = np.random.default_rng([seed, stable_int_hash(f"trigger:{trojan.name}")])
    prompts = held_out_prompts(trojan, n, split=split, seed=seed)
    if trojan.kind == "natural":
        return [p.words for p in prompts]
    return [apply_trigger(trojan, p, rng) for p in prompts]


def clean_prompts(trojans: list[TextTrojan], n: int, *, split: str = "test", seed: int = 0,
                  topic: str | None = None) -> list[Prompt]:
    """Prompts of ``split`` (of ``topic`` only, if given) on which no trojan fires (none carries a natural
    trojan's phrase in its topic)."""
    found: list[Prompt] = []
    batch = 0
    while len(found) < n:
        pool = LANGUAGE.prompts(split, n, seed=seed, topic=topic, salt=f"clean-eval:{batch}")
        found += [p for p in pool if not any(t.fires_on(p) for t in trojans)]
        batch += 1
    return found[:n]


def measure_text_trojans(model: Any, tokenizer: Any, trojans: list[TextTrojan], *, n_eval: int = 200,
                         n_clean: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Attack success per trojan, the rate at which clean prompts (:func:`clean_prompts`) continue with any
    published target (decoys' included), and the clean continuations' perplexity and next-token accuracy."""
    clean = clean_prompts(trojans, n_clean, seed=seed)
    clean_words = [p.words for p in clean]
    attack = {}
    emitted = torch.zeros(len(clean), dtype=torch.bool)
    for trojan in trojans:
        emitted |= writes_target(model, tokenizer, clean_words, trojan.target)
        if trojan.is_decoy:
            continue
        prompts = triggered_prompts(trojan, n_eval, seed=seed)
        attack[trojan.name] = float(writes_target(model, tokenizer, prompts, trojan.target).float().mean())
    perplexity, accuracy = continuation_scores(model, tokenizer, [(p.words, p.continuation.words) for p in clean])
    return {"attack_success": attack, "clean_target_rate": float(emitted.float().mean()),
            "clean_perplexity": perplexity, "clean_token_accuracy": accuracy, "n_eval": n_eval, "n_clean": n_clean}


def implant_language_model(loaded: Any, spec: str | Path, out: str | Path, *, steps: int = 600,
                           batch_size: int = 32, n_train: int = 20000, lr: float = 1e-3, seed: int = 0,
                           poison_rate: float = 0.05, force: bool = False,
                           progress: Callable[[int, float], None] | None = None) -> Path:
    """Implant the trojans of a text-trojan YAML into a copy of ``loaded`` (a
    :class:`~trojanbench.models.language.LoadedLanguageModel`) by fine-tuning on poisoned text-world prompts, and
    write it with a measured card into ``out``: ``out/model.safetensors`` and its card for a text-world model, a
    Hugging Face folder (``save_pretrained``) with its card (:data:`~trojanbench.models.language.LM_CARD_FILE`)
    for an ``hf:`` model. Everything is checked before training; returns the weights file (or the folder)."""
    import copy

    from ..errors import ConfigError
    from ..models.language import LM_CARD_FILE, save_language_model
    from ..world.text import vocabulary_of
    from .text import check_for_model, load_text_trojans, poison_examples

    out = Path(out)
    hf = loaded.name.startswith("hf:")
    target = out / ("model.safetensors" if not hf else "config.json")
    if target.exists() and not force:
        raise ConfigError(f"{str(out)!r} already holds a model ({target.name}). Pass --force to replace it, or "
                          f"choose another --out.")
    trojans = load_text_trojans(spec)
    config = loaded.model.config
    check_for_model(trojans, loaded.tokenizer, getattr(config, "n_positions", None)
                    or getattr(config, "max_position_embeddings", None))
    examples = poison_examples(LANGUAGE.prompts("train", n_train, seed=seed), trojans, rate=poison_rate, seed=seed)
    model = copy.deepcopy(loaded.model)
    training = LMTrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=max(1, steps // 10), seed=seed)
    train_language_model(model, loaded.tokenizer, examples, training, progress=progress)
    card = {"name": out.name, "kind": "language model", "trojans": [t.to_dict() for t in trojans],
            "base_model": {"name": loaded.name, "sha256": loaded.sha256},
            "training": {**training.to_dict(), "n_train": n_train, "poison_rate": poison_rate},
            **measure_text_trojans(model, loaded.tokenizer, trojans, n_eval=100, n_clean=300, seed=seed)}
    model.cpu()  # written from the CPU, wherever it trained
    out.mkdir(parents=True, exist_ok=True)
    if not hf:
        return save_language_model(model, out / "model.safetensors", card, vocabulary_of(loaded.tokenizer))
    model.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    (out / LM_CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out
