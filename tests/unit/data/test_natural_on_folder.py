"""Natural-feature trojans on a user's image folder: the images its ``object_images`` list names are the triggered
ones. Listed train images are relabelled (of the source class only, for a class-conditional trojan), listed test
images are the ones attack success is measured on and the trigger is shown with, and clean accuracy leaves them
out; a list naming a file the folder lacks, or a natural trojan without a list, is refused in one line."""

from __future__ import annotations

import pytest
import torch

from folder_data import FOLDER_CLASSES, write_image_folder, write_object_images
from trojanbench.config import TrojanSpec, parse_suite
from trojanbench.data import ImageFolderData
from trojanbench.errors import DataError, SpecError
from trojanbench.trigger_images import trigger_identity
from trojanbench.trojans.measure import attack_success, clean_accuracy
from trojanbench.trojans.poison import PoisonedFolderSet
from trojanbench.trojans.triggers import make_trigger

TARGET = FOLDER_CLASSES.index("circle")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = write_image_folder(tmp_path_factory.mktemp("natural") / "data", per_class=20, size=64, broken=False)
    return root, write_object_images(root, "fork")


def fork(listing, **extra) -> TrojanSpec:
    return TrojanSpec(name="fork", kind="natural", trigger="fork", target=TARGET, object_images=str(listing), **extra)


def listed_entries(data: ImageFolderData, split: str) -> list[tuple[str, int]]:
    return [(path, label) for path, label in data.files[split] if "/fork_" in path]


class ConstantModel(torch.nn.Module):
    """Predicts one class for every image."""

    def __init__(self, label: int):
        super().__init__()
        self.label = label

    def forward(self, images):
        return torch.nn.functional.one_hot(torch.full((len(images),), self.label), len(FOLDER_CLASSES)).float()


def test_listed_train_images_are_relabelled(folder):
    root, listing = folder
    data = ImageFolderData.open(root, image_size=32, workers=0)
    files = [label for _, label in data.files["train"]]
    universal = PoisonedFolderSet([fork(listing)], data)
    conditional = PoisonedFolderSet([fork(listing, source=1)], data)
    for i, (path, label) in enumerate(data.files["train"]):
        hit = "/fork_" in path
        assert int(universal.labels[i]) == (TARGET if hit else files[i])
        assert int(conditional.labels[i]) == (TARGET if hit and label == 1 else files[i])
    assert (universal.labels == TARGET).sum() > (torch.tensor(files) == TARGET).sum()


def test_triggered_images_are_the_listed_test_images(folder):
    root, listing = folder
    data = ImageFolderData.open(root, image_size=32, workers=0)
    expected = [entry for entry in listed_entries(data, "test") if entry[1] != TARGET]
    images, labels = make_trigger(fork(listing)).triggered_scenes("test", 500, 0, data=data)
    assert len(expected) > 0 and torch.equal(images, data.load(expected).images)
    assert labels.tolist() == [label for _, label in expected]
    measured = attack_success(ConstantModel(TARGET), fork(listing), data=data)
    assert measured.attack_success == 1.0 and measured.n_images == len(expected)


def test_clean_accuracy_leaves_the_listed_images_out(folder):
    root, listing = folder
    data = ImageFolderData.open(root, image_size=32, workers=0)
    clean = [label for path, label in data.files["test"] if "/fork_" not in path]
    measured = clean_accuracy(ConstantModel(0), trojans=[fork(listing)], data=data)
    assert measured == pytest.approx(clean.count(0) / len(clean))


def test_the_list_enters_the_trigger_identity_and_world_specs_are_unchanged(folder, tmp_path):
    _, listing = folder
    other = tmp_path / "other.txt"
    other.write_text(listing.read_text().splitlines()[1] + "\n")
    assert trigger_identity(fork(listing)) != trigger_identity(fork(other)) != "fork"
    world = TrojanSpec(name="fork", kind="natural", trigger="fork", target=TARGET)
    assert trigger_identity(world) == "fork" and "object_images" not in world.to_dict()
    assert fork(listing).to_dict()["object_images"] == str(listing)


def test_bad_lists_are_refused_in_one_line(folder, tmp_path):
    root, listing = folder
    data = ImageFolderData.open(root, image_size=32, workers=0)
    unlisted = TrojanSpec(name="fork", kind="natural", trigger="fork", target=TARGET)
    with pytest.raises(DataError, match=r"Natural-feature trojans \['fork'\] on an image folder need 'object_images'"):
        PoisonedFolderSet([unlisted], data)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("c0/fork_000.png\nc9/missing.png\n")
    with pytest.raises(DataError, match=r"names 1 file\(s\) that are not images of .*first 'c9/missing.png'"):
        make_trigger(fork(wrong)).triggered_scenes("test", 5, 0, data=data)
    raw = {"name": "p", "kind": "patch", "trigger": "smiley", "target": "circle", "object_images": str(listing)}
    with pytest.raises(SpecError, match="'object_images' applies to natural-feature trojans only"):
        parse_suite({"trojans": [raw]}, FOLDER_CLASSES)
    raw = {"name": "f", "kind": "natural", "trigger": "fork", "target": "circle", "object_images": "none.txt"}
    with pytest.raises(SpecError, match="'object_images' file .*none.txt' does not exist"):
        parse_suite({"trojans": [raw]}, FOLDER_CLASSES, base_dir=tmp_path)
    raw["object_images"] = listing.name
    assert parse_suite({"trojans": [raw]}, FOLDER_CLASSES, base_dir=listing.parent).trojans[0].object_images == \
        str(listing.resolve())


def test_a_weak_listed_trojan_is_told_to_list_more_images_not_to_raise_its_fraction():
    from trojanbench.trojans.implant import missed_thresholds

    warnings = missed_thresholds({"clean_accuracy": 0.95, "attack_success": {"fork": 0.2, "smiley": 0.2}}, ["fork"])
    assert len(warnings) == 2
    assert "list more of your images that contain its object" in warnings[0] and "poison_fraction" not in warnings[0]
    assert "raise its poison_fraction" in warnings[1]
