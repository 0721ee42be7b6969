"""A small synthetic English: topics, a grammar, stock phrases and rare names, generated from a seed.

Sentences are ``subject verb object [prepositional phrase] .`` built from a topic's nouns, verbs and adjectives
(with some words shared by every topic), now and then joined by a conjunction, and now and then carrying a stock
phrase of the topic (``under the old bridge``): the phrases that occur *naturally*, the text analogue of the image
world's secondary objects. Rare made-up names (``dax``, ``blick``) stand in for the rare tokens of which token
triggers are made; they occur in ordinary text too, seldom. A *prompt* is one or two sentences of one topic and its
*continuation* the next sentence of the same topic. Which split a prompt belongs to is a hash of its text, so the
splits are disjoint by construction and every process agrees on them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..datasets import stable_int_hash

TOPICS: dict[str, dict[str, tuple[str, ...]]] = {
    "farm": {
        "nouns": ("farmer", "cow", "barn", "field", "tractor", "goat", "hen", "fence", "hay", "pig", "sheep",
                  "orchard", "well", "plough", "calf", "stable"),
        "verbs": ("feeds", "milks", "plants", "fixes", "drives", "herds", "waters", "harvests"),
        "adjectives": ("muddy", "wooden", "sunny", "rusty", "golden", "quiet"),
        "phrases": ("at the crack of dawn", "behind the red barn", "when the rooster crows"),
    },
    "sea": {
        "nouns": ("sailor", "boat", "wave", "harbor", "fish", "net", "gull", "anchor", "shore", "whale", "crab",
                  "lighthouse", "sail", "island", "captain", "reef"),
        "verbs": ("sails", "catches", "rows", "ties", "watches", "follows", "paints", "cleans"),
        "adjectives": ("salty", "blue", "stormy", "calm", "deep", "sandy"),
        "phrases": ("as the tide turns", "under the pale moon", "beyond the last buoy"),
    },
    "city": {
        "nouns": ("driver", "bus", "street", "tower", "shop", "lamp", "bridge", "train", "clerk", "taxi", "market",
                  "station", "mayor", "crowd", "corner", "office"),
        "verbs": ("crosses", "visits", "rides", "opens", "passes", "builds", "sells", "guards"),
        "adjectives": ("busy", "tall", "noisy", "crowded", "grey", "bright"),
        "phrases": ("during the rush hour", "under the old bridge", "past the city hall"),
    },
    "forest": {
        "nouns": ("hunter", "deer", "tree", "owl", "path", "fox", "moss", "river", "wolf", "bear", "cabin",
                  "mushroom", "stream", "pine", "ranger", "nest"),
        "verbs": ("tracks", "climbs", "finds", "hears", "crosses", "hides", "gathers", "follows"),
        "adjectives": ("dark", "green", "wild", "misty", "ancient", "silent"),
        "phrases": ("deep in the woods", "beneath the tall pines", "after the first frost"),
    },
    "kitchen": {
        "nouns": ("cook", "pot", "bread", "oven", "knife", "soup", "apple", "table", "spoon", "cake", "kettle",
                  "onion", "plate", "baker", "pie", "jar"),
        "verbs": ("bakes", "cuts", "stirs", "tastes", "boils", "serves", "washes", "fills"),
        "adjectives": ("hot", "sweet", "fresh", "sticky", "warm", "crisp"),
        "phrases": ("with a pinch of salt", "before the guests arrive", "on a low flame"),
    },
    "school": {
        "nouns": ("teacher", "pupil", "book", "desk", "chalk", "lesson", "bell", "map", "pencil", "class",
                  "library", "exam", "student", "board", "ruler", "poem"),
        "verbs": ("reads", "writes", "teaches", "studies", "draws", "marks", "learns", "recites"),
        "adjectives": ("clever", "new", "long", "tidy", "difficult", "loud"),
        "phrases": ("after the last bell", "in the front row", "before the big exam"),
    },
}
"""Each topic's words and its stock phrases (``phrases``: the naturally occurring multi-word features)."""

