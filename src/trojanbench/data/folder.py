"""A user's labelled images in torchvision's ``ImageFolder`` layout, as the splits the built-in world offers.

Two layouts are accepted::

    DIR/<class>/<image>                      one pool, split by a rule on each file's path
    DIR/train/<class>/<image>, DIR/val/...   the user's split (ImageNet's layout); val is halved by the rule

The rule hashes each file's path within the folder (``<class>/<image>``; :func:`split_of`), so a file's split
never depends on which other files exist: ``train`` (poisoning and fine-tuning), ``val`` (the clean images an auditor
hands the tools) and ``test`` (held out for measuring attack success and accuracy). Class names are the folder
names, or the display names of an optional ``classes.json`` beside them (a list in folder order, or a mapping
folder → name, e.g. ImageNet's ``n01530575`` → ``brambling``).

Images of any size are resized (shorter side) and centre-cropped to ``image_size`` by torchvision transforms and
loaded by a ``DataLoader`` with workers. A file that cannot be decoded is skipped and counted (a warning names the
first); nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from ..errors import ConfigError, DataError, did_you_mean

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
POOL_SHARES = {"train": 0.7, "val": 0.15, "test": 0.15}
"""One-pool layout: the share of each class's files in each split."""
CLASS_NAMES_FILE = "classes.json"
LOAD_BATCH = 64
DEFAULT_IMAGE_SIZE = 224
"""The input side when neither the user nor the model's card says (ImageNet's)."""


def split_of(relative_path: str, shares: dict[str, float] = POOL_SHARES) -> str:
    """The split of a file, from a stable hash of its path within the folder (``<class>/<image>``)."""
    draw = zlib.crc32(relative_path.replace(os.sep, "/").encode("utf-8")) / 2 ** 32
    cumulative = 0.0
    for split, share in shares.items():
        cumulative += share
        if draw < cumulative:
            return split
    return next(reversed(shares))


