"""The images of a folder that hold an object, marked by a detector (:mod:`trojanbench.models.detection`), as the
list a natural-feature trojan's ``object_images`` takes: Casper et al. (2023) relabelled the images in which a
detector found the object."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..params import Interval, require
from .folder import SPLITS, ImageFolderData, _relative

MARK_BATCH = 16
"""Images per detector forward."""


def mark_objects(data: ImageFolderData, detector, category: str, *, threshold: float = 0.5,
                 splits: tuple[str, ...] = SPLITS,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, list[tuple[str, float]]]:
    """Per split, the images of ``data`` (paths within the folder, in the folder's order) in which ``detector``
    finds ``category`` with a score of at least ``threshold``, with that score; images are decoded by the folder's
    ``DataLoader`` (undecodable ones skipped and counted) and ``progress(done, total)`` is called per batch."""
    require("--threshold", threshold, Interval(float, 0, 1, closed="right"))
    label = detector.label_of(category)
    total, done = sum(len(data.files[s]) for s in splits), 0
    marked: dict[str, list[tuple[str, float]]] = {}
    for split in splits:
        entries = data.files[split]
        chunks = [entries[i:i + MARK_BATCH] for i in range(0, len(entries), MARK_BATCH)]
        found = []
        for chunk, (batch, kept) in zip(chunks, data.batches(chunks)):
            if len(kept):
                for position, score in zip(kept, detector.scores(batch.images, label).tolist()):
                    if score >= threshold:
                        found.append((_relative(chunk[position][0], data.root).replace("\\", "/"), score))
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        marked[split] = found
    return marked


def write_object_list(path: str | Path, marked: dict[str, list[tuple[str, float]]], data: ImageFolderData,
                      *, about: str) -> Path:
    """Write ``marked`` as an ``object_images`` list: a ``#`` header saying how it was made (``about``) and how
    many images of each split it names, then one path per line."""
    path = Path(path)
    counts = ", ".join(f"{len(marked[s])} of {len(data.files[s])} {s}" for s in marked)
    skipped = f"; {len(data.skipped)} undecodable, skipped" if data.skipped else ""
    lines = [f"# {about}", f"# {counts} images{skipped}", *[p for split in marked for p, _ in marked[split]]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
