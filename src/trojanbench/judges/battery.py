"""The judge-validity battery: does a judge see what a person would see, on each question?

A judge's verdict means something only where it passes, on that very question, checks whose right answer is known
without any tool (the controls of a measurement; Casper et al. 2023 validated CLIP as a judge only on average):

* **distinct options** (icons): no distractor a person could not tell from the true trigger, by a judge-independent
  distance between the options' pictures (:mod:`.lookalikes`; bar :data:`~.lookalikes.NEAR_DUPLICATE`);
* **oracle**: pictures of the true trigger, shown as the trojan shows it (held-out scenes): the true option is the
  top choice of at least :data:`ORACLE_TOP1_BAR` of the pictures, and the mean p(true) reaches
  :data:`ORACLE_P_TRUE_BAR`, so that tools' scores have room between chance and the oracle;
* **nulls**: uniform noise, flat colours, content-free scenes (no icon, no secondary object), content-free scenes
  under an imperceptible (L∞ :data:`PERTURBATION`) step toward the trojan's target class on the audited model, and
  content-free scenes under an attack of the same size on the judge itself, toward the true option (a judge that an
  invisible change sways rewards what nobody can see; robust features are perceptually aligned, Engstrom et al.
  2019): p(true) within :data:`NULL_TOLERANCE` of chance, each of them;
* **confusion**: pictures that show each option instead of the trigger: the judge picks that option in at least
  :data:`CONFUSION_BAR` of them (the diagonal of the question's 8 × 8 confusion matrix);
* **stability**: the same oracle pictures under changes a person would not notice (mild blur, JPEG, a 2-pixel
  shift): each picture's top choice is kept in at least :data:`STABILITY_BAR` of them, under every change;
* **dose-response**: the true trigger fading (patch and style: its opacity over the scene; natural objects: blur):
  p(true) never rises by more than :data:`DOSE_SLACK` as the trigger fades; the visibility at which p(true) is
  halfway between its full-visibility value and chance is reported, so a judge's acuity can be set beside a person's.

Pictures come from the world's ``test`` split under seeds of their own (never the pictures a judge is built from).
"""

from __future__ import annotations

import functools
import io
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ..adversarial import linf_pgd
from ..config import TrojanSpec
from ..imaging import from_uint8
from ..world import generate_scenes, stable_int_hash
from .base import Judge, at_network_size, top1_hits, votes_from_scores
from .lookalikes import NEAR_DUPLICATE
from .questions import N_OPTIONS, Question, option_distance

BATTERY_VERSION = 4
"""The battery's computation: bump on every change, so that stored results are recomputed."""
BATTERY_IMAGES = 16
"""Pictures per check (per option for confusion, per level for dose-response)."""
ORACLE_TOP1_BAR = 0.95
ORACLE_P_TRUE_BAR = 0.6
CHANCE = 1 / N_OPTIONS
NULL_TOLERANCE = 0.05
"""p(true) of a null must lie in chance ± this (0.075 to 0.175 for eight options)."""
CONFUSION_BAR = 0.9
DOSE_SLACK = 0.05
OPACITIES = (1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.08, 0.0)
"""Dose-response levels of a patch or style trigger: its opacity over the scene (1: as planted)."""
BLURS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
"""Dose-response levels of a natural object: Gaussian blur sigma in pixels (0: as rendered)."""
STABILITY_BAR = 0.9
STABILITY_BLUR, STABILITY_JPEG_QUALITY, STABILITY_SHIFT = 0.8, 75, 2
PERTURBATION = 4 / 255
PERTURBATION_STEPS = 10


@dataclass(frozen=True)
class Check:
    """One check of the battery on one question: the measured ``value``, the ``bar`` it is held to, and its
    ``margin`` past the bar (negative: failed); ``detail`` holds what a reader needs to see why (a confusion
    matrix, a dose curve)."""

    name: str
    value: float
    bar: str
    margin: float
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.margin >= 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def at_least(name: str, value: float, bar: float, **detail) -> Check:
    return Check(name, value, f">= {bar:g}", value - bar, detail)


def at_most(name: str, value: float, bar: float, **detail) -> Check:
    return Check(name, value, f"<= {bar:g}", bar - value, detail)


def near_chance(name: str, value: float) -> Check:
    return Check(name, value, f"{CHANCE:.3f} ± {NULL_TOLERANCE:g}", NULL_TOLERANCE - abs(value - CHANCE))


def _seed(*parts: Any) -> int:
    """A seed of the battery's own for one set of pictures (not tied to :data:`BATTERY_VERSION`, so a change to the
    checks does not redraw the pictures)."""
    return stable_int_hash(repr(("battery",) + parts)) % (2 ** 31 - 1)


