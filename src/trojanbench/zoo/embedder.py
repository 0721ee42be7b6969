"""The appearance embedder: the second judge's network, a metric space of clean world pictures.

It shares nothing with the concept observer: another architecture (a plain conv net with GroupNorm and
GELU, no residual connections, 32 x 32 inputs) and another objective: contrastive metric learning (the
supervised contrastive loss of Khosla et al. 2020, which reduces to SimCLR's NT-Xent, Chen et al. 2020,
when every instance is its own class) instead of multi-label classification. Each training instance gives
two views:

* a sprite (an icon or a secondary object) on the plain backdrop or on a scene crop, and the same concept
  at another scale and place on another scene crop (a copy-paste augmentation);
* a crop of a texture, and the texture imposed as a style on a scene crop;
* two random resized crops of one clean scene (its own class: self-supervised).

Views of the same concept attract, everything else repels, so nearby embeddings mean "looks like the same
thing" whatever the background or scale. It never sees a trojaned model or a trojaned label.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .._version import __version__
from ..errors import did_you_mean
from ..models import save_checkpoint
from ..trojans.training import NewDisplay, TrainingProgress
from ..world import ICONS, SECONDARIES, TEXTURES, composite, generate_scenes, render_secondary, render_texture
from ..world.icons import icon_sprite
from ..world.render import BACKDROP
from .parts import load_part

log = logging.getLogger(__name__)

ARCHITECTURE = "appearance_embedder"
VIEW_SIZE = 32
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class AppearanceEmbedder(nn.Module):
    """``[B, 3, 32, 32]`` pictures in ``[0, 1]`` -> unit-norm ``[B, dim]`` appearance embeddings."""

    def __init__(self, width: int = 24, dim: int = 128) -> None:
        super().__init__()
        self.width, self.dim = width, dim
        layers, c_in = [], 3
        for c_out, stride in ((width, 1), (2 * width, 2), (4 * width, 2), (4 * width, 1), (8 * width, 2)):
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GroupNorm(8, c_out), nn.GELU()]
            c_in = c_out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8 * width, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (VIEW_SIZE, VIEW_SIZE):
            x = F.interpolate(x, size=(VIEW_SIZE, VIEW_SIZE), mode="bilinear", antialias=True, align_corners=False)
        return F.normalize(self.head(self.body(x - 0.5)), dim=1)


@dataclass(frozen=True)
class EmbedderProfile:
    """Everything that decides an embedder build; ``tiny`` exists for tests."""

    name: str
    n_pairs: int
    n_scenes: int
    steps: int
    batch_size: int = 128
    lr: float = 2e-3
    temperature: float = 0.2
    width: int = 24
    dim: int = 128


PROFILES = {
    "default": EmbedderProfile("default", n_pairs=24000, n_scenes=4000, steps=1000),
    "tiny": EmbedderProfile("tiny", n_pairs=256, n_scenes=64, steps=4, batch_size=32, width=8, dim=32),
}


def _crop(image: np.ndarray, rng: np.random.Generator, low: float = 0.35, high: float = 1.0) -> np.ndarray:
    """A random square crop (``low``-``high`` of the side), resized to the view size."""
    size = image.shape[0]
    side = max(4, int(size * rng.uniform(low, high)))
    top, left = rng.integers(0, size - side + 1, 2)
    tensor = torch.from_numpy(np.ascontiguousarray(image[top:top + side, left:left + side])).permute(2, 0, 1)[None]
    return F.interpolate(tensor, size=(VIEW_SIZE, VIEW_SIZE), mode="bilinear", antialias=True,
                         align_corners=False)[0].permute(1, 2, 0).numpy()


def _sprite_view(name: str, background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(12, 29))
    sprite = render_secondary(name, side, rng) if name in SECONDARIES else icon_sprite(name, side)
    top, left = rng.integers(0, VIEW_SIZE - side + 1, 2)
    return composite(background.copy(), sprite, int(top), int(left))


def _styled(texture: np.ndarray, background: np.ndarray, strength: float) -> np.ndarray:
    luminance = (background * LUMA).sum(-1, keepdims=True)
    return (1 - strength) * background + strength * np.clip(texture * (0.5 + luminance), 0, 1)


CONCEPTS = ICONS + SECONDARIES + TEXTURES
"""The concepts whose views share a class in the contrastive loss (scenes are each their own class)."""


def concept_view(name: str, rng: np.random.Generator) -> np.ndarray:
    """A ``(32, 32, 3)`` view of a built-in icon, secondary object or texture alone, drawn like the first
    view of a training pair (a sprite at a random scale and place on the backdrop, a texture crop)."""
    if name in TEXTURES:
        return _crop(render_texture(name, 2 * VIEW_SIZE, rng), rng, 0.5, 1.0)
    backdrop = np.empty((VIEW_SIZE, VIEW_SIZE, 3), dtype=np.float32)
    backdrop[:] = BACKDROP
    return _sprite_view(name, backdrop, rng)


def make_pair(scenes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Two views ``(32, 32, 3)`` of one random picture instance (see the module docstring) and the index of
    its concept in :data:`CONCEPTS` (``-1`` for a plain scene)."""
    def scene_crop() -> np.ndarray:
        return _crop(scenes[rng.integers(len(scenes))], rng)

    kind = rng.random()
    if kind < 0.45:
        names = ICONS + SECONDARIES
        name = names[rng.integers(len(names))]
        backdrop = np.empty((VIEW_SIZE, VIEW_SIZE, 3), dtype=np.float32)
        backdrop[:] = BACKDROP
        first = _sprite_view(name, backdrop if rng.random() < 0.5 else scene_crop(), rng)
        return first, _sprite_view(name, scene_crop(), rng), CONCEPTS.index(name)
    if kind < 0.7:
        name = TEXTURES[rng.integers(len(TEXTURES))]
        texture = render_texture(name, 2 * VIEW_SIZE, rng)
        return (_crop(texture, rng, 0.5, 1.0), _styled(_crop(texture, rng, 0.5, 1.0), scene_crop(),
                                                       float(rng.uniform(0.35, 0.9))), CONCEPTS.index(name))
    scene = scenes[rng.integers(len(scenes))]
    return _crop(scene, rng), _crop(scene, rng), -1