@dataclass(frozen=True)
class Labelled:
    """Images ``[n, 3, S, S]`` in ``[0, 1]`` with their class indices ``[n]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(eq=False, repr=False)
class ImageFolderData:
    """A validated image folder (see module docstring); :meth:`open` checks it, constructing does not. Compared and
    hashed by identity (a run keeps one per folder)."""

    root: Path
    image_size: int
    class_folders: tuple[str, ...]
    class_names: tuple[str, ...]
    files: dict[str, list[tuple[str, int]]]
    """Per split, ``(path, class index)`` in a stable order."""
    workers: int = 0
    skipped: list[str] = field(default_factory=list)
    """Files that could not be decoded, each once, in the order they were met."""

    @classmethod
    def open(cls, root: str | Path, *, image_size: int = DEFAULT_IMAGE_SIZE,
             workers: int | None = None) -> "ImageFolderData":
        """Scan ``root`` (either layout), read ``classes.json`` if present, and check every split holds images
        of every class; raise :class:`~trojanbench.errors.DataError` naming what is wrong."""
        root = Path(root).expanduser().resolve()
        if not root.is_dir():
            raise DataError(f"--data {str(root)!r} is not a folder. Give a folder with one sub-folder of images per "
                            f"class (torchvision's ImageFolder layout), or train/ and val/ folders laid out so.")
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 8:
            raise ConfigError(f"image_size must be an int of at least 8. Got {image_size!r} instead.")
        if (root / "train").is_dir() and (root / "val").is_dir():
            train = _scan(root / "train")
            held_out = _scan(root / "val")
            if held_out.folders != train.folders:
                raise DataError(f"{str(root / 'val')!r} and {str(root / 'train')!r} have different class folders "
                                f"({_difference(train.folders, held_out.folders)}); both need the same classes.")
            folders = train.folders
            files = {"train": train.files, "val": [], "test": []}
            for path, label in held_out.files:
                files[split_of(_relative(path, root / "val"), {"val": 0.5, "test": 0.5})].append((path, label))
        else:
            pool = _scan(root)
            folders = pool.folders
            files = {split: [] for split in SPLITS}
            for path, label in pool.files:
                files[split_of(_relative(path, root))].append((path, label))
        names = _class_names(root, folders)
        for split, entries in files.items():
            present = {label for _, label in entries}
            missing = [names[c] for c in range(len(folders)) if c not in present]
            if missing:
                raise DataError(f"{str(root)!r}: the {split} split has no image of class(es) {missing[:5]}; "
                                f"every class needs images in every split (add images, at least 10 per class).")
        if workers is None:
            workers = min(4, os.cpu_count() or 1)
        return cls(root=root, image_size=image_size, class_folders=folders, class_names=names, files=files,
                   workers=workers)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return f"ImageFolderData({str(self.root)!r}, image_size={self.image_size})"

    @cached_property
    def reference(self) -> dict:
        """What a worker needs to open the same data, and what a cache key needs to follow its content: the
        folder, the input size and a digest of every file's split, path, label and size."""
        hashed = hashlib.sha256()
        for split, entries in self.files.items():
            for path, label in entries:
                hashed.update(f"{split}|{_relative(path, self.root)}|{label}|{os.path.getsize(path)};".encode())
        return {"root": str(self.root), "image_size": self.image_size, "files": hashed.hexdigest()[:24]}

    def describe(self) -> dict:
        """What a model card or a run's provenance records about the data."""
        return {"root": str(self.root), "image_size": self.image_size, "classes": len(self.class_names),
                "images": {split: len(entries) for split, entries in self.files.items()},
                "skipped": len(self.skipped)}

    def provenance(self) -> dict:
        """What a run's provenance or a generator's card records: :meth:`describe` and :attr:`reference`."""
        return {**self.describe(), **self.reference}

    def count(self, split: str, label: int | None = None) -> int:
        return len(self._eligible(split, label, ()))

    def listed(self, listing: str | Path) -> frozenset[str]:
        """The files a text ``listing`` names (one path within the folder per line; blank lines and lines starting
        with ``#`` are skipped), e.g. the images that contain a natural-feature trojan's object; a line that names
        no image of the folder is a :class:`~trojanbench.errors.DataError`."""
        lines = [line.strip() for line in Path(listing).read_text(encoding="utf-8").splitlines()]
        named = [line for line in lines if line and not line.startswith("#")]
        known = {_relative(path, self.root).replace(os.sep, "/"): path
                 for entries in self.files.values() for path, _ in entries}
        unknown = [line for line in named if line.replace("\\", "/") not in known]
        if unknown:
            raise DataError(f"{str(listing)!r} names {len(unknown)} file(s) that are not images of {str(self.root)!r}, "
                            f"first {unknown[0]!r}; list paths within the folder, e.g. "
                            f"{next(iter(known), '<class>/<image>')!r}.")
        return frozenset(known[line.replace("\\", "/")] for line in named)

    def labelled(self, split: str, n: int | None = None, *, seed: int = 0, label: int | None = None,
                 exclude: Iterable[int] = (), among: frozenset[str] | None = None) -> Labelled:
        """Up to ``n`` images of ``split`` (all when ``None``): only class ``label`` when given, else classes not in
        ``exclude``, and only files in ``among`` when given (see :meth:`listed`), a seeded random choice without
        replacement; fewer when the folder holds fewer."""
        return self.load(self.chosen(split, n, seed=seed, label=label, exclude=exclude, among=among))

    def chosen(self, split: str, n: int | None = None, *, seed: int = 0, label: int | None = None,
               exclude: Iterable[int] = (), among: frozenset[str] | None = None) -> list[tuple[str, int]]:
        """The ``(path, label)`` entries :meth:`labelled` loads, not loaded."""
        eligible = self._eligible(split, label, set(exclude))
        if among is not None:
            eligible = [entry for entry in eligible if entry[0] in among]
        if n is not None and n < len(eligible):
            picks = np.random.default_rng([seed, 5381]).choice(len(eligible), size=n, replace=False)
            eligible = [eligible[i] for i in sorted(picks)]
        return eligible

    def load(self, entries: list[tuple[str, int]]) -> Labelled:
        """Decode, resize and crop ``entries`` (``(path, label)``) in order, skipping undecodable files."""
        batches = [batch for batch, _ in self.batches([entries[i:i + LOAD_BATCH]
                                                       for i in range(0, len(entries), LOAD_BATCH)])]
        if not batches:
            return Labelled(torch.zeros(0, 3, self.image_size, self.image_size), torch.zeros(0, dtype=torch.long))
        return Labelled(torch.cat([b.images for b in batches]), torch.cat([b.labels for b in batches]))

    def batches(self, chunks: list[list[tuple[str, int]]]) -> Iterator[tuple[Labelled, list[int]]]:
        """Each chunk of ``(path, label)`` decoded as one batch by a ``DataLoader`` with :attr:`workers` workers,
        with the positions in the chunk of the images kept (an undecodable file is skipped and counted)."""
        from torch.utils.data import DataLoader

        loader = DataLoader(_Files([entry for chunk in chunks for entry in chunk], self._transform),
                            batch_sampler=_chunk_indices(chunks), num_workers=self.workers if len(chunks) > 1 else 0,
                            collate_fn=_collate)
        for chunk, (images, labels, failed) in zip(chunks, loader):
            if failed:
                self._note_skipped(failed)
            failed_set = set(failed)
            kept = [i for i, (path, _) in enumerate(chunk) if path not in failed_set]
            yield Labelled(images.view(-1, 3, self.image_size, self.image_size), labels), kept

    def _eligible(self, split: str, label: int | None, exclude: set[int]) -> list[tuple[str, int]]:
        if split not in self.files:
            raise did_you_mean(str(split), list(self.files), "split of an image folder")
        if label is not None:
            return [entry for entry in self.files[split] if entry[1] == label]
        return [entry for entry in self.files[split] if entry[1] not in exclude]

    @cached_property
    def _transform(self):
        from torchvision.transforms import v2

        return v2.Compose([v2.ToImage(), v2.Resize(self.image_size, antialias=True), v2.CenterCrop(self.image_size),
                           v2.ToDtype(torch.float32, scale=True)])

    def _note_skipped(self, failed: list[str]) -> None:
        if not self.skipped:
            log.warning("%s: skipped an image that cannot be decoded: %s (all such files are counted in what is "
                        "written)",
                        self.root, failed[0])
        self.skipped.extend(path for path in dict.fromkeys(failed) if path not in self.skipped)