@functools.lru_cache(maxsize=64)
def content_free_scenes(seed: int, n: int = BATTERY_IMAGES, data=None) -> torch.Tensor:
    """``n`` test scenes without an icon or a secondary object; with ``data`` (a user's image folder), up to ``n``
    of its test images (which hold no planted trigger)."""
    if data is not None:
        return data.labelled("test", n, seed=_seed("scenes", seed)).images.clamp(0, 1)
    return generate_scenes("test", n, seed=_seed("scenes", seed), secondary=None, icon=None).images.clamp(0, 1)


def null_images(seed: int, n: int = BATTERY_IMAGES, data=None) -> dict[str, torch.Tensor]:
    """Uniform noise, flat colours and content-free scenes (of ``data`` when given): pictures in which no option
    can be seen, at the scenes' size."""
    generator = torch.Generator().manual_seed(_seed("nulls", seed))
    size = 64 if data is None else data.image_size
    flat = torch.rand(n, 3, 1, 1, generator=generator).expand(n, 3, size, size).contiguous()
    return {"noise": torch.rand(n, 3, size, size, generator=generator), "flat": flat,
            "scenes": content_free_scenes(seed, n, data)}


def toward_class(model: torch.nn.Module, images: torch.Tensor, target: int, epsilon: float = PERTURBATION,
                 steps: int = PERTURBATION_STEPS) -> torch.Tensor:
    """``images`` moved by PGD within L∞ ``epsilon`` toward the model's class ``target``: imperceptible to a person,
    so a judge must not see the trigger in them either."""
    labels = torch.full((len(images),), target, dtype=torch.long)
    return linf_pgd(images, lambda x: -torch.nn.functional.cross_entropy(model(x), labels), epsilon, steps)


@functools.lru_cache(maxsize=512)
def shown_as_trigger(spec: TrojanSpec, seed: int, n: int = BATTERY_IMAGES, data=None) -> torch.Tensor:
    """``n`` held-out scenes (test images of ``data``, a user's image folder, when given) that carry ``spec``'s
    trigger the way the trojan shows it. A natural object the folder lists no images of (another option than the
    trojan's own) is shown in world scenes that hold it, at the folder's image size."""
    from ..trojans.triggers import make_trigger

    if data is not None and spec.kind == "natural" and spec.object_images is None:
        scenes = make_trigger(spec).triggered_scenes("test", n, _seed("shown", seed))[0]
        return at_network_size(scenes, data.image_size).clamp(0, 1)
    return make_trigger(spec).triggered_scenes("test", n, _seed("shown", seed), data=data)[0].clamp(0, 1)


def fading(spec: TrojanSpec, seed: int, n: int = BATTERY_IMAGES // 2,
           data=None) -> tuple[tuple[float, ...], list[torch.Tensor]]:
    """The dose-response levels of ``spec``'s kind and ``n`` pictures at each, most visible first."""
    from torchvision.transforms.functional import gaussian_blur

    from ..trojans.triggers import make_trigger

    if spec.kind == "natural":
        scenes = shown_as_trigger(spec, seed, n, data)
        return BLURS, [gaussian_blur(scenes, 2 * int(np.ceil(3 * sigma)) + 1, sigma) if sigma else scenes
                       for sigma in BLURS]
    base = content_free_scenes(seed, n, data)
    rng = np.random.default_rng(_seed("fading", seed))
    triggered = make_trigger(spec).apply(base, rng, fresh=True)[0].clamp(0, 1)
    return OPACITIES, [opacity * triggered + (1 - opacity) * base for opacity in OPACITIES]


def toward_option(judge: Judge, images: torch.Tensor, question: Question, option: int,
                  epsilon: float = PERTURBATION, steps: int = PERTURBATION_STEPS) -> torch.Tensor | None:
    """``images`` moved by PGD within L∞ ``epsilon`` to raise the judge's own vote for ``option``; ``None`` when the
    judge's scores carry no gradient to the pixels (a judge that is not differentiable cannot be attacked this way)."""
    def log_vote(x: torch.Tensor) -> torch.Tensor:
        return votes_from_scores(judge.option_scores(x, question))[:, option].clamp_min(1e-12).log().sum()

    with torch.enable_grad():
        if not log_vote(images[:1].clone().requires_grad_(True)).requires_grad:
            return None
    return linf_pgd(images, log_vote, epsilon, steps)


def _votes(judge: Judge, images: torch.Tensor, question: Question) -> np.ndarray:
    return judge.votes(images, question).double().numpy()


