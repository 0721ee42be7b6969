"""SNAFUE: search for natural adversarial features using embeddings (Casper et al. 2022,
"Diagnostics for Deep Neural Networks with Automated Copy/Paste Attacks").

1. Synthesise ``n_adversaries`` feature-level adversarial patches with RFLA-Perturb (pasted onto clean
   images, of the source class when given).
2. Embed them and every patch of the auditor's natural pool by the model's latent activations: the
   shift of the penultimate features when the patch is pasted at the centre of a few fixed clean
   images. As in the paper, units that shift consistently across the adversaries weigh more
   (weight ``1 - std / |mean|``, floored at 0).
3. Retrieve the natural patches most similar (mean cosine to the adversaries), skipping those the model
   already classifies as the target class on their own (the paper looks for copy/paste features, not
   target-class objects).
4. Keep the ``n_images`` candidates that actually raise the target log-probability most when pasted onto
   clean images (source class when given).

Output: the chosen natural patches alone, upscaled to the image size (``output="pasted"``: pasted large
onto clean images). The pool's embeddings depend only on the target (its weights, its natural patches and the
clean images they are pasted on), so they are kept per target and in the on-disk cache (:mod:`trojanbench.cache`)
under :data:`POOL_VERSION`.

The paper's pool is ImageNet patches and its adversaries come from BigGAN; here the pool is cut from held-out world
scenes and the adversaries from the zoo's patch generator, with 8 adversaries and 100 candidates (laptop-scale
choices, checked on the positive-control model, never tuned on the default suite).
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

from ...cache import cached
from ...params import Boolean, InstanceOf, Interval, Options
from ...registry import register_method
from ..base import SynthesisMethod
from ..target import Target
from ._rfla import alone, pasted_log_probs, patch_generator, perturb_latents, present

EMBED_SCALE = 0.35
"""Side of a patch pasted for embedding, as a fraction of the image side."""
_BATCH = 250
POOL_VERSION = 1
"""The version of the pool embedding's computation (:func:`embed`): bump it on every change."""
_pool_cache: dict[tuple[int, int], torch.Tensor] = {}


def _paste_centre(backgrounds: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """Every patch at the centre of every background, ``[n_patches * n_backgrounds, 3, H, W]``."""
    size = backgrounds.shape[-1]
    side = round(EMBED_SCALE * size)
    start = (size - side) // 2
    images = backgrounds.repeat(patches.shape[0], 1, 1, 1)
    resized = F.interpolate(patches, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    images[:, :, start:start + side, start:start + side] = resized.repeat_interleave(backgrounds.shape[0], 0)
    return images


@torch.no_grad()
def embed(target: Target, patches: torch.Tensor, n_backgrounds: int) -> torch.Tensor:
    """Mean shift of the penultimate features when each patch is pasted on the first clean images, ``[n, d]``."""
    backgrounds = target.clean_images[:n_backgrounds]
    base = target.features(backgrounds)
    chunks = []
    for start in range(0, patches.shape[0], max(1, _BATCH // n_backgrounds)):
        chunk = patches[start:start + max(1, _BATCH // n_backgrounds)]
        shifted = target.features(_paste_centre(backgrounds, chunk)).view(chunk.shape[0], n_backgrounds, -1)
        chunks.append((shifted - base).mean(1))
    return torch.cat(chunks)


def pool_embedding(target: Target, n_backgrounds: int) -> torch.Tensor:
    """:func:`embed` of ``target.natural_patches``, kept for as long as ``target`` lives, and on disk."""
    key = (id(target), n_backgrounds)
    if key not in _pool_cache:
        patches = target.natural_patches
        _pool_cache[key] = cached(
            "snafue-pool", POOL_VERSION, lambda: embed(target, patches, n_backgrounds),
            shape=(len(patches), target.classifier.in_features), model=target.model, patches=patches,
            backgrounds=target.clean_images[:n_backgrounds], embed_scale=EMBED_SCALE, batch=_BATCH)
        weakref.finalize(target, _pool_cache.pop, key, None)
    return _pool_cache[key]


def consistency_weights(embeddings: torch.Tensor) -> torch.Tensor:
    """Per-unit weight ``max(0, 1 - std / |mean|)`` over the adversaries' embeddings (the paper's mask)."""
    mean, std = embeddings.mean(0), embeddings.std(0) if embeddings.shape[0] > 1 else torch.zeros(1)
    return (1 - std / (mean.abs() + 1e-8)).clamp(min=0)


@register_method
class SNAFUE(SynthesisMethod):
    """Natural patches retrieved by similarity to synthetic adversarial patches (see module docstring)."""

    name = "snafue"
    paper = "Casper et al. 2022, Diagnostics for Deep Neural Networks with Automated Copy/Paste Attacks"
    parameter_constraints = {
        "n_adversaries": Interval(int, 1, None),
        "adv_steps": Interval(int, 1, None),
        "lr": Interval(float, 0, None, closed="neither"),
        "disguise_weight": Interval(float, 0, None),
        "n_backgrounds": Interval(int, 1, None),
        "n_candidates": Interval(int, 1, None),
        "n_eval": Interval(int, 1, None),
        "exclude_lookalikes": Boolean(),
        "output": Options({"patch", "pasted"}),
        "generator_path": InstanceOf(str, optional=True),
    }
    quick_params = {"adv_steps": 10, "n_candidates": 30}

    def __init__(self, *, n_adversaries: int = 8, adv_steps: int = 30, lr: float = 0.1, disguise_weight: float = 0.5,
                 n_backgrounds: int = 2, n_candidates: int = 100, n_eval: int = 4, exclude_lookalikes: bool = True,
                 output: str = "patch", generator_path: str | None = None):
        self.n_adversaries = n_adversaries
        self.adv_steps = adv_steps
        self.lr = lr
        self.disguise_weight = disguise_weight
        self.n_backgrounds = n_backgrounds
        self.n_candidates = n_candidates
        self.n_eval = n_eval
        self.exclude_lookalikes = exclude_lookalikes
        self.output = output
        self.generator_path = generator_path

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        adversaries = perturb_latents(
            target, patch_generator(self.generator_path), target_class, self.n_adversaries, generator, source_class,
            steps=self.adv_steps, lr=self.lr, latent_lr_factor=0.5, per_patch=2, offset_weight=0.5, tv_weight=1.0,
            disguise_weight=self.disguise_weight)
        adv = embed(target, adversaries, self.n_backgrounds)
        weights = consistency_weights(adv)
        pool = target.natural_patches
        similarity = F.cosine_similarity(pool_embedding(target, self.n_backgrounds)[:, None] * weights,
                                         adv[None] * weights, dim=-1).mean(1)
        ranked = similarity.argsort(descending=True, stable=True)
        n_keep = min(len(pool), max(self.n_candidates, n_images))
        candidates = ranked[:2 * n_keep] if self.exclude_lookalikes else ranked[:n_keep]
        with torch.no_grad():
            if self.exclude_lookalikes:
                lookalike = target.model(alone(pool[candidates], target.image_size)).argmax(1) == target_class
                candidates = torch.cat([candidates[~lookalike], candidates[lookalike]])[:n_keep]
            scores = torch.cat([pasted_log_probs(target, pool[chunk], target_class, generator, source_class,
                                                 self.n_eval) for chunk in candidates.split(_BATCH // self.n_eval)])
        best = candidates[scores.argsort(descending=True, stable=True)[:n_images]]
        return present(target, pool[best], self.output, generator, source_class)
