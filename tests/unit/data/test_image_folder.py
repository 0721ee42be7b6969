"""A user's image folder: both layouts, stable splits, class names, resizing, undecodable files and bad folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from folder_data import FOLDER_CLASSES, write_image_folder
from trojanbench.data import ImageFolderData, split_of
from trojanbench.errors import DataError, TrojanbenchError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("data") / "pool", per_class=30, size=80)


def test_pool_layout_splits_every_class_and_names_it(folder):
    data = ImageFolderData.open(folder, image_size=48, workers=0)
    assert data.class_names == FOLDER_CLASSES and data.class_folders == tuple(f"c{i}" for i in range(6))
    sizes = {split: len(entries) for split, entries in data.files.items()}
    assert sum(sizes.values()) == 6 * 30 + 1 and sizes["train"] > sizes["val"] > 0 and sizes["test"] > 0
    for entries in data.files.values():
        assert {label for _, label in entries} == set(range(6))
    paths = [path for entries in data.files.values() for path, _ in entries]
    assert len(set(paths)) == len(paths), "each file in exactly one split"


def test_a_files_split_does_not_depend_on_the_other_files(folder, tmp_path):
    before = ImageFolderData.open(folder, image_size=48, workers=0)
    (folder / "c3" / "new.png").write_bytes((folder / "c3" / "001.png").read_bytes())
    try:
        after = ImageFolderData.open(folder, image_size=48, workers=0)
    finally:
        (folder / "c3" / "new.png").unlink()
    for split in before.files:
        assert set(before.files[split]) <= set(after.files[split])
    assert split_of("c3/new.png") == split_of("c3/new.png") and split_of("a.png") in ("train", "val", "test")


def test_train_val_layout_halves_val_into_val_and_test(tmp_path):
    for split, count in (("train", 12), ("val", 12)):
        write_image_folder(tmp_path / split, per_class=count, size=40, names=False, broken=False)
    data = ImageFolderData.open(tmp_path, image_size=32, workers=0)
    assert data.class_names == tuple(sorted(FOLDER_CLASSES)), "folder names, in torchvision's (sorted) order"
    assert len(data.files["train"]) == 72 and len(data.files["val"]) + len(data.files["test"]) == 72
    assert all("/val/" in path for path, _ in data.files["val"] + data.files["test"])


def test_images_are_resized_cropped_and_chosen_by_seed(folder):
    data = ImageFolderData.open(folder, image_size=40, workers=0)
    wide = folder / "c1" / "wide.png"
    Image.fromarray(np.full((60, 150, 3), 200, dtype=np.uint8)).save(wide)
    try:
        loaded = data.load([(str(wide), 1)])
    finally:
        wide.unlink()
    assert loaded.images.shape == (1, 3, 40, 40) and torch.allclose(loaded.images, torch.tensor(200 / 255))
    first, again = data.labelled("train", 10, seed=3), data.labelled("train", 10, seed=3)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.labels, data.labelled("train", 10, seed=4).labels) or \
        not torch.equal(first.images, data.labelled("train", 10, seed=4).images)
    only = data.labelled("val", None, label=2)
    assert len(only) == data.count("val", 2) and set(only.labels.tolist()) == {2}
    others = data.labelled("test", None, exclude={0, 1})
    assert not set(others.labels.tolist()) & {0, 1}
    assert len(data.labelled("val", 10_000)) == data.count("val"), "never more than the folder holds"


def test_undecodable_files_are_skipped_and_counted_once(folder, caplog):
    data = ImageFolderData.open(folder, image_size=32, workers=2)
    split = split_of("c0/zz_broken.jpg")
    everything = data.labelled(split)
    everything_again = data.labelled(split)
    assert len(everything) == len(everything_again) == data.count(split) - 1
    assert data.skipped == [str(folder / "c0" / "zz_broken.jpg")] and data.describe()["skipped"] == 1
    assert sum("cannot be decoded" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize("contents, message", [
    (["a", "b"], "must be a list of 6 class names"),
    ({"c0": "a"}, "mapping from every class folder"),
    (["a", "a", "b", "c", "d", "e"], "names two classes alike"),
    ("{not json", "not readable JSON"),
])
def test_bad_class_names_file_is_refused(tmp_path, contents, message):
    root = write_image_folder(tmp_path / "d", per_class=12, size=32, broken=False)
    (root / "classes.json").write_text(contents if isinstance(contents, str) else json.dumps(contents))
    with pytest.raises(DataError, match=message):
        ImageFolderData.open(root, image_size=32)


def test_bad_folders_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        ImageFolderData.open(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "flat" / "x.png")
    with pytest.raises(DataError, match="no class sub-folders: it is not in the ImageFolder layout"):
        ImageFolderData.open(tmp_path / "flat")
    root = write_image_folder(tmp_path / "empty_class", per_class=12, size=32, broken=False)
    (root / "c9").mkdir()
    with pytest.raises(DataError, match=r"class folder\(s\) \['c9'\] hold no image"):
        ImageFolderData.open(root)
    sparse = write_image_folder(tmp_path / "sparse", per_class=1, size=32, names=False, broken=False)
    with pytest.raises(DataError, match="has no image of class"):
        ImageFolderData.open(sparse)
    write_image_folder(tmp_path / "mismatch" / "train", per_class=4, size=32, names=False, broken=False)
    write_image_folder(tmp_path / "mismatch" / "val", per_class=4, size=32, names=False, broken=False)
    (tmp_path / "mismatch" / "val" / FOLDER_CLASSES[0]).rename(tmp_path / "mismatch" / "val" / "other")
    with pytest.raises(DataError, match="different class folders"):
        ImageFolderData.open(tmp_path / "mismatch")
    assert issubclass(DataError, TrojanbenchError) and issubclass(DataError, ValueError)
