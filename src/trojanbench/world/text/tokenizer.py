"""The text world's tokenizer: one token per word, built with Hugging Face ``tokenizers`` (no download).

A ``WordLevel`` model over the language's vocabulary, split on whitespace, wrapped as a
``transformers.PreTrainedTokenizerFast`` so that every tool written for Hugging Face models takes it. Decoding
joins tokens with single spaces, so ``decode(encode(text)) == text`` for any text of vocabulary words separated by
single spaces. Sequences are ``<bos> prompt <sep> continuation <eos>``; the chat template writes a conversation's
messages as the prompt and, with ``add_generation_prompt``, the ``<sep>`` after which the model answers.
"""

from __future__ import annotations

from typing import Any, Iterable

from ...errors import SpecError, require_extra
from .language import vocabulary

PAD, UNK, BOS, EOS, SEP = "<pad>", "<unk>", "<bos>", "<eos>", "<sep>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, SEP)
CHAT_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{% if not loop.first %} {% endif %}"
                 "{{ message['content'] }}{% endfor %}{% if add_generation_prompt %} <sep>{% endif %}")


def build_tokenizer(words: Iterable[str] | None = None) -> Any:
    """A ``PreTrainedTokenizerFast`` over the special tokens and ``words`` (default: the language's vocabulary)."""
    tokenizers = require_extra("tokenizers", "lm", "The text world's tokenizer")
    transformers = require_extra("transformers", "lm", "The text world's tokenizer")
    words = list(dict.fromkeys([*SPECIAL_TOKENS, *(vocabulary() if words is None else words)]))
    model = tokenizers.models.WordLevel({word: i for i, word in enumerate(words)}, unk_token=UNK)
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, unk_token=UNK, bos_token=BOS, eos_token=EOS, sep_token=SEP,
        chat_template=CHAT_TEMPLATE, clean_up_tokenization_spaces=False)


def vocabulary_of(tokenizer) -> list[str]:
    """The tokenizer's tokens in id order (what a card keeps to rebuild it)."""
    vocab = tokenizer.get_vocab()
    return sorted(vocab, key=vocab.get)


def encode_words(tokenizer: Any, text: str, *, what: str = "text") -> list[int]:
    """Token ids of ``text`` (no special tokens added); a word outside the vocabulary is a :class:`SpecError`
    naming it."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    unknown = [word for word, i in zip(text.split(), ids) if i == tokenizer.unk_token_id]
    if unknown or len(ids) != len(text.split()):
        raise SpecError(f"The {what} {text!r} has word(s) the tokenizer does not know: {', '.join(unknown) or '?'}. "
                        f"Use words of the model's vocabulary (trojanbench ls words).")
    return list(ids)
