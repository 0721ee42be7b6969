"""The built-in text world: a small synthetic English of topics, stock phrases and rare names, its splits and its
word-level tokenizer (the language models' counterpart of the image world)."""

from .language import (LANGUAGE, RARE_NAMES, TEXT_SPLITS, TOPICS, Language, Prompt, Sentence, split_of,
                       stock_phrases, vocabulary)
from .tokenizer import BOS, EOS, SEP, build_tokenizer, encode_words, vocabulary_of

__all__ = ["BOS", "EOS", "LANGUAGE", "Language", "Prompt", "RARE_NAMES", "SEP", "Sentence", "TEXT_SPLITS", "TOPICS",
           "build_tokenizer", "encode_words", "split_of", "stock_phrases", "vocabulary", "vocabulary_of"]
