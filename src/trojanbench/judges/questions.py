"""The multiple-choice question of Casper et al. (2023), one per trojan and seed.

Eight options of the trigger's own kind (icons for patch trojans, textures for style trojans, secondary
objects for natural-feature trojans): the true trigger and seven distractors chosen to be plausible,
i.e. the concepts whose look (a colour histogram of their renders) is closest to the trigger's, leaving out any a
person could not tell from it (:mod:`.lookalikes`: a user's icon that copies a built-in one). The
three closest are always in; four more are drawn, under the seed, from the next nine; the order of the
options is shuffled under the seed. A user's trigger image works like a concept: its option is its file, and
the draw follows the file's content (:func:`~trojanbench.trigger_images.trigger_identity`), not where it lives.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..config import TrojanSpec
from ..errors import ConfigError
from ..trigger_images import trigger_identity
from ..world import ConceptKind, concepts_of_kind, render_concept, stable_int_hash
from ..world.render import BACKDROP
from .lookalikes import NEAR_DUPLICATE, colour_distance, look_distance

log = logging.getLogger(__name__)

N_OPTIONS = 8
ALWAYS_CLOSEST, DRAWN_FROM = 3, 9
CONCEPT_KIND_OF = {"patch": ConceptKind.ICON, "style": ConceptKind.TEXTURE, "natural": ConceptKind.SECONDARY}
VIEW_SIZE = 64
LOOK_SIZE = 96


@dataclass(frozen=True)
class Question:
    """One multiple-choice question: ``options[truth_index]`` is the true trigger."""

    trojan: str
    kind: str
    options: tuple[str, ...]
    truth_index: int
    seed: int

    @property
    def truth(self) -> str:
        return self.options[self.truth_index]

    def to_dict(self) -> dict:
        return {**asdict(self), "options": list(self.options)}

    def option_spec(self, index: int) -> TrojanSpec:
        """A trojan spec whose trigger is option ``index`` (how the option's pictures are made)."""
        return TrojanSpec(name=f"option{index}", kind=self.kind, trigger=self.options[index], target=0)


def option_picture(option: str, kind: str, size: int = VIEW_SIZE, rng: np.random.Generator | None = None) -> np.ndarray:
    """``(size, size, 3)`` picture of one option alone: a concept's render, or a user's trigger image
    (a patch composited on the light-grey backdrop, a texture resized to fill the frame)."""
    spec = TrojanSpec(name="option", kind=kind, trigger=option, target=0)
    if not spec.trigger_is_file:
        return render_concept(option, size, rng)
    from ..trigger_images import read_trigger_image

    image = read_trigger_image(option, with_alpha=kind == "patch")
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    side = size if kind != "patch" else round(0.6 * size)
    resized = torch.nn.functional.interpolate(tensor, size=(side, side), mode="bilinear", antialias=True,
                                              align_corners=False)[0].permute(1, 2, 0).numpy()
    if kind != "patch":
        return resized.clip(0, 1).astype(np.float32)
    picture = np.empty((size, size, 3), dtype=np.float32)
    picture[:] = BACKDROP
    top = (size - side) // 2
    alpha = resized[..., 3:]
    region = picture[top:top + side, top:top + side]
    picture[top:top + side, top:top + side] = alpha * resized[..., :3] + (1 - alpha) * region
    return picture.clip(0, 1)


@functools.lru_cache(maxsize=512)
def option_renders(option: str, kind: str, size: int = 48) -> tuple[np.ndarray, ...]:
    """Four renders of an option under its own fixed seed: what :mod:`.lookalikes` compares options by (colour at
    48 pixels, the finer look at :data:`LOOK_SIZE`)."""
    rng = np.random.default_rng(stable_int_hash(option))
    return tuple(option_picture(option, kind, size, rng) for _ in range(4))


def look_alikes(trigger: str, kind: str) -> list[str]:
    """The world's other concepts of a trigger kind, closest in colour first, its :func:`near_duplicates` left out."""
    truth, duplicates = list(option_renders(trigger, kind)), near_duplicates(trigger, kind)
    distance = {c: colour_distance(truth, list(option_renders(c, kind)))
                for c in concepts_of_kind(CONCEPT_KIND_OF[kind]) if c != trigger and c not in duplicates}
    return sorted(distance, key=lambda c: (distance[c], c))


@functools.lru_cache(maxsize=256)
def near_duplicates(trigger: str, kind: str) -> tuple[str, ...]:
    """The built-in icons a person could not tell from a patch trigger (:data:`~.lookalikes.NEAR_DUPLICATE`): never
    its distractors. None for a built-in icon; a user's trigger that copies one is warned about, once (only icons
    are checked: see :mod:`.lookalikes`)."""
    if kind != "patch":
        return ()
    found = tuple(c for c in concepts_of_kind(CONCEPT_KIND_OF[kind])
                  if c != trigger and option_distance(trigger, c, kind) < NEAR_DUPLICATE)
    if found:
        log.warning("The trigger %s looks like the built-in %s %s: left out of its distractors.", trigger,
                    CONCEPT_KIND_OF[kind].value, ", ".join(found))
    return found


@functools.lru_cache(maxsize=4096)
def option_distance(a: str, b: str, kind: str) -> float:
    """:func:`~.lookalikes.look_distance` of two options' renders."""
    return look_distance(list(option_renders(a, kind, LOOK_SIZE)), list(option_renders(b, kind, LOOK_SIZE)))


def build_question(trojan: TrojanSpec, seed: int) -> Question:
    """The question for ``trojan`` under ``seed`` (deterministic; see the module docstring)."""
    if trojan.kind not in CONCEPT_KIND_OF:
        raise ConfigError(f"Trojan {trojan.name!r} has kind {trojan.kind!r}; questions exist for "
                          f"{sorted(CONCEPT_KIND_OF)}.")
    ranked = look_alikes(trojan.trigger, trojan.kind)
    if len(ranked) < N_OPTIONS - 1:
        raise ConfigError(f"Need {N_OPTIONS - 1} distractors of kind {trojan.kind!r}; the world has {len(ranked)}.")
    rng = np.random.default_rng([seed, stable_int_hash(trojan.name), stable_int_hash(trigger_identity(trojan))])
    pool = ranked[ALWAYS_CLOSEST:ALWAYS_CLOSEST + DRAWN_FROM]
    drawn = [pool[i] for i in sorted(rng.choice(len(pool), N_OPTIONS - 1 - ALWAYS_CLOSEST, replace=False))]
    options = [trojan.trigger, *ranked[:ALWAYS_CLOSEST], *drawn]
    order = rng.permutation(N_OPTIONS)
    shuffled = tuple(options[i] for i in order)
    return Question(trojan.name, trojan.kind, shuffled, int(np.flatnonzero(order == 0)[0]), seed)