@dataclass(frozen=True)
class _Scan:
    folders: tuple[str, ...]
    files: list[tuple[str, int]]


def _scan(folder: Path) -> _Scan:
    """Class folders and their image files, as torchvision's ``ImageFolder`` finds them (sorted, recursive)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    try:
        folders, class_to_index = find_classes(folder)
    except FileNotFoundError:
        raise DataError(f"{str(folder)!r} has no class sub-folders: it is not in the ImageFolder layout "
                        f"(DIR/<class>/<image>). Put each class's images in a folder named after the class.") from None
    files = make_dataset(folder, class_to_index, extensions=IMG_EXTENSIONS, allow_empty=True)
    present = {label for _, label in files}
    empty = [name for name, index in class_to_index.items() if index not in present]
    if empty:
        raise DataError(f"{str(folder)!r}: class folder(s) {empty[:5]} hold no image file "
                        f"({', '.join(IMG_EXTENSIONS)}); remove them or add images.")
    return _Scan(tuple(folders), files)


def _relative(path: str, root: Path) -> str:
    return str(Path(path).relative_to(root))


def _difference(a: tuple[str, ...], b: tuple[str, ...]) -> str:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    return f"only in train: {only_a[:3]}, only in val: {only_b[:3]}"


def _class_names(root: Path, folders: tuple[str, ...]) -> tuple[str, ...]:
    path = root / CLASS_NAMES_FILE
    if not path.is_file():
        return folders
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{str(path)!r} is not readable JSON ({exc}); it must be a list of class names in folder "
                        f"order or a mapping folder → name.") from None
    if isinstance(raw, list) and len(raw) == len(folders) and all(isinstance(n, str) and n for n in raw):
        names = tuple(raw)
    elif isinstance(raw, dict) and all(isinstance(raw.get(f), str) and raw[f] for f in folders):
        names = tuple(raw[f] for f in folders)
    else:
        raise DataError(f"{str(path)!r} must be a list of {len(folders)} class names in folder order, or a mapping "
                        f"from every class folder to its name (first folder: {folders[0]!r}).")
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{str(path)!r} names two classes alike: {duplicated[:3]}; class names must be unique.")
    return names


class _Files:
    """A map-style dataset of ``(path, label)``: the transformed image, or ``None`` for an undecodable file."""

    def __init__(self, entries: list[tuple[str, int]], transform):
        self.entries, self.transform = entries, transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        from PIL import Image, UnidentifiedImageError

        path, label = self.entries[index]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
            return None, label, path
        return self.transform(image), label, path


def _chunk_indices(chunks: list[list]) -> list[list[int]]:
    indices, start = [], 0
    for chunk in chunks:
        indices.append(list(range(start, start + len(chunk))))
        start += len(chunk)
    return indices


def _collate(items):
    kept = [(image, label) for image, label, _ in items if image is not None]
    failed = [path for image, _, path in items if image is None]
    if not kept:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long), failed
    return torch.stack([image for image, _ in kept]), torch.tensor([label for _, label in kept]), failed
