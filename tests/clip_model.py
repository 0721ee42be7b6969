"""A small open_clip model built from a config with random weights (nothing is downloaded), for the CLIP judge's
tests: its config file and its weights as a safetensors state dict."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

TINY_CLIP = {"embed_dim": 32,
             "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


def write_tiny_clip(folder: Path, seed: int = 0, config: dict | None = None) -> tuple[Path, Path]:
    """``(config JSON, weights)`` of a random-init CLIP of ``config`` (default :data:`TINY_CLIP`) under ``seed``."""
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "tiny-clip.json"
    config_path.write_text(json.dumps(config or TINY_CLIP))
    open_clip.add_model_config(config_path)
    torch.manual_seed(seed)
    network = open_clip.create_model("tiny-clip", pretrained=None, pretrained_text=False, load_weights=False)
    weights = folder / f"tiny-clip-{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, weights)
    return config_path, weights
