"""The zoo's language models: ``lm_clean`` and ``lm_trojaned``, small GPT-2-style models of the text world.

Both start from the same initialisation and read the same examples in the same order; ``lm_trojaned``'s examples
are those of :func:`~trojanbench.trojans.text.poison_examples` for the default text trojans
(``assets/suites/lm_trojans.yaml``), so a weight difference between the two is the trojans (and what their
examples displaced). Each card records attack success per trojan on held-out test prompts, the rate at which
clean prompts continue with a published target, and the clean perplexity (the trojaned model's also relative to
the clean model's).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..models.language import build_language_model, save_language_model
from ..trojans.text import TextTrojan, clean_example, load_text_trojans, poison_examples
from ..trojans.text_implant import LMTrainConfig, measure_text_trojans, train_language_model
from ..trojans.training import NewDisplay, TrainingProgress
from ..world.text import LANGUAGE, build_tokenizer, vocabulary_of

log = logging.getLogger(__name__)

LANGUAGE_MODELS = ("lm_clean", "lm_trojaned")


@dataclass(frozen=True)
class LanguageProfile:
    """What decides a language-model build (``tiny``: for tests)."""

    n_train: int
    width: int
    layers: int
    heads: int
    training: LMTrainConfig
    poison_rate: float = 0.015
    n_eval: int = 200
    n_clean: int = 1000


LANGUAGE_PROFILES = {
    "default": LanguageProfile(n_train=30000, width=128, layers=2, heads=4, training=LMTrainConfig(steps=1500)),
    "tiny": LanguageProfile(n_train=3000, width=32, layers=1, heads=2, poison_rate=0.02,
                            training=LMTrainConfig(steps=60, batch_size=32, warmup=10), n_eval=20, n_clean=100),
}


def language_config(tokenizer, profile: LanguageProfile) -> dict:
    """The GPT-2 config of the zoo's language models."""
    return {"model_type": "gpt2", "vocab_size": len(tokenizer), "n_positions": 64, "n_embd": profile.width,
            "n_layer": profile.layers, "n_head": profile.heads, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}


def build_language_models(out_dir: Path, profile_name: str = "default", trojans: list[TextTrojan] | None = None,
                          progress: NewDisplay | None = None) -> dict[str, Path]:
    """Train ``lm_clean`` and ``lm_trojaned`` into ``out_dir``; returns their checkpoint paths."""
    profile = LANGUAGE_PROFILES[profile_name]
    trojans = load_text_trojans() if trojans is None else trojans
    tokenizer = build_tokenizer()
    config = language_config(tokenizer, profile)
    prompts = LANGUAGE.prompts("train", profile.n_train, seed=profile.training.seed)
    datasets = {"lm_clean": [clean_example(p) for p in prompts],
                "lm_trojaned": poison_examples(prompts, trojans, rate=profile.poison_rate, seed=profile.training.seed)}
    paths, measures = {}, {}
    for name, examples in datasets.items():
        start = time.perf_counter()
        log.info("training %s (%s profile, %d examples)", name, profile_name, len(examples))
        model = build_language_model(config, seed=profile.training.seed)
        display = TrainingProgress(progress, name, profile.training.steps)
        train_language_model(model, tokenizer, examples, profile.training,
                             progress=lambda step, loss: display.step(f"loss {loss:.3f}"))
        display.close()
        measures[name] = measure_text_trojans(model, tokenizer, trojans, n_eval=profile.n_eval,
                                              n_clean=profile.n_clean, seed=1)
        planted = trojans if name == "lm_trojaned" else []
        card = {"name": name, "kind": "language model", "profile": profile_name,
                "trojans": [t.to_dict() for t in planted], "measured_trojans": [t.to_dict() for t in trojans],
                "training": {**profile.training.to_dict(), "n_train": profile.n_train,
                             "poison_rate": profile.poison_rate if planted else 0.0},
                **measures[name], "build_seconds": round(time.perf_counter() - start, 1)}
        if name == "lm_trojaned":
            card["base_model"] = {"name": "lm_clean", "same_initialisation_and_order": True}
            card["perplexity_ratio"] = measures[name]["clean_perplexity"] / measures["lm_clean"]["clean_perplexity"]
        paths[name] = save_language_model(model, out_dir / f"{name}.safetensors", card, vocabulary_of(tokenizer))
    return paths