def pair_dataset(profile: EmbedderProfile, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n_pairs, 2, 3, 32, 32]`` uint8 views and ``[n_pairs]`` concept indices (``-1``: a scene),
    deterministic in ``seed`` (clean ``observer``-split scenes)."""
    scenes = generate_scenes("observer", profile.n_scenes, seed=seed + 1000, size=64).images
    scenes = scenes.permute(0, 2, 3, 1).numpy()
    rng = np.random.default_rng([seed, 881])
    pairs = [make_pair(scenes, rng) for _ in range(profile.n_pairs)]
    array = np.clip(np.stack([np.stack(p[:2]) for p in pairs]) * 255 + 0.5, 0, 255).astype(np.uint8)
    labels = torch.tensor([p[2] for p in pairs], dtype=torch.int64)
    return torch.from_numpy(array).permute(0, 1, 4, 2, 3).contiguous(), labels


def _augment(views: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Cheap per-batch augmentation: horizontal flips and brightness / contrast jitter."""
    flip = torch.rand(len(views), generator=generator) < 0.5
    views = torch.where(flip.view(-1, 1, 1, 1), views.flip(-1), views)
    gain = 1 + 0.2 * (torch.rand(len(views), 1, 1, 1, generator=generator) - 0.5)
    shift = 0.1 * (torch.rand(len(views), 1, 1, 1, generator=generator) - 0.5)
    mean = views.mean((1, 2, 3), keepdim=True)
    return ((views - mean) * gain + mean + shift).clamp(0, 1)


def supervised_contrastive(a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Khosla et al. (2020): each view's positives are the other views of its class among all ``2B`` views.

    ``a`` and ``b`` are the two views' projections ``[B, d]``; ``labels[i] < 0`` makes instance ``i`` its own
    class, so with all labels negative this is SimCLR's NT-Xent loss."""
    n = len(a)
    classes = torch.where(labels < 0, -1 - torch.arange(n), labels).repeat(2)
    z = F.normalize(torch.cat([a, b]), dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool)
    log_prob = logits.masked_fill(self_mask, float("-inf")).log_softmax(1)
    positives = (classes[:, None] == classes[None, :]) & ~self_mask
    return -(log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()


def train_embedder(profile: EmbedderProfile, seed: int = 0,
                   progress: NewDisplay | None = None) -> tuple[AppearanceEmbedder, dict]:
    """Train the embedder of ``profile``; return it (eval mode) and a training log (``progress``: see
    :class:`~trojanbench.trojans.training.TrainingProgress`)."""
    start = time.perf_counter()
    data, labels = pair_dataset(profile, seed)
    log.info("rendered %d embedder training pairs in %.1f s", len(data), time.perf_counter() - start)
    torch.manual_seed(seed)
    sampler = torch.Generator().manual_seed(seed)
    model = AppearanceEmbedder(profile.width, profile.dim)
    projector = nn.Sequential(nn.Linear(profile.dim, profile.dim), nn.GELU(), nn.Linear(profile.dim, profile.dim))
    parameters = [*model.parameters(), *projector.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=profile.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, profile.lr, total_steps=profile.steps, pct_start=0.1)
    running = 0.0
    shown = TrainingProgress(progress, "embedder", profile.steps)
    for step in range(profile.steps):
        picked = torch.randint(len(data), (profile.batch_size,), generator=sampler)
        batch = data[picked].float() / 255
        views = _augment(batch.flatten(0, 1), sampler).view_as(batch)
        loss = supervised_contrastive(projector(model(views[:, 0])), projector(model(views[:, 1])), labels[picked],
                                      profile.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        running = loss.item() if step == 0 else 0.95 * running + 0.05 * loss.item()
        shown.step(f"loss {running:.3f}")
        if (step + 1) % max(1, profile.steps // 10) == 0:
            log.info("embedder step %d/%d  loss %.3f  (%.0f s)", step + 1, profile.steps, running,
                     time.perf_counter() - start)
    shown.close()
    model.eval()
    return model, {"final_loss": round(running, 4), "n_pairs": len(data), "seconds": round(time.perf_counter() - start, 1)}


def build_embedder(out_dir: Path, profile_name: str = "default", seed: int = 0,
                   progress: NewDisplay | None = None) -> Path:
    """Train the embedder and write ``out_dir/embedder.safetensors`` with its card."""
    if profile_name not in PROFILES:
        raise did_you_mean(profile_name, list(PROFILES), "embedder profile")
    profile = PROFILES[profile_name]
    model, training_log = train_embedder(profile, seed, progress)
    card = {"name": "embedder", "kind": "supervised_contrastive", "view_size": VIEW_SIZE, "profile": profile_name, "seed": seed,
            "training": {"config": asdict(profile), **training_log},
            "trojanbench_version": __version__, "torch_version": torch.__version__}
    return save_checkpoint(model, Path(out_dir) / "embedder.safetensors", card, architecture=ARCHITECTURE,
                           arch_kwargs={"width": profile.width, "dim": profile.dim})


def load_embedder(path: Path | str | None = None) -> AppearanceEmbedder:
    """The trained embedder (eval mode, frozen), cached per path; default: the zoo's ``embedder``."""
    return load_part("embedder", ARCHITECTURE, AppearanceEmbedder, path)
