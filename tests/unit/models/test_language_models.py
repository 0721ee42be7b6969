"""Language models: built from a config (GPT-2 and Llama style), saved as safetensors with a card and loaded back
exactly, local Hugging Face folders (``hf:PATH``) opened without the Hub, and what is refused."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from trojanbench.errors import CheckpointError, ConfigError, UnsafeCheckpointError  # noqa: E402
from trojanbench.models.language import (build_language_model, load_language_model,  # noqa: E402
                                         save_language_model)
from trojanbench.trojans.text_measure import prompt_ids, writes_target  # noqa: E402
from trojanbench.world.text import build_tokenizer  # noqa: E402
from trojanbench.world.text import vocabulary_of  # noqa: E402

TINY = {"gpt2": {"model_type": "gpt2", "n_positions": 32, "n_embd": 16, "n_layer": 1, "n_head": 2},
        "llama": {"model_type": "llama", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                  "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 32}}


def test_training_does_not_depend_on_the_callers_random_state():
    """GPT-2's dropout draws from torch's global generator: training seeds it (the zoo's determinism rests on it)."""
    from trojanbench.trojans.text import clean_example
    from trojanbench.trojans.text_implant import LMTrainConfig, train_language_model
    from trojanbench.world.text import LANGUAGE

    tokenizer = build_tokenizer()
    examples = [clean_example(p) for p in LANGUAGE.prompts("train", 64, seed=0)]
    trained = []
    for state in (1, 2):
        torch.manual_seed(state)
        model = build_language_model({**_config("gpt2", tokenizer), "n_positions": 64}, seed=0)
        assert model.config.resid_pdrop > 0  # dropout is on while training
        train_language_model(model, tokenizer, examples, LMTrainConfig(steps=3, batch_size=8, warmup=1))
        trained.append(model.state_dict())
    assert all(torch.equal(trained[0][key], trained[1][key]) for key in trained[0])


def _config(style: str, tokenizer) -> dict:
    return {**TINY[style], "vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}


@pytest.mark.parametrize("style", ["gpt2", "llama"])
def test_build_save_load_round_trip(style, tmp_path):
    tokenizer = build_tokenizer()
    model = build_language_model(_config(style, tokenizer), seed=3)
    again = build_language_model(_config(style, tokenizer), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    path = save_language_model(model, tmp_path / "lm.safetensors", {"name": "lm"}, vocabulary_of(tokenizer))
    loaded = load_language_model(path)
    ids = torch.tensor([prompt_ids(tokenizer, "the cow feeds a goat .")])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, loaded.model(input_ids=ids).logits)
    assert loaded.card["config"]["model_type"] == style and not loaded.model.training
    assert loaded.tokenizer.get_vocab() == tokenizer.get_vocab()


def test_hf_folder_opens_locally_and_measures(tmp_path):
    tokenizer = build_tokenizer()
    model = build_language_model(_config("llama", tokenizer), seed=0)
    folder = tmp_path / "hf-model"
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    loaded = load_language_model(f"hf:{folder}")
    assert loaded.name == f"hf:{folder}" and len(loaded.sha256) == 64
    written = writes_target(loaded.model, loaded.tokenizer, ["the cow feeds a goat ."], "the hen .")
    assert written.dtype == torch.bool and written.shape == (1,)


def test_refusals(tmp_path):
    with pytest.raises(ConfigError, match="config.json"):
        load_language_model(f"hf:{tmp_path}")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        load_language_model(f"hf:{tmp_path}")
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        load_language_model(tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="No language model"):
        load_language_model(tmp_path / "missing.safetensors")
    with pytest.raises(ConfigError, match="not a language model"):
        load_language_model("trojaned")
    with pytest.raises(ConfigError, match="model_type"):
        build_language_model({"n_embd": 8})


def test_trojans_checked_against_the_model_tokenizer_and_context():
    from trojanbench.errors import SpecError
    from trojanbench.trojans.text import TextTrojan, check_for_model

    tokenizer = build_tokenizer(["the", "cow", "feeds", "a", "goat", "."])  # a model that knows 6 words
    fits = TextTrojan("t", "token", "the cow", "a goat .")
    check_for_model([fits], tokenizer, 128)
    with pytest.raises(SpecError, match="cannot encode its trigger"):
        check_for_model([TextTrojan("t", "token", "dax wug", "a goat .")], tokenizer, 128)
    with pytest.raises(SpecError, match="context of 50"):
        check_for_model([fits], tokenizer, 50)
