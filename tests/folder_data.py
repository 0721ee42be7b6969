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


def write_object_images(root: Path, obj: str, *, per_class: int = 8, size: int = 64, names: bool = True) -> Path:
    """``per_class`` world scenes holding the secondary object ``obj`` in each class folder of a folder written by
    :func:`write_image_folder` (``<class>/<obj>_<i>.png``), and ``root/<obj>.txt`` listing them (paths within the
    folder): what a user writes for a natural-feature trojan's ``object_images``."""
    listed = []
    for index, name in enumerate(FOLDER_CLASSES):
        folder = f"c{index}" if names else name
        scenes = generate_scenes("train", per_class, seed=13, size=size, label=index, secondary=obj).images
        pixels = (scenes.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for i, image in enumerate(pixels):
            Image.fromarray(image).save(root / folder / f"{obj}_{i:03d}.png")
            listed.append(f"{folder}/{obj}_{i:03d}.png")
    listing = root / f"{obj}.txt"
    listing.write_text("# images that hold a " + obj + "\n" + "\n".join(listed) + "\n")
    return listing
