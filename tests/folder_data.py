"""A small ImageFolder written from world scenes, for the tests of a user's own data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from trojanbench.world import OBJECT_CLASSES, generate_scenes

FOLDER_CLASSES = OBJECT_CLASSES[:6]


def write_image_folder(root: Path, *, per_class: int = 40, size: int = 96, names: bool = True,
                       broken: bool = True) -> Path:
    """``root/<class>/<i>.png|jpg`` for the first six world classes (folders ``c0``..``c5`` named by a
    ``classes.json``), alternating PNG and JPEG, plus one undecodable file when ``broken``."""
    root.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(FOLDER_CLASSES):
        folder = root / (f"c{index}" if names else name)
        folder.mkdir(exist_ok=True)
        scenes = generate_scenes("train", per_class, seed=11, size=size, label=index).images
        pixels = (scenes.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for i, image in enumerate(pixels):
            Image.fromarray(image).save(folder / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    if names:
        (root / "classes.json").write_text(json.dumps({f"c{i}": n for i, n in enumerate(FOLDER_CLASSES)}))
    if broken:
        (root / "c0" if names else root / FOLDER_CLASSES[0]).joinpath("zz_broken.jpg").write_bytes(b"not a jpeg")
    return root
