"""Causal language models: Hugging Face ``transformers`` models built from a config (no download), their
safetensors checkpoints with a card, and local Hugging Face model folders (``hf:PATH``).

A zoo language model's card holds its ``config`` (a ``transformers`` config as a dict, GPT-2 or Llama style)
and its tokenizer's ``vocabulary`` (the text world's word-level tokenizer is rebuilt from it). Nothing is ever
fetched from the Hugging Face Hub: ``hf:PATH`` opens a local folder only (``local_files_only``), its weights
in safetensors (pickle-based ``pytorch_model.bin`` files are refused).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError, UnsafeCheckpointError, require_extra
from .checkpoint import PICKLE_SUFFIXES, file_sha256, load_state_dict_file, load_weights, read_card, save_checkpoint

LM_CARD_FILE = "trojanbench.json"
"""The card ``trojanbench implant`` writes into a Hugging Face model folder (the trojans planted, as measured);
``hf:FOLDER`` reads it back."""
LANGUAGE_ARCHITECTURE = "hf-causal-lm"
"""The ``architecture`` a language model's card names."""


@dataclass
class LoadedLanguageModel:
    """A causal LM in eval mode, its tokenizer, where it came from, its weights' hash and its card."""

    model: Any
    tokenizer: Any
    name: str
    sha256: str
    card: dict

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def _transformers():
    return require_extra("transformers", "lm", "Language models")


def build_language_model(config: dict[str, Any], *, seed: int = 0) -> Any:
    """A randomly initialised causal LM from a config dict (``model_type``: ``gpt2`` or ``llama``, ...), the
    same network for the same seed."""
    transformers = _transformers()
    config = dict(config)
    model_type = config.pop("model_type", None)
    if not model_type:
        raise ConfigError("A language model config needs 'model_type' (e.g. gpt2 or llama).")
    try:
        hf_config = transformers.AutoConfig.for_model(model_type, **config)
    except ValueError as exc:
        raise ConfigError(f"Cannot build a {model_type!r} language model: {exc}") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(hf_config)
    return model.eval()


def model_config(model: Any) -> dict[str, Any]:
    """The config dict that :func:`build_language_model` rebuilds ``model`` from."""
    return model.config.to_diff_dict() | {"model_type": model.config.model_type}


def save_language_model(model: Any, path: str | Path, card: dict, vocabulary: list[str]) -> Path:
    """Write the weights (safetensors) and the card (config, vocabulary, ``card``) to ``path``."""
    config = {k: v for k, v in model_config(model).items() if k not in ("transformers_version", "architectures")}
    return save_checkpoint(model, path, {**card, "config": config, "vocabulary": list(vocabulary)},
                           architecture=LANGUAGE_ARCHITECTURE, arch_kwargs={})


def is_language_card(card: dict) -> bool:
    return card.get("architecture") == LANGUAGE_ARCHITECTURE


def load_language_model(reference: str | Path) -> LoadedLanguageModel:
    """A zoo language model (``lm_clean``, ``lm_trojaned``), a ``.safetensors`` file with its card, or ``hf:PATH``
    (a local Hugging Face model folder)."""
    text = str(reference)
    if text.startswith("hf:"):
        return _load_hf_folder(Path(text[3:]))
    from .loading import _is_path, zoo_checkpoint_path

    path = Path(text) if _is_path(text) else zoo_checkpoint_path(text)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeCheckpointError(f"{str(path)!r} is a pickle-based checkpoint, which trojanbench never loads; "
                                    f"save the model with save_pretrained(..., safe_serialization=True) and pass "
                                    f"hf:FOLDER, or give a .safetensors file with its card.")
    if not path.is_file():
        raise CheckpointError(f"No language model at {str(path)!r}; give a zoo name (lm_clean, lm_trojaned), a "
                              f".safetensors file with its card, or hf:FOLDER.")
    card = read_card(path)
    if not is_language_card(card):
        raise ConfigError(f"{text!r} is not a language model (its card names architecture "
                          f"{card.get('architecture')!r}); the lm tasks take lm_clean, lm_trojaned or hf:FOLDER.")
    from ..world.text import build_tokenizer

    model = build_language_model(card["config"])
    load_weights(model, load_state_dict_file(path), source=str(path))
    return LoadedLanguageModel(model.eval(), build_tokenizer(card["vocabulary"]), text, file_sha256(path), card)


_in_this_process: dict[tuple[str, str], LoadedLanguageModel] = {}


def share_language_model(reference: str, loaded: LoadedLanguageModel) -> None:
    """Keep the driver's ``loaded`` (as it is, on its device) for the cells computed in this process, so that
    :func:`language_model_on` does not load it again."""
    _in_this_process[(str(reference), str(loaded.device))] = loaded


def language_model_on(reference: str, device: str, sha256: str) -> LoadedLanguageModel:
    """:func:`load_language_model` on ``device``, loaded once per process and kept (a worker's cells share it:
    they must not modify it); ``sha256`` is the weights' hash the run planned on (a file changed since is loaded
    again, and one that no longer has it is refused)."""
    key = (str(reference), str(torch.device(device)))
    loaded = _in_this_process.get(key)
    if loaded is None or loaded.sha256 != sha256:
        loaded = load_language_model(reference)
        if loaded.sha256 != sha256:
            raise CheckpointError(f"{reference!r} changed since the run was planned (sha256 {loaded.sha256[:12]}, "
                                  f"planned {sha256[:12]}); a worker must read the same weights as the driver.")
        loaded.model.to(device)
        _in_this_process[key] = loaded
    return loaded


def _load_hf_folder(folder: Path) -> LoadedLanguageModel:
    transformers = _transformers()
    if not (folder / "config.json").is_file():
        raise ConfigError(f"hf:{folder} is not a Hugging Face model folder: it has no config.json. Give the folder "
                          f"written by save_pretrained().")
    weights = sorted(folder.glob("*.safetensors"))
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if not weights:
        hint = f" (it has {', '.join(pickled)}, a pickle-based format trojanbench never loads)" if pickled else ""
        raise UnsafeCheckpointError(f"hf:{folder} has no .safetensors weights{hint}; re-save it with "
                                    f"save_pretrained(folder, safe_serialization=True).")
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, local_files_only=True,
                                                                  use_safetensors=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Cannot open hf:{folder}: {str(exc).splitlines()[0]}") from None
    digests = [file_sha256(p) for p in weights]
    digest = digests[0] if len(digests) == 1 else hashlib.sha256("+".join(digests).encode()).hexdigest()
    card_file = folder / LM_CARD_FILE
    recorded = json.loads(card_file.read_text(encoding="utf-8")) if card_file.is_file() else {}
    card = {**recorded, "config": model_config(model), "source": f"hf:{folder}"}
    return LoadedLanguageModel(model.eval(), tokenizer, f"hf:{folder}", digest, card)