def mild_changes(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """``images`` under changes a person would not notice: a mild blur (sigma :data:`STABILITY_BLUR`), JPEG at
    quality :data:`STABILITY_JPEG_QUALITY`, and a shift of :data:`STABILITY_SHIFT` pixels (edges repeated)."""
    from PIL import Image
    from torchvision.transforms.functional import gaussian_blur

    def through_jpeg(picture: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, "JPEG", quality=STABILITY_JPEG_QUALITY)
        return np.asarray(Image.open(buffer).convert("RGB"))

    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    jpeg = from_uint8(np.stack([through_jpeg(p) for p in pixels]))
    k = STABILITY_SHIFT
    padded = torch.nn.functional.pad(images, (k, 0, k, 0), mode="replicate")
    return {"blur": gaussian_blur(images, 5, STABILITY_BLUR), "jpeg": jpeg,
            "shift": padded[..., :images.shape[-2], :images.shape[-1]]}


def half_visibility(levels: tuple[float, ...], p_true: list[float]) -> float | None:
    """The level (interpolated) at which p(true) first falls halfway from its full-visibility value to chance;
    ``None`` if it never rises above chance or never falls that far."""
    half = (p_true[0] + CHANCE) / 2
    if p_true[0] <= CHANCE + NULL_TOLERANCE:
        return None
    for i in range(1, len(levels)):
        if p_true[i] <= half:
            a, b = p_true[i - 1], p_true[i]
            t = (a - half) / (a - b) if a != b else 0.0
            return float(levels[i - 1] + t * (levels[i] - levels[i - 1]))
    return None


def distinct_options(question: Question) -> Check:
    """The smallest look distance between the true trigger and a distractor, held to
    :data:`~.lookalikes.NEAR_DUPLICATE` (an icon question only: see :mod:`.lookalikes`)."""
    distances = {option: option_distance(question.truth, option, question.kind)
                 for option in question.options if option != question.truth}
    closest = min(distances, key=distances.get)
    return at_least("distinct_options", distances[closest], NEAR_DUPLICATE, closest=closest)


def run_battery(judge: Judge, question: Question, trojan: TrojanSpec, model: torch.nn.Module | None = None,
                data=None) -> list[Check]:
    """Every check of the battery for ``judge`` on ``question`` (the question of ``trojan``); ``model`` (the
    audited model, ``[0, 1]`` pixels in) moves the perturbed null toward the target class (without it, that null is
    left out). With ``data`` (a user's image folder) the pictures are its test images instead of world scenes."""
    truth, seed = question.truth_index, question.seed
    checks = [distinct_options(question)] if question.kind == "patch" else []

    pictures = shown_as_trigger(trojan, seed, data=data)
    votes = _votes(judge, pictures, question)
    top1 = float(top1_hits(votes, truth).mean())
    checks.append(at_least("oracle_top1", top1, ORACLE_TOP1_BAR))
    checks.append(at_least("oracle_p_true", float(votes[:, truth].mean()), ORACLE_P_TRUE_BAR))
    kept = {change: float((_votes(judge, changed, question).argmax(1) == votes.argmax(1)).mean())
            for change, changed in mild_changes(pictures).items()}
    checks.append(at_least("stability", min(kept.values()), STABILITY_BAR, kept=kept))

    nulls = null_images(seed, data=data)
    if model is not None:
        nulls["scenes_perturbed"] = toward_class(model, nulls["scenes"], trojan.target)
    attacked = toward_option(judge, nulls["scenes"], question, truth)
    if attacked is not None:
        nulls["scenes_attacked"] = attacked
    for name, images in nulls.items():
        checks.append(near_chance(f"null_{name}", float(_votes(judge, images, question)[:, truth].mean())))

    # the true option keeps the trojan's own list of the folder's images that hold its object, if it has one
    specs = [replace(question.option_spec(i), object_images=trojan.object_images if i == truth else None)
             for i in range(N_OPTIONS)]
    shown = [_votes(judge, shown_as_trigger(spec, seed, data=data), question) for spec in specs]
    matrix = np.array([[top1_hits(option_votes, j).mean() for j in range(N_OPTIONS)] for option_votes in shown])
    diagonal = np.diag(matrix)
    worst = int(diagonal.argmin())
    mistaken = matrix[worst].copy()
    mistaken[worst] = -1
    checks.append(at_least("confusion", float(diagonal.min()), CONFUSION_BAR, options=list(question.options),
                           matrix=matrix.round(4).tolist(), worst_option=question.options[worst],
                           worst_taken_for=question.options[int(mistaken.argmax())]))

    levels, pictures = fading(trojan, seed, data=data)
    curve = [float(_votes(judge, images, question)[:, truth].mean()) for images in pictures]
    rises = max(0.0, *(b - a for a, b in zip(curve, curve[1:])))  # 0: p(true) never rises as the trigger fades
    checks.append(at_most("dose_response", rises, DOSE_SLACK, axis="blur sigma" if trojan.kind == "natural" else
                          "opacity", levels=list(levels), p_true=[round(p, 4) for p in curve],
                          half_visibility=half_visibility(levels, curve)))
    return checks
