"""The text world: deterministic prompts, disjoint splits, a vocabulary that covers what the grammar writes, and a
tokenizer with an exact round trip and a chat template."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from trojanbench.errors import SpecError, UnknownNameError  # noqa: E402
from trojanbench.world.text import (LANGUAGE, TOPICS, build_tokenizer, encode_words, split_of,  # noqa: E402
                                    stock_phrases, vocabulary)


def test_prompts_are_deterministic_and_of_their_split():
    first = LANGUAGE.prompts("val", 50, seed=3)
    assert first == LANGUAGE.prompts("val", 50, seed=3)
    assert first != LANGUAGE.prompts("val", 50, seed=4)
    assert all(p.split == "val" == split_of(p.text) for p in first)


def test_splits_are_disjoint():
    texts = {split: {p.text for p in LANGUAGE.prompts(split, 400, seed=0)} for split in ("train", "val", "test")}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"] and not texts["val"] & texts["test"]


def test_topic_prompts_and_stock_phrases_occur_naturally():
    prompts = LANGUAGE.prompts("train", 2000, seed=0, topic="sea")
    assert {p.topic for p in prompts} == {"sea"}
    phrases = {phrase for p in prompts for phrase in p.phrases}
    assert set(TOPICS["sea"]["phrases"]) <= phrases  # each of the topic's phrases occurs
    assert not phrases - set(stock_phrases())
    assert not phrases & set(TOPICS["farm"]["phrases"])  # another topic's own phrases never do
    assert all(phrase in p.text for p in prompts for phrase in p.phrases)


def test_vocabulary_covers_every_prompt_and_tokenizer_round_trips():
    tokenizer = build_tokenizer()
    words = set(vocabulary())
    for prompt in LANGUAGE.prompts("test", 300, seed=1):
        for text in (prompt.text, prompt.target_text):
            assert set(text.split()) <= words
            ids = encode_words(tokenizer, text)
            assert len(ids) == len(text.split()) and tokenizer.decode(ids) == text


def test_chat_template_frames_the_prompt():
    tokenizer = build_tokenizer()
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "the cow feeds a goat ."}],
                                        add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    assert tokenizer.convert_ids_to_tokens(ids) == ["<bos>", "the", "cow", "feeds", "a", "goat", ".", "<sep>"]


def test_unknown_words_and_splits_are_named():
    with pytest.raises(SpecError, match="zebra"):
        encode_words(build_tokenizer(), "the zebra sells bread")
    with pytest.raises(UnknownNameError, match="train"):
        LANGUAGE.prompts("trian", 1)
