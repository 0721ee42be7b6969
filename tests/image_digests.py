"""A test helper: fingerprints of images, to check that two image sets never share an image."""

from __future__ import annotations

import hashlib

import torch


def image_digests(images: torch.Tensor) -> set[str]:
    """sha256 of each image's bytes."""
    return {hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in images}
