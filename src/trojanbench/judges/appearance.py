"""The appearance judge: does any part of an image look like an option more than like nothing?

It uses the zoo's appearance embedder (see :mod:`trojanbench.zoo.embedder`), which shares no weights,
architecture or objective with the concept observer. Each image is cut into windows at two scales
(the whole image and 3 x 3 half-side windows; smaller windows made look-alike textures such as elephant
skin and pebbles indistinguishable in the judge-validity check). Each option is a bank of
embedded windows: those of :data:`BANK_VIEWS` held-out pictures of the option shown the way a trigger of
its kind appears (pasted on, imposed on or present in scenes), plus the option alone (a built-in concept
drawn as the embedder saw it in training, or the user's trigger image). "Nothing" is a fixed bank of
windows of content-free pictures: plain scenes without icons or secondary objects, uniform noise and flat
colours. A window's similarity to a bank is the mean cosine similarity of its :data:`NEIGHBOURS` nearest
members (a k-nearest-neighbour vote); its evidence for an option is that similarity minus its similarity
to "nothing", and the image's logit for the option is its best window's evidence over a temperature.

The banks depend only on the embedder's weights and the pictures embedded, so they are kept in the on-disk
cache (:mod:`trojanbench.cache`) under :data:`BANK_VERSION`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from ..cache import cached, digest
from ..world import stable_int_hash
from ..zoo.embedder import CONCEPTS, concept_view, load_embedder
from ..registry import register_judge
from .base import OPTION_VIEWS, Judge, option_views
from .questions import Question, option_picture

TEMPERATURE = 0.005
BANK_VIEWS = 48
NEIGHBOURS = 3
N_NULL_SCENES, N_NULL_NOISE, N_NULL_FLAT = 48, 16, 16
WINDOW_GRIDS = ((1, 1.0), (3, 0.5))
"""(windows per side, window side as a fraction of the image side)."""
N_WINDOWS = sum(per_side ** 2 for per_side, _ in WINDOW_GRIDS)
BANK_VERSION = 1
"""The version of the banks' computation (:func:`windows`, how a bank is made): bump it on every change."""


def windows(images: torch.Tensor) -> torch.Tensor:
    """``[n, n_windows, 3, h, w]`` square windows of ``images`` at every scale of :data:`WINDOW_GRIDS`."""
    size = images.shape[-1]
    out = []
    for per_side, fraction in WINDOW_GRIDS:
        side = round(size * fraction)
        starts = np.linspace(0, size - side, per_side).round().astype(int)
        crops = [images[:, :, t:t + side, l:l + side] for t in starts for l in starts]
        out += [torch.nn.functional.interpolate(c, size=(32, 32), mode="bilinear", antialias=True,
                                                align_corners=False) for c in crops]
    return torch.stack(out, 1)


@register_judge
class AppearanceJudge(Judge):
    name = "appearance"
    description = "best window-to-option similarity, beyond 'nothing', in a contrastive embedding"

    @functools.cached_property
    def embedder(self):
        return load_embedder()

    def provenance(self) -> dict:
        from ..models import ZOO_DIR, file_sha256

        return {"network": "embedder", "sha256": file_sha256(ZOO_DIR / "embedder.safetensors")}

    @functools.cached_property
    def nothing(self) -> torch.Tensor:
        """Embeddings ``[n, d]`` of the windows of content-free pictures (see the module docstring)."""
        from ..world import generate_scenes

        generator = torch.Generator().manual_seed(0)
        pictures = torch.cat([generate_scenes("val", N_NULL_SCENES, seed=7919, secondary=None, icon=None).images,
                              torch.rand(N_NULL_NOISE, 3, 64, 64, generator=generator),
                              torch.rand(N_NULL_FLAT, 3, 1, 1, generator=generator).expand(-1, -1, 64, 64)])
        return self._embedded("appearance-nothing", lambda: self.embedder(windows(pictures).flatten(0, 1)),
                              len(pictures) * N_WINDOWS, pictures=pictures)

    @functools.lru_cache(maxsize=256)
    def _bank(self, kind: str, option: str) -> torch.Tensor:
        """``[n, d]`` embeddings that stand for ``option``: the windows of :data:`BANK_VIEWS` pictures of it in
        context, and the normalised mean embedding of :data:`OPTION_VIEWS` pictures of it alone."""
        in_context = option_views(kind, option, BANK_VIEWS)
        rng = np.random.default_rng(stable_int_hash(option))
        draw = concept_view if option in CONCEPTS else lambda name, rng: option_picture(name, kind, 32, rng)
        alone = torch.from_numpy(np.stack([draw(option, rng) for _ in range(OPTION_VIEWS)])).permute(0, 3, 1, 2)

        def compute() -> torch.Tensor:
            prototype = torch.nn.functional.normalize(self.embedder(alone).mean(0), dim=0)
            return torch.cat([self.embedder(windows(in_context).flatten(0, 1)), prototype[None]])

        return self._embedded("appearance-bank", compute, BANK_VIEWS * N_WINDOWS + 1,
                              in_context=in_context, alone=alone)

    @functools.cached_property
    def _weights(self) -> str:
        """The digest of the embedder's weights (what every bank depends on)."""
        return digest(self.embedder)

    @torch.no_grad()
    def _embedded(self, name: str, compute: Callable[[], torch.Tensor], n: int,
                  **pictures: torch.Tensor) -> torch.Tensor:
        """``compute()``: the ``[n, d]`` embeddings of ``pictures``, through the cache."""
        return cached(name, BANK_VERSION, compute, shape=(n, self.embedder.dim), embedder=self._weights, **pictures)

    def option_scores(self, images: torch.Tensor, question: Question) -> torch.Tensor:
        cut = windows(images)
        embedded = self.embedder(cut.flatten(0, 1)).view(*cut.shape[:2], -1)
        nothing = _knn_similarity(embedded, self.nothing)
        evidence = torch.stack([_knn_similarity(embedded, self._bank(question.kind, option))
                                for option in question.options], -1)
        return (evidence - nothing[..., None]).amax(1) / TEMPERATURE


def _knn_similarity(embedded: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity of each embedding ``[..., d]`` to its :data:`NEIGHBOURS` nearest in ``bank``."""
    return (embedded @ bank.T).topk(NEIGHBOURS, dim=-1).values.mean(-1)