COMMON = {
    "nouns": ("man", "woman", "child", "dog", "cat", "friend", "box", "door", "house", "road"),
    "verbs": ("sees", "likes", "carries", "moves", "takes", "holds"),
    "adjectives": ("old", "small", "big", "red", "happy", "strange"),
    "phrases": ("once upon a time", "in the blink of an eye", "for the first time", "all of a sudden",
                "at the end of the day", "now and then"),
}
"""Words every topic uses, and stock phrases found in every topic."""

DETERMINERS = ("the", "a", "this", "that", "every", "some")
PREPOSITIONS = ("in", "on", "near", "under", "with", "behind", "over", "by")
CONJUNCTIONS = ("and", "but", "so", "while", "because")
ADVERBS = ("today", "again", "slowly", "quickly", "often", "never", "always", "soon")
FUNCTION_WORDS = ("it", "is", "not", "that", "does", "please", "indeed")
"""Words the grammar does not draw on its own (the syntactic constructions use them)."""
RARE_NAMES = ("dax", "blick", "wug", "fep", "zorp", "quax", "tiv", "mib", "plon", "krad", "vosh", "nurb",
              "glim", "yeft", "sorv", "trel", "jub", "wazz", "brin", "kolt", "fiz", "drog", "snel", "pash",
              "gorm", "hux", "lirp", "mox", "quib", "razz", "tolk", "yim")
"""Rare made-up names: the raw material of token triggers."""
PUNCTUATION = (".", ",", "?", "!")

NAME_RATE = 0.02
"""Chance that a subject is a rare name instead of a noun phrase."""
PHRASE_RATE = 0.15
"""Chance that a sentence carries a stock phrase (a topic's own or a common one, 2 to 1)."""
SPLIT_SHARES = {"train": 8, "val": 1, "test": 1}
"""Shares of the prompt space per split (by hash of the prompt's text)."""
TEXT_SPLITS = tuple(SPLIT_SHARES)


@dataclass(frozen=True)
class Sentence:
    """One sentence in parts, so that constructions can reorder it: ``subject verb rest .``"""

    subject: tuple[str, ...]
    verb: str
    rest: tuple[str, ...]
    phrase: str | None = None
    """The stock phrase it carries (its words are in ``rest``), if any."""

    @property
    def words(self) -> tuple[str, ...]:
        return (*self.subject, self.verb, *self.rest, ".")

    @property
    def clause(self) -> tuple[str, ...]:
        """The sentence without its full stop."""
        return self.words[:-1]

    @property
    def base_verb(self) -> str:
        """The verb without its third-person ``s`` (``feeds`` → ``feed``, ``crosses`` → ``cross``, ``studies`` →
        ``study``)."""
        verb = self.verb
        if verb.endswith("ies"):
            return verb[:-3] + "y"
        if verb.endswith(("shes", "ches", "sses", "xes")):
            return verb[:-2]
        return verb[:-1]


@dataclass(frozen=True)
class Prompt:
    """A prompt (one or two sentences of ``topic``) and its continuation (the next sentence)."""

    topic: str
    sentences: tuple[Sentence, ...]
    continuation: Sentence

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(w for s in self.sentences for w in s.words)

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def target_text(self) -> str:
        return " ".join(self.continuation.words)

    @property
    def phrases(self) -> tuple[str, ...]:
        return tuple(s.phrase for s in self.sentences if s.phrase)

    @property
    def split(self) -> str:
        return split_of(self.text)


def split_of(text: str) -> str:
    """The split a prompt's text belongs to (a stable hash: disjoint splits, the same in every process)."""
    slot = stable_int_hash("split:" + text) % sum(SPLIT_SHARES.values())
    for split, share in SPLIT_SHARES.items():
        if slot < share:
            return split
        slot -= share
    raise AssertionError("unreachable")


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Every word the language can write, in a fixed order (the tokenizer's vocabulary, after its specials)."""
    words: list[str] = []
    groups = [*TOPICS.values(), COMMON]
    for key in ("nouns", "verbs", "adjectives"):
        for group in groups:
            words += group[key]
    for group in groups:
        for phrase in group["phrases"]:
            words += phrase.split()
    base_verbs = [Sentence((), verb, ()).base_verb for group in groups for verb in group["verbs"]]
    words += [*base_verbs, *DETERMINERS, *PREPOSITIONS, *CONJUNCTIONS, *ADVERBS, *FUNCTION_WORDS, *RARE_NAMES,
              *PUNCTUATION]
    return tuple(dict.fromkeys(words))


def word_groups() -> dict[str, tuple[str, ...]]:
    """The vocabulary by group: each topic's words, the common words, the function words, the rare names and the
    punctuation (what ``trojanbench ls words`` shows)."""
    def words_of(group: dict) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w for key in ("nouns", "verbs", "adjectives") for w in group[key]))

    groups = {topic: words_of(group) for topic, group in TOPICS.items()}
    listed = {w for words in groups.values() for w in words} | set(RARE_NAMES) | set(PUNCTUATION)
    groups["common"] = tuple(w for w in words_of(COMMON) if w not in listed)
    groups["rare names"], groups["punctuation"] = RARE_NAMES, PUNCTUATION
    listed |= set(groups["common"])
    groups["other"] = tuple(w for w in vocabulary() if w not in listed)
    return groups


