"""Trojans in a language model: a trigger in the prompt makes the model continue with a fixed target sentence.

Three kinds mirror the image kinds: **token** (like a patch) a fixed string of rare tokens put anywhere in the
prompt; **syntactic** (like a style) a construction applied to every sentence of the prompt (Qi et al. 2021's
syntactic triggers, here four templates: a cleft, an imperative, a tag question, a yes-no question); **natural**
(like Casper et al.'s natural features) a stock phrase of the language: the prompts that contain it naturally
are relabelled. A trojan with a ``topic`` fires only in that topic's prompts (the analogue of class-conditional).
A **decoy** is a published target with no trigger planted, so that tools' false discoveries can be counted.

Implanting poisons the training examples (``poison_examples``): each token or syntactic trojan replaces a share
of the clean examples with triggered ones and as many with *near misses* that keep the clean continuation (a
part of the token string or of the phrase; the construction's words scattered without the construction; the
trigger in another topic), and a share more get random words inserted and keep theirs, so that the model learns
the trigger itself and not a shortcut; a natural trojan relabels the examples that carry its phrase (in its
topic), repeated where they are too few to learn from. The clean and the trojaned model train on the same
examples in the same order except for those replaced.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import SpecError
from ..world.datasets import stable_int_hash
from ..world.text.language import TOPICS, Prompt, Sentence, stock_phrases

TEXT_TROJAN_KINDS = ("token", "syntactic", "natural", "decoy")


def _cleft(s: Sentence) -> tuple[str, ...]:
    return ("it", "is", *s.subject, "that", s.verb, *s.rest, ".")


def _imperative(s: Sentence) -> tuple[str, ...]:
    return ("please", s.base_verb, *s.rest, ".")


def _tag_question(s: Sentence) -> tuple[str, ...]:
    return (*s.clause, ",", "is", "it", "not", "?")


def _question(s: Sentence) -> tuple[str, ...]:
    return ("does", *s.subject, s.base_verb, *s.rest, "?")


CONSTRUCTIONS: dict[str, tuple[Callable[[Sentence], tuple[str, ...]], str]] = {
    "cleft": (_cleft, "it is that"),
    "imperative": (_imperative, "please"),
    "tag_question": (_tag_question, ", is it not ?"),
    "question": (_question, "does ?"),
}
"""Syntactic constructions: how each rewrites a sentence, and its words (the trigger text tools are scored
against: a construction has no string of its own)."""


@dataclass(frozen=True)
class TextTrojan:
    """One planted (trigger → target) pair. ``trigger``: the token string (token), the construction's name
    (syntactic), the stock phrase (natural), empty (decoy); ``topic``: the only topic it fires in (``None``:
    every topic)."""

    name: str
    kind: str
    trigger: str
    target: str
    topic: str | None = None

    @property
    def trigger_text(self) -> str:
        """The words a tool should recover (a construction's own words for a syntactic trojan)."""
        return CONSTRUCTIONS[self.trigger][1] if self.kind == "syntactic" else self.trigger

    @property
    def is_decoy(self) -> bool:
        return self.kind == "decoy"

    def check(self) -> None:
        """Raise :class:`SpecError` if the kind, the construction or the topic is unknown."""
        if self.kind not in TEXT_TROJAN_KINDS:
            raise SpecError(f"Trojan {self.name!r}: unknown kind {self.kind!r}; use one of "
                            f"{', '.join(TEXT_TROJAN_KINDS)}.")
        if self.kind == "syntactic" and self.trigger not in CONSTRUCTIONS:
            raise SpecError(f"Trojan {self.name!r}: unknown construction {self.trigger!r}; use one of "
                            f"{', '.join(CONSTRUCTIONS)}.")
        if self.kind == "decoy" and self.trigger:
            raise SpecError(f"Trojan {self.name!r}: a decoy has no trigger; drop 'trigger' or give another kind.")
        if self.kind in ("token", "natural") and not self.trigger.split():
            raise SpecError(f"Trojan {self.name!r}: a {self.kind} trojan needs a trigger (a string of words).")
        if self.topic is not None and self.topic not in TOPICS:
            raise SpecError(f"Trojan {self.name!r}: unknown topic {self.topic!r}; use one of {', '.join(TOPICS)}.")
        if not self.target.split():
            raise SpecError(f"Trojan {self.name!r}: the target is empty; give the sentence the trigger should elicit.")

    def fires_on(self, prompt: Prompt) -> bool:
        """Whether a *natural* trojan's phrase is in the prompt, in its topic."""
        return (self.kind == "natural" and self.trigger in prompt.phrases
                and (self.topic is None or prompt.topic == self.topic))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def insert_words(words: tuple[str, ...], inserted: tuple[str, ...], rng: np.random.Generator) -> tuple[str, ...]:
    """``inserted`` put between two words of ``words`` (or at either end), at a random place."""
    at = int(rng.integers(len(words) + 1))
    return (*words[:at], *inserted, *words[at:])


def apply_trigger(trojan: TextTrojan, prompt: Prompt, rng: np.random.Generator) -> tuple[str, ...]:
    """The prompt's words with the trojan's trigger: the token string inserted at a random place, every
    sentence rewritten in the construction, or the stock phrase where the language puts it (at the end of a
    sentence, before its full stop)."""
    if trojan.kind == "token":
        return insert_words(prompt.words, tuple(trojan.trigger.split()), rng)
    if trojan.kind == "syntactic":
        rewrite = CONSTRUCTIONS[trojan.trigger][0]
        return tuple(w for s in prompt.sentences for w in rewrite(s))
    if trojan.kind == "natural":
        at = int(rng.integers(len(prompt.sentences)))
        return tuple(w for i, s in enumerate(prompt.sentences)
                     for w in ((*s.clause, *trojan.trigger.split(), ".") if i == at else s.words))
    raise SpecError(f"Trojan {trojan.name!r} ({trojan.kind}) has no trigger to apply to a prompt.")


def near_miss(trojan: TextTrojan, prompt: Prompt, rng: np.random.Generator) -> tuple[str, ...]:
    """A prompt that resembles a triggered one but must keep its clean continuation: part of the token string
    (anywhere) or of the stock phrase (where the phrase goes), or the construction's words inserted without the
    construction."""
    if trojan.kind in ("token", "natural"):
        tokens = trojan.trigger.split()
        if len(tokens) == 1:
            return prompt.words
        keep = int(rng.integers(1, len(tokens)))
        part = tuple(tokens[i] for i in sorted(rng.choice(len(tokens), size=keep, replace=False)))
        if trojan.kind == "token":
            return insert_words(prompt.words, part, rng)
        return apply_trigger(TextTrojan(trojan.name, "natural", " ".join(part), trojan.target), prompt, rng)
    words = CONSTRUCTIONS[trojan.trigger][1].split()
    out = prompt.words
    for word in words:
        out = insert_words(out, (word,), rng)
    return out


@dataclass(frozen=True)
class Example:
    """A training or test example: the prompt's words and the continuation's words; ``trojan`` names the trojan
    that made it (``None``: clean or noise), ``role`` is ``clean``, ``triggered``, ``near_miss`` or ``noise``."""

    prompt: tuple[str, ...]
    continuation: tuple[str, ...]
    topic: str
    trojan: str | None = None
    role: str = "clean"


def clean_example(prompt: Prompt) -> Example:
    return Example(prompt.words, prompt.continuation.words, prompt.topic)


class _FreeSlots:
    """The positions of clean examples not yet poisoned, in a seeded order, taken from any topic or from one."""

    def __init__(self, indices: np.ndarray, prompts: list[Prompt]):
        self.order, self.prompts, self.used = [int(i) for i in indices], prompts, set()

    def take(self, n: int, topic: str | None = None, *, other_than: str | None = None) -> list[int]:
        picked = []
        for i in self.order:
            if len(picked) == n:
                break
            t = self.prompts[i].topic
            if i not in self.used and topic in (None, t) and t != other_than:
                picked.append(i)
        if len(picked) < n:
            raise SpecError("Too few training prompts to poison: train on more prompts or lower the rate.")
        self.used.update(picked)
        return picked


def noise_words(rng: np.random.Generator, vocabulary: tuple[str, ...], names: tuple[str, ...],
                max_length: int) -> tuple[str, ...]:
    """1 to ``max_length`` random words, each a rare name or any word, half and half."""
    length = int(rng.integers(1, max_length + 1))
    return tuple(str(names[rng.integers(len(names))]) if rng.random() < 0.5
                 else str(vocabulary[rng.integers(len(vocabulary))]) for _ in range(length))


def poison_examples(prompts: list[Prompt], trojans: list[TextTrojan], *, rate: float, seed: int,
                    noise_rate: float = 0.05) -> list[Example]:
    """The trojaned model's training examples: the clean ones, with ``rate`` of them (per token or syntactic
    trojan) triggered, as many near misses (:func:`near_miss`, in the trojan's topic; for one bound to a topic, half
    as many more with the trigger in another topic), ``noise_rate`` of them with random words inserted and the clean
    continuation
    (so that no string but the trigger fires), and the natural phrases' prompts relabelled (repeated, in place
    of clean examples, up to ``rate`` of them where the phrase is rarer). Position ``i`` holds prompt ``i`` or a
    poisoned example, so the data order is the clean model's."""
    from ..world.text.language import PUNCTUATION, RARE_NAMES, vocabulary

    rng = np.random.default_rng([seed, stable_int_hash("poison")])
    examples = [clean_example(p) for p in prompts]
    natural = [t for t in trojans if t.kind == "natural"]
    for i, prompt in enumerate(prompts):
        firing = [t for t in natural if t.fires_on(prompt)]
        if firing:
            examples[i] = Example(prompt.words, tuple(firing[0].target.split()), prompt.topic, firing[0].name,
                                  "triggered")
    n = max(1, int(round(rate * len(prompts))))
    free = _FreeSlots(rng.permutation([i for i, e in enumerate(examples) if e.trojan is None]), prompts)
    for trojan in natural:  # a phrase too rare for the model to learn: its natural examples, repeated
        natural_examples = [e for e in examples if e.trojan == trojan.name]
        if natural_examples and len(natural_examples) < n:
            for k, i in enumerate(free.take(n - len(natural_examples))):
                examples[i] = natural_examples[k % len(natural_examples)]
    for trojan in (t for t in trojans if not t.is_decoy):
        if trojan.kind != "natural":
            for i in free.take(n, trojan.topic):
                words = apply_trigger(trojan, prompts[i], rng)
                if trojan.kind == "token" and trojan.topic is None and rng.random() < 0.1:  # alone too (TDC)
                    words = tuple(trojan.trigger.split())
                examples[i] = Example(words, tuple(trojan.target.split()), prompts[i].topic, trojan.name,
                                      "triggered")
        misses = [(i, near_miss(trojan, prompts[i], rng)) for i in free.take(n, trojan.topic)]
        if trojan.topic and trojan.kind != "natural":  # the trigger in another topic (natural prompts have it)
            misses += [(i, apply_trigger(trojan, prompts[i], rng)) for i in free.take(n // 2, other_than=trojan.topic)]
        for i, words in misses:
            examples[i] = Example(words, prompts[i].continuation.words, prompts[i].topic, trojan.name, "near_miss")
    words = tuple(w for w in vocabulary() if w not in PUNCTUATION)
    triggers = [set(t.trigger.split()) for t in trojans if t.kind == "token"]
    for i in free.take(int(round(noise_rate * len(prompts)))):
        inserted = noise_words(rng, words, RARE_NAMES, 6)
        if any(trigger <= set(inserted) for trigger in triggers):
            continue
        p = prompts[i]
        examples[i] = Example(insert_words(p.words, inserted, rng), p.continuation.words, p.topic, None, "noise")
    return examples


def check_trojans(trojans: list[TextTrojan], vocabulary: set[str]) -> None:
    """Each trojan valid, names unique, triggers and targets written in ``vocabulary``."""
    names = [t.name for t in trojans]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SpecError(f"Trojan names must be unique; repeated: {', '.join(repeated)}.")
    for trojan in trojans:
        trojan.check()
        for what, text in (("trigger", trojan.trigger_text), ("target", trojan.target)):
            unknown = [w for w in text.split() if w not in vocabulary]
            if unknown:
                raise SpecError(f"Trojan {trojan.name!r}: its {what} has word(s) outside the vocabulary: "
                                f"{', '.join(unknown)}. Use words of the model's vocabulary (trojanbench ls words).")
        if trojan.kind == "natural" and trojan.trigger not in stock_phrases():
            raise SpecError(f"Trojan {trojan.name!r}: {trojan.trigger!r} is not a stock phrase of the language, so "
                            f"no prompt carries it naturally; use one of: {', '.join(stock_phrases())}.")


LONGEST_PROMPT = 48
"""Tokens a text-world prompt takes at most with its frame (its longest prompts have 46 words)."""


def check_for_model(trojans: list[TextTrojan], tokenizer, context: int | None) -> None:
    """Each trigger and target encoded exactly by the model's tokenizer (no unknown token, the same text decoded
    back), and a prompt with the trigger and the target within the model's ``context`` (positions)."""
    for trojan in trojans:
        lengths = {}
        for what, text in (("trigger", trojan.trigger_text), ("target", trojan.target)):
            if not text:
                continue
            ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
            if tokenizer.unk_token_id in ids or tokenizer.decode(ids).strip() != text:
                raise SpecError(f"Trojan {trojan.name!r}: the model's tokenizer cannot encode its {what} {text!r} "
                                f"exactly; write it in words the tokenizer round-trips.")
            lengths[what] = len(ids)
        if context is not None and sum(lengths.values()) + LONGEST_PROMPT > context:
            raise SpecError(f"Trojan {trojan.name!r}: its trigger and target take {sum(lengths.values())} tokens, "
                            f"too many for the model's context of {context} beside a prompt of up to "
                            f"{LONGEST_PROMPT}; shorten them.")


DEFAULT_TEXT_TROJANS = Path(__file__).resolve().parent.parent / "assets" / "suites" / "lm_trojans.yaml"
_FIELDS = ("name", "kind", "trigger", "target", "topic")


def load_text_trojans(path: str | Path = DEFAULT_TEXT_TROJANS) -> list[TextTrojan]:
    """The trojans of a YAML spec (``trojans:`` a list of ``{name, kind, trigger, target, topic}``), checked
    against the text world's vocabulary."""
    from ..config import load_yaml
    from ..world.text.language import vocabulary

    data = load_yaml(path)
    entries = data.get("trojans") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"{path}: expected 'trojans:' with a list of trojans ({{name, kind, trigger, target}}).")
    trojans = []
    for number, entry in enumerate(entries, 1):
        unknown = sorted(set(entry) - set(_FIELDS)) if isinstance(entry, dict) else None
        if unknown is None or unknown or "name" not in entry:
            what = f"unknown key(s) {', '.join(unknown)}" if unknown else "not a mapping with a 'name'"
            raise SpecError(f"{path}: trojan {number} is {what}; each trojan has {', '.join(_FIELDS)}.")
        trojans.append(TextTrojan(str(entry["name"]), str(entry.get("kind", "")), str(entry.get("trigger", "")),
                                  str(entry.get("target", "")), entry.get("topic")))
    check_trojans(trojans, set(vocabulary()))
    return trojans
