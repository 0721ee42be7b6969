"""Where the near-duplicate threshold of :mod:`trojanbench.judges.lookalikes` sits: the closest pairs of built-in
icons (which must stay above it: they are distractors a person can tell apart), copies of built-in icons saved as a
user's trigger image would be (another size, margin or a slight tint), which must fall below it, and the held-out
icons' closest built-in icon. A measurement, not a test.

    python benchmarks/lookalikes.py
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from trojanbench.judges.lookalikes import NEAR_DUPLICATE
from trojanbench.judges.questions import CONCEPT_KIND_OF, option_distance
from trojanbench.world import concepts_of_kind
from trojanbench.world.icons import icon_sprite

HELDOUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "heldout_triggers"
ICON_COPIES = {"same": (96, 0, 0.0), "small": (40, 0, 0.0), "margin": (96, 24, 0.0), "tint 0.08": (96, 0, 0.08),
               "tint 0.15, margin": (96, 30, 0.15)}
"""A copy of a built-in icon as a user would save it: (side in pixels, margin in pixels, tint added to RGB)."""


def _save(pixels: np.ndarray, path: Path) -> str:
    Image.fromarray((pixels * 255).round().astype(np.uint8)).save(path)
    return str(path)


def icon_copy(name: str, side: int, margin: int, tint: float, folder: Path) -> str:
    sprite = np.asarray(icon_sprite(name, side), dtype=np.float32)
    rgba = np.concatenate([np.clip(sprite[..., :3] + tint, 0, 1), sprite[..., 3:]], -1)
    return _save(np.pad(rgba, ((margin, margin // 2), (margin // 2, margin), (0, 0))),
                 folder / f"{name}_{side}_{margin}_{tint}.png")


def closest(option: str, k: int = 2) -> str:
    distances = sorted((option_distance(option, c, "patch"), c) for c in concepts_of_kind(CONCEPT_KIND_OF["patch"]))
    return ", ".join(f"{c} {d:.3f}" for d, c in distances[:k])


def main() -> None:
    icons = concepts_of_kind(CONCEPT_KIND_OF["patch"])
    pairs = sorted((option_distance(a, b, "patch"), a, b) for a, b in itertools.combinations(icons, 2))
    print(f"icons (threshold {NEAR_DUPLICATE}): closest built-in pairs "
          + ", ".join(f"{a}~{b} {d:.3f}" for d, a, b in pairs[:4]))
    with tempfile.TemporaryDirectory() as folder:
        for name in ("smiley", "clownfish", "green_star"):
            for label, (side, margin, tint) in ICON_COPIES.items():
                copy = icon_copy(name, side, margin, tint, Path(folder))
                print(f"copy of {name} ({label}): closest {closest(copy)}")
    for path in sorted(HELDOUT.glob("icon_*.png")):
        print(f"held-out {path.stem}: closest {closest(str(path))}")


if __name__ == "__main__":
    main()