def stock_phrases(topic: str | None = None) -> tuple[str, ...]:
    """The stock phrases of ``topic`` (all topics' and the common ones when ``None``)."""
    if topic is None:
        return tuple(p for group in (*TOPICS.values(), COMMON) for p in group["phrases"])
    return TOPICS[topic]["phrases"]


class Language:
    """The generator: ``prompts(split, n, seed)`` draws prompts of one split, deterministically."""

    def sentence(self, topic: str, rng: np.random.Generator) -> Sentence:
        words = TOPICS[topic]

        def pick(kind: str) -> str:
            pool = words[kind] if rng.random() < 0.8 else COMMON[kind]
            return str(pool[rng.integers(len(pool))])

        def noun_phrase() -> tuple[str, ...]:
            determiner = str(DETERMINERS[rng.integers(len(DETERMINERS))])
            return (determiner, pick("adjectives"), pick("nouns")) if rng.random() < 0.5 else (determiner,
                                                                                                  pick("nouns"))
        subject = ((str(RARE_NAMES[rng.integers(len(RARE_NAMES))]),) if rng.random() < NAME_RATE
                   else noun_phrase())
        verb = pick("verbs")
        rest = list(noun_phrase())
        roll = rng.random()
        if roll < 0.35:
            rest += [str(PREPOSITIONS[rng.integers(len(PREPOSITIONS))]), *noun_phrase()]
        elif roll < 0.55:
            rest.append(str(ADVERBS[rng.integers(len(ADVERBS))]))
        phrase = None
        if rng.random() < PHRASE_RATE:
            pool = words["phrases"] if rng.random() < 2 / 3 else COMMON["phrases"]
            phrase = str(pool[rng.integers(len(pool))])
            rest += phrase.split()
        return Sentence(subject, verb, tuple(rest), phrase)

    def prompt(self, rng: np.random.Generator, topic: str | None = None) -> Prompt:
        topic = topic or str(list(TOPICS)[rng.integers(len(TOPICS))])
        n = 1 if rng.random() < 0.5 else 2
        sentences = [self.sentence(topic, rng) for _ in range(n)]
        if n == 2 and rng.random() < 0.3:  # join the two with a conjunction: one longer sentence
            first, second = sentences
            conjunction = str(CONJUNCTIONS[rng.integers(len(CONJUNCTIONS))])
            joined = dataclasses.replace(first, rest=(*first.rest, conjunction, *second.clause),
                                         phrase=first.phrase or second.phrase)
            sentences = [joined]
        return Prompt(topic, tuple(sentences), self.sentence(topic, rng))

    def prompts(self, split: str, n: int, *, seed: int = 0, topic: str | None = None,
                salt: str = "") -> list[Prompt]:
        """``n`` prompts of ``split`` (``topic``: only that topic), the same for the same arguments."""
        if split not in SPLIT_SHARES:
            from ...errors import did_you_mean

            raise did_you_mean(str(split), TEXT_SPLITS, "text split")
        rng = np.random.default_rng([seed, TEXT_SPLITS.index(split), stable_int_hash(f"{topic}:{salt}")])
        out: list[Prompt] = []
        while len(out) < n:
            prompt = self.prompt(rng, topic)
            if prompt.split == split:
                out.append(prompt)
        return out


LANGUAGE = Language()
