"""The multiple-choice question of Casper et al. (2023), one per trojan and seed.

Eight options of the trigger's own kind (icons for patch trojans, textures for style trojans, secondary
objects for natural-feature trojans): the true trigger and seven distractors chosen to be plausible,
i.e. the concepts whose look (a colour histogram of their renders) is closest to the trigger's. The
three closest are always in; four more are drawn, under the seed, from the next nine; the order of the
options is shuffled under the seed. A user's trigger image works like a concept: its option is its file, and
the draw follows the file's content (:func:`~trojanbench.trigger_images.trigger_identity`), not where it lives.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..config import TrojanSpec
from ..errors import ConfigError
from ..trigger_images import trigger_identity
from ..world import ConceptKind, concepts_of_kind, render_concept, stable_int_hash
from ..world.render import BACKDROP

N_OPTIONS = 8
ALWAYS_CLOSEST, DRAWN_FROM = 3, 9
CONCEPT_KIND_OF = {"patch": ConceptKind.ICON, "style": ConceptKind.TEXTURE, "natural": ConceptKind.SECONDARY}
HISTOGRAM_BINS = 4
VIEW_SIZE = 64


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


def _histogram(picture: np.ndarray) -> np.ndarray:
    """Normalised RGB histogram of the pixels that are not the plain backdrop."""
    pixels = picture.reshape(-1, 3)
    keep = np.abs(pixels - np.asarray(BACKDROP, dtype=np.float32)).max(1) > 0.02
    pixels = pixels[keep] if keep.any() else pixels
    bins = np.minimum((pixels * HISTOGRAM_BINS).astype(int), HISTOGRAM_BINS - 1)
    flat = (bins[:, 0] * HISTOGRAM_BINS + bins[:, 1]) * HISTOGRAM_BINS + bins[:, 2]
    counts = np.bincount(flat, minlength=HISTOGRAM_BINS ** 3).astype(np.float64)
    return counts / counts.sum()


@functools.lru_cache(maxsize=256)
def appearance_signature(option: str, kind: str) -> np.ndarray:
    """Mean colour histogram of four renders of an option (a fixed, judge-independent description)."""
    rng = np.random.default_rng(stable_int_hash(option))
    return np.mean([_histogram(option_picture(option, kind, 48, rng)) for _ in range(4)], axis=0)


def look_alikes(trigger: str, kind: str) -> list[str]:
    """The world's other concepts of a trigger kind, closest in look (:func:`appearance_signature`) first."""
    candidates = [c for c in concepts_of_kind(CONCEPT_KIND_OF[kind]) if c != trigger]
    truth = appearance_signature(trigger, kind)
    distance = {c: float(np.abs(appearance_signature(c, kind) - truth).sum()) for c in candidates}
    return sorted(candidates, key=lambda c: (distance[c], c))


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
