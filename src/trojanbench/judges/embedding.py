"""Judges that compare pictures in an embedding: does any part of an image look like an option more than like nothing?

Each image is cut into windows at two scales (the whole image and 3 x 3 half-side windows; smaller windows made
look-alike textures such as elephant skin and pebbles indistinguishable in the judge-validity check). Each option
is a bank of embedded windows: those of held-out pictures of the option shown the way a trigger of its kind
appears (pasted on, imposed on or present in scenes), plus the option alone (a built-in concept or the user's
trigger image). "Nothing" is a fixed bank of windows of content-free pictures: plain scenes without icons or
secondary objects, uniform noise and flat colours. A window's similarity to a bank is the mean cosine similarity
of its :data:`NEIGHBOURS` nearest members (a k-nearest-neighbour vote); its evidence for an option is that
similarity minus its similarity to "nothing", and the image's logit for the option is its best window's evidence
over a temperature.

A subclass supplies the embedding (:meth:`EmbeddingJudge.embed`) and what identifies its weights. The banks depend
only on those weights and the pictures embedded, so they are kept in the on-disk cache (:mod:`trojanbench.cache`)
under :data:`BANK_VERSION`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch

from ..cache import cached
from ..world import stable_int_hash
from .base import OPTION_VIEWS, Judge, option_views
from .questions import Question, option_picture

NEIGHBOURS = 3
N_NULL_SCENES, N_NULL_NOISE, N_NULL_FLAT = 48, 16, 16
WINDOW_GRIDS = ((1, 1.0), (3, 0.5))
"""(windows per side, window side as a fraction of the image side)."""
N_WINDOWS = sum(per_side ** 2 for per_side, _ in WINDOW_GRIDS)
BANK_VERSION = 1
"""The version of the banks' computation (:func:`windows`, how a bank is made): bump it on every change."""


def windows(images: torch.Tensor, side: int = 32) -> torch.Tensor:
    """``[n, n_windows, 3, side, side]`` square windows of ``images`` at every scale of :data:`WINDOW_GRIDS`,
    each resized to ``side``."""
    size = images.shape[-1]
    out = []
    for per_side, fraction in WINDOW_GRIDS:
        crop = round(size * fraction)
        starts = np.linspace(0, size - crop, per_side).round().astype(int)
        crops = [images[:, :, t:t + crop, l:l + crop] for t in starts for l in starts]
        out += [torch.nn.functional.interpolate(c, size=(side, side), mode="bilinear", antialias=True,
                                                align_corners=False) for c in crops]
    return torch.stack(out, 1)


class EmbeddingJudge(Judge):
    """Base of the judges of this module: subclasses set :attr:`bank_name`, :attr:`temperature`,
    :attr:`bank_views` and :attr:`window_side`, and implement :meth:`embed` and :meth:`weights_identity`."""

    bank_name: ClassVar[str] = ""
    """The name its banks are cached under."""
    temperature: ClassVar[float] = 0.005
    bank_views: ClassVar[int] = 48
    """Pictures of each option in context in its bank."""
    window_side: int = 32
    """The side windows are resized to before they are embedded."""
    embed_batch: ClassVar[int | None] = 64
    """Pictures embedded per forward pass, bounding the memory a large network needs for a bank (None: all)."""

    def embed(self, pictures: torch.Tensor) -> torch.Tensor:
        """Unit-norm ``[n, d]`` embeddings of ``[n, 3, window_side, window_side]`` pictures in ``[0, 1]``."""
        raise NotImplementedError

    def weights_identity(self) -> str:
        """What identifies the embedding's weights (the banks' cache depends on it)."""
        raise NotImplementedError

    def pictures_alone(self, kind: str, option: str) -> torch.Tensor:
        """``[OPTION_VIEWS, 3, h, w]`` pictures of ``option`` alone."""
        rng = np.random.default_rng(stable_int_hash(option))
        pictures = [option_picture(option, kind, self.window_side, rng) for _ in range(OPTION_VIEWS)]
        return torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2)

    @torch.no_grad()
    def embed_batched(self, pictures: torch.Tensor) -> torch.Tensor:
        """:meth:`embed` over ``pictures`` in batches of :attr:`embed_batch`."""
        step = self.embed_batch or len(pictures)
        return torch.cat([self.embed(pictures[i:i + step]) for i in range(0, len(pictures), step)])

    @functools.cached_property
    def nothing(self) -> torch.Tensor:
        """Embeddings ``[n, d]`` of the windows of content-free pictures (see the module docstring)."""
        from ..world import generate_scenes

        generator = torch.Generator().manual_seed(0)
        pictures = torch.cat([generate_scenes("val", N_NULL_SCENES, seed=7919, secondary=None, icon=None).images,
                              torch.rand(N_NULL_NOISE, 3, 64, 64, generator=generator),
                              torch.rand(N_NULL_FLAT, 3, 1, 1, generator=generator).expand(-1, -1, 64, 64)])
        return self._embedded("nothing",
                              lambda: self.embed_batched(windows(pictures, self.window_side).flatten(0, 1)),
                              len(pictures) * N_WINDOWS, pictures=pictures)

    @functools.lru_cache(maxsize=256)
    def bank(self, kind: str, option: str) -> torch.Tensor:
        """``[n, d]`` embeddings that stand for ``option``: the windows of :attr:`bank_views` pictures of it in
        context, and the normalised mean embedding of :data:`OPTION_VIEWS` pictures of it alone."""
        in_context = option_views(kind, option, self.bank_views)
        alone = self.pictures_alone(kind, option)

        def compute() -> torch.Tensor:
            prototype = torch.nn.functional.normalize(self.embed_batched(alone).mean(0), dim=0)
            return torch.cat([self.embed_batched(windows(in_context, self.window_side).flatten(0, 1)),
                              prototype[None]])

        return self._embedded("bank", compute, self.bank_views * N_WINDOWS + 1, in_context=in_context, alone=alone)

    @functools.cached_property
    def dim(self) -> int:
        """The embedding's dimension."""
        return self.embed_batched(torch.zeros(1, 3, self.window_side, self.window_side)).shape[1]

    @functools.cached_property
    def _weights(self) -> str:
        return self.weights_identity()

    def _embedded(self, name: str, compute: Callable[[], torch.Tensor], n: int,
                  **pictures: torch.Tensor) -> torch.Tensor:
        """``compute()``: the ``[n, d]`` embeddings of ``pictures``, through the cache."""
        return cached(f"{self.bank_name}-{name}", BANK_VERSION, compute, shape=(n, self.dim), embedder=self._weights,
                      **pictures)

    def window_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """``[n_images, n_windows, d]``: the embedding of every window of ``images``."""
        cut = windows(images, self.window_side)
        return self.embed(cut.flatten(0, 1)).view(*cut.shape[:2], -1)

    def picture_evidence(self, embedded: torch.Tensor, question: Question) -> torch.Tensor:
        """``[n_images, n_windows, n_options]``: each window's similarity to each option's bank beyond its
        similarity to "nothing"."""
        nothing = knn_similarity(embedded, self.nothing)
        return torch.stack([knn_similarity(embedded, self.bank(question.kind, option))
                            for option in question.options], -1) - nothing[..., None]

    def option_scores(self, images: torch.Tensor, question: Question) -> torch.Tensor:
        return self.picture_evidence(self.window_embeddings(images), question).amax(1) / self.temperature


def knn_similarity(embedded: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity of each embedding ``[..., d]`` to its :data:`NEIGHBOURS` nearest in ``bank``."""
    return (embedded @ bank.T).topk(NEIGHBOURS, dim=-1).values.mean(-1)
