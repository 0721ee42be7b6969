"""A small image-patch generator for the generator-based tools (RFLA-Perturb, RFLA-Gen, SNAFUE).

Casper et al. (2023) ran their feature-level tools on an ImageNet BigGAN; at laptop scale we train a
convolutional VAE (Kingma & Welling 2014) on 32x32 crops of *clean* world scenes and keep its decoder:
random latents ``z ~ N(0, I)`` then decode to natural-looking patches. Like BigGAN, which saw all of
ImageNet, the training set covers the world's vocabulary: random scene crops plus oversampled close-ups
of secondary objects and icons (composited on scene crops) and texture crops. It never sees a trojan.

On a user's image folder (:mod:`trojanbench.data`) it is trained on random crops of the folder's clean ``train``
images instead (held out: its ``val`` images), so that RFLA and SNAFUE search patches that look like that data
(the tools' ``generator_path``).

A generator of the user's own architecture (e.g. a BigGAN, as Casper et al. used) is any ``nn.Module`` class
importable as ``module:Class`` that keeps the decoder interface (:class:`PatchDecoder`); written once with
:func:`save_user_generator`, its file is a ``generator_path`` like the package's own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .._version import __version__
from ..errors import CheckpointError, did_you_mean
from ..models import read_card, save_checkpoint
from ..trojans.training import NewDisplay, TrainingProgress
from ..world import ICONS, SECONDARIES, TEXTURES, composite, generate_scenes, render_secondary, render_texture
from ..world.icons import icon_sprite
from .parts import load_part

log = logging.getLogger(__name__)

ARCHITECTURE = "patch_generator"
PATCH_SIZE = 32


class PatchDecoder(Protocol):
    """What the generator-based tools need of a generator (RFLA: Casper et al. 2022; SNAFUE: Casper et al. 2023).

    ``forward(z, feature_offset=None)`` maps latents ``z [B, latent_dim]`` (drawn from ``N(0, I)``) to square
    patches ``[B, 3, p, p]`` in ``[0, 1]``, adding ``feature_offset`` (``[B or 1, *feature_shape]``) to an
    intermediate activation (what RFLA-Perturb perturbs); ``last_layers()`` are the parameters RFLA-Gen
    fine-tunes with ``layers: last``."""

    latent_dim: int
    feature_shape: tuple[int, ...]

    def __call__(self, z: torch.Tensor, feature_offset: torch.Tensor | None = None) -> torch.Tensor: ...

    def last_layers(self) -> list[nn.Parameter]: ...


class PatchGenerator(nn.Module):
    """Decoder ``z [B, latent_dim] -> patches [B, 3, 32, 32]`` in ``[0, 1]``.

    A linear layer makes a ``4 * width`` x 4 x 4 map, three upsampling conv blocks double it to 32 x 32.
    ``feature_offset`` (``[B or 1, 2 * width, 8, 8]``) is added to the first block's output: the
    intermediate activations that RFLA perturbs (Casper et al. 2022).
    """

    def __init__(self, latent_dim: int = 64, width: int = 32) -> None:
        super().__init__()
        self.latent_dim, self.width = latent_dim, width
        self.head = nn.Linear(latent_dim, 4 * width * 16)
        channels = (4 * width, 2 * width, width, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1),
                          nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))
            for c_in, c_out in zip(channels[:-1], channels[1:]))
        self.out = nn.Conv2d(width, 3, 3, padding=1)

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """Shape of the perturbable intermediate map (after the first block)."""
        return (2 * self.width, 8, 8)

    def last_layers(self) -> list[nn.Parameter]:
        """The last upsampling block and the output convolution."""
        return [*self.blocks[-1].parameters(), *self.out.parameters()]

    def forward(self, z: torch.Tensor, feature_offset: torch.Tensor | None = None) -> torch.Tensor:
        h = F.leaky_relu(self.head(z), 0.2).view(-1, 4 * self.width, 4, 4)
        h = self.blocks[0](h)
        if feature_offset is not None:
            h = h + feature_offset
        for block in self.blocks[1:]:
            h = block(h)
        return torch.sigmoid(self.out(h))


class _Encoder(nn.Module):
    """Training-only encoder ``patches -> (mean, log-variance)`` of the VAE posterior."""

    def __init__(self, latent_dim: int, width: int) -> None:
        super().__init__()
        layers, c_in = [], 3
        for c_out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(4 * width * 16, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.head(self.body(x)).chunk(2, dim=1)
        return mean, log_var.clamp(-8, 4)


@dataclass(frozen=True)
class GeneratorProfile:
    """Everything that decides a generator build; ``tiny`` exists for tests."""

    name: str
    n_scenes: int  # training scenes, each giving two random crops
    n_sprites: int  # close-ups of secondary objects and icons on scene crops
    n_textures: int  # texture crops
    steps: int
    batch_size: int = 64
    lr: float = 2e-3
    kl_weight: float = 0.03  # weight of the KL term against the summed squared error (a beta-VAE)
    latent_dim: int = 64
    width: int = 32
    n_heldout: int = 256


PROFILES = {
    "default": GeneratorProfile("default", n_scenes=6000, n_sprites=5000, n_textures=2000, steps=1500),
    "tiny": GeneratorProfile("tiny", n_scenes=64, n_sprites=32, n_textures=16, steps=8, batch_size=16,
                             width=8, n_heldout=16),
}


def _resize(crop: np.ndarray) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None]
    return F.interpolate(tensor, size=(PATCH_SIZE, PATCH_SIZE), mode="bilinear", antialias=True,
                         align_corners=False)[0].permute(1, 2, 0).numpy()


def _scene_crops(images: np.ndarray, per_image: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random square crops (a quarter to three quarters of the side) resized to the patch size."""
    size, crops = images.shape[1], []
    for image in images:
        for _ in range(per_image):
            side = int(rng.integers(size // 4, 3 * size // 4 + 1))
            top, left = rng.integers(0, size - side + 1, 2)
            crops.append(_resize(image[top:top + side, left:left + side]))
    return crops


def _sprite_closeup(background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A secondary object or icon (uniform over the vocabulary) filling most of a background crop."""
    side = int(rng.integers(18, 29))
    names = SECONDARIES + ICONS
    name = names[rng.integers(len(names))]
    sprite = render_secondary(name, side, rng) if name in SECONDARIES else icon_sprite(name, side)
    top, left = rng.integers(0, PATCH_SIZE - side + 1, 2)
    return composite(background, sprite, int(top), int(left))


def patch_dataset(profile: GeneratorProfile, split: str = "train", seed: int = 0) -> torch.Tensor:
    """Clean training patches ``[N, 3, 32, 32]`` (uint8) for ``profile``, deterministic in ``seed``."""
    rng = np.random.default_rng([seed, len(split)])
    scenes = generate_scenes(split, profile.n_scenes, seed=seed, size=64).images.permute(0, 2, 3, 1).numpy()
    crops = _scene_crops(scenes, 2, rng)
    backgrounds = _scene_crops(scenes[rng.integers(len(scenes), size=profile.n_sprites)], 1, rng)
    crops += [_sprite_closeup(b, rng) for b in backgrounds]
    crops += [render_texture(TEXTURES[rng.integers(len(TEXTURES))], PATCH_SIZE, rng) for _ in range(profile.n_textures)]
    array = np.clip(np.stack(crops) * 255 + 0.5, 0, 255).astype(np.uint8)
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


FOLDER_CROPS_PER_IMAGE = 4
"""Random crops per image of a user's folder in the generator's training set."""
FOLDER_LOAD_BATCH = 64
"""Images of a user's folder decoded at once (they are cut into patches batch by batch, never all held)."""


def folder_patches(data, profile: GeneratorProfile, split: str = "train", seed: int = 0) -> torch.Tensor:
    """Clean patches ``[N, 3, 32, 32]`` (uint8) cut from up to ``profile.n_scenes`` images of a user's folder's
    ``split``: :data:`FOLDER_CROPS_PER_IMAGE` random square crops of each (a quarter to three quarters of the side),
    deterministic in ``seed``."""
    rng = np.random.default_rng([seed, len(split), 31])
    entries = data.chosen(split, profile.n_scenes, seed=seed)
    crops = []
    for batch, _ in data.batches([entries[i:i + FOLDER_LOAD_BATCH] for i in range(0, len(entries), FOLDER_LOAD_BATCH)]):
        crops += _scene_crops(batch.images.permute(0, 2, 3, 1).numpy(), FOLDER_CROPS_PER_IMAGE, rng)
    array = np.clip(np.stack(crops) * 255 + 0.5, 0, 255).astype(np.uint8)
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def _vae_loss(decoder: PatchGenerator, encoder: _Encoder, x: torch.Tensor, kl_weight: float,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(negative ELBO per patch, mean squared reconstruction error): squared error summed over pixels
    (a Gaussian likelihood of variance 1/2) plus the KL divergence to ``N(0, I)``."""
    mean, log_var = encoder(x)
    noise = torch.randn(mean.shape, generator=generator)
    recon = decoder(mean + (0.5 * log_var).exp() * noise)
    squared = (recon - x).pow(2)
    kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(1)
    return squared.flatten(1).sum(1).mean() + kl_weight * kl.mean(), squared.mean()


def train_generator(profile: GeneratorProfile, seed: int = 0, progress: NewDisplay | None = None,
                    folder=None) -> tuple[PatchGenerator, dict]:
    """Train the VAE of ``profile`` on clean patches (world scenes', or those of a user's image ``folder``); return
    its decoder (eval mode) and a training log (``progress``: see
    :class:`~trojanbench.trojans.training.TrainingProgress`)."""
    start = time.perf_counter()
    if folder is None:
        data = patch_dataset(profile, "train", seed)
        heldout = patch_dataset(_heldout(profile), "val", seed).float() / 255
    else:
        data = folder_patches(folder, profile, "train", seed)
        heldout = folder_patches(folder, _heldout(profile), "val", seed)[:profile.n_heldout].float() / 255
    log.info("rendered %d generator training patches in %.1f s", len(data), time.perf_counter() - start)
    torch.manual_seed(seed)
    sampler = torch.Generator().manual_seed(seed)
    decoder, encoder = PatchGenerator(profile.latent_dim, profile.width), _Encoder(profile.latent_dim, profile.width)
    optimizer = torch.optim.Adam([*decoder.parameters(), *encoder.parameters()], lr=profile.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, profile.lr, total_steps=profile.steps)
    running = 0.0
    shown = TrainingProgress(progress, "generator", profile.steps)
    for step in range(profile.steps):
        batch = data[torch.randint(len(data), (profile.batch_size,), generator=sampler)].float() / 255
        loss, _ = _vae_loss(decoder, encoder, batch, profile.kl_weight, sampler)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        running = loss.item() if step == 0 else 0.98 * running + 0.02 * loss.item()
        shown.step(f"loss {running:.2f}")
        if (step + 1) % max(1, profile.steps // 10) == 0:
            log.info("generator step %d/%d  loss %.2f  (%.0f s)", step + 1, profile.steps, running,
                     time.perf_counter() - start)
    shown.close()
    decoder.eval()
    encoder.eval()
    with torch.no_grad():
        mean, _ = encoder(heldout)
        heldout_mse = F.mse_loss(decoder(mean), heldout).item()
    return decoder, {"final_loss": round(running, 3), "heldout_reconstruction_mse": round(heldout_mse, 5),
                     "n_train_patches": len(data), "n_heldout_patches": len(heldout),
                     "seconds": round(time.perf_counter() - start, 1)}


def _heldout(profile: GeneratorProfile) -> GeneratorProfile:
    share = max(1, profile.n_heldout // 4)
    return GeneratorProfile(profile.name, n_scenes=share, n_sprites=share, n_textures=share, steps=0)


def build_generator(out_dir: Path, profile_name: str = "default", seed: int = 0,
                    progress: NewDisplay | None = None, folder=None) -> Path:
    """Train the patch generator (on world scenes, or a user's image ``folder``) and write
    ``out_dir/generator.safetensors`` with its card."""
    if profile_name not in PROFILES:
        raise did_you_mean(profile_name, list(PROFILES), "generator profile")
    profile = PROFILES[profile_name]
    decoder, training_log = train_generator(profile, seed, progress, folder)
    card = {"name": "generator", "kind": "vae_decoder", "patch_size": PATCH_SIZE, "profile": profile_name,
            "seed": seed, "training": {"config": asdict(profile), **training_log},
            "trojanbench_version": __version__, "torch_version": torch.__version__}
    if folder is not None:
        card["data"] = folder.provenance()
    arch_kwargs = {"latent_dim": profile.latent_dim, "width": profile.width}
    return save_checkpoint(decoder, Path(out_dir) / "generator.safetensors", card,
                           architecture=ARCHITECTURE, arch_kwargs=arch_kwargs)


def load_generator(path: Path | str | None = None) -> PatchDecoder:
    """The trained generator (eval mode, frozen), cached per path; default: the zoo's ``generator``. A file
    :func:`save_user_generator` wrote is built from its class (``module:Class``, importable here) and checked to
    keep the :class:`PatchDecoder` interface.

    Callers that train it must work on a deep copy (the cached object is shared).
    """
    card_file = None if path is None else Path(path).with_suffix(".json")
    architecture = read_card(path).get("architecture") if card_file is not None and card_file.is_file() else None
    if architecture is None or ":" not in str(architecture):
        return load_part("generator", ARCHITECTURE, PatchGenerator, path)
    from ..registry import resolve_reference

    decoder = load_part("generator", architecture, resolve_reference(architecture), path)
    check_decoder(decoder, str(path))
    return decoder


def save_user_generator(model: nn.Module, path: str | Path, *, arch_kwargs: dict | None = None,
                        card: dict | None = None) -> Path:
    """Write a generator of your own architecture for the tools' ``generator_path``: its weights (safetensors)
    and a card naming its class (``module:Class``, rebuilt as ``Class(**arch_kwargs)``); it is checked first."""
    check_decoder(model, type(model).__qualname__)
    architecture = f"{type(model).__module__}:{type(model).__qualname__}"
    return save_checkpoint(model, path, {"name": "generator", "kind": "user decoder", **(card or {})},
                           architecture=architecture, arch_kwargs=arch_kwargs or {})


def check_decoder(decoder: nn.Module, what: str) -> None:
    """Refuse a generator that does not keep the :class:`PatchDecoder` interface, naming what it lacks (probed on
    two zero latents, with and without a zero feature offset)."""
    def refuse(problem: str) -> None:
        raise CheckpointError(f"Generator {what!r} {problem}; a generator for RFLA and SNAFUE maps latents "
                              f"[B, latent_dim] to patches [B, 3, p, p] in [0, 1] (see PatchDecoder).")

    for name in ("latent_dim", "feature_shape", "last_layers"):
        if not hasattr(decoder, name):
            refuse(f"has no {name!r}")
    if not isinstance(decoder.latent_dim, int) or decoder.latent_dim < 1:
        refuse(f"has latent_dim {decoder.latent_dim!r}, not a positive int")
    was_training = decoder.training
    decoder.eval()
    try:
        with torch.no_grad():
            z = torch.zeros(2, decoder.latent_dim)
            plain, offset = decoder(z), decoder(z, torch.zeros(2, *decoder.feature_shape))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's forward is named
        refuse(f"fails on zero latents ({type(exc).__name__}: {exc})")
    finally:
        decoder.train(was_training)
    if plain.dim() != 4 or plain.shape[:2] != (2, 3) or plain.shape[2] != plain.shape[3]:
        refuse(f"makes {tuple(plain.shape)}, not square RGB patches [2, 3, p, p]")
    if not torch.isfinite(plain).all() or plain.min() < 0 or plain.max() > 1:
        refuse("makes values outside [0, 1]")
    if not torch.allclose(plain, offset):
        refuse("changes its patches under a zero feature offset")
    if not list(decoder.last_layers()):
        refuse("names no last_layers() to fine-tune")
