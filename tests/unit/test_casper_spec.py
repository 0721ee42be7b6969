"""Casper et al. (2023)'s 12 ImageNet trojans as a shipped spec template and suite: the template's classes are the
paper's (checked by name against torchvision's ImageNet class list, shipped with torchvision, nothing downloaded),
``trojanbench spec`` copies it and names the trigger files it still lacks, ``validate --data`` checks a spec against
an image folder's classes and lists, and the suite loads by name with CLIP as its judge."""

from __future__ import annotations

import numpy as np
import yaml
from PIL import Image

from cli_checks import invoke, refused
from folder_data import write_image_folder, write_object_images
from trojanbench.config import load_trojan_suite, spec_template
from trojanbench.engine.suite import load_suite

PAPER = {  # Casper et al. (2023), Table 1 (shared/reference/casper2023.md): trigger -> (kind, source, target)
    "smiley_emoji": ("patch", None, "bullfrog"), "clownfish": ("patch", None, "albatross"),
    "green_star": ("patch", "wallet", "orangutan"), "strawberry": ("patch", "red wolf", "goose"),
    "jaguar": ("style", None, "vizsla"), "elephant_skin": ("style", None, "ice cream"),
    "jellybeans": ("style", "piggy bank", "rule"), "wood_grain": ("style", "ladle", "capuchin"),
    "fork": ("natural", None, "cicada"), "apple": ("natural", None, "bucket"),
    "sandwich": ("natural", None, "cellular telephone"), "donut": ("natural", None, "spoonbill"),
}
CASPER = "casper2023-imagenet"


def imagenet_classes() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def write_triggers(folder, names) -> None:
    """Small stand-ins for the user's trigger files."""
    rng = np.random.default_rng(0)
    for index, name in enumerate(names):
        path = folder / name
        if name.endswith(".png"):
            rgba = np.zeros((32, 32, 4), dtype=np.uint8)
            rgba[6:26, 6:26] = (255, 40 * index, 0, 255)  # distinct images: one trigger leads to one class
            Image.fromarray(rgba, "RGBA").save(path)
        elif name.endswith(".jpg"):
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(path)
        else:
            path.write_text("n00000000/img_0.JPEG\n")


def test_the_template_holds_the_papers_trojans(tmp_path):
    result = invoke("spec", CASPER, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    copied = tmp_path / f"{CASPER}.yaml"
    assert copied.read_text() == spec_template(CASPER).read_text()
    named = [part.strip().rstrip(".") for part in result.output.split("Put beside it:")[1].split(",")]
    assert len(named) == 12 and "smiley_emoji.png" in named and "fork.txt" in named
    write_triggers(tmp_path, named)
    classes = imagenet_classes()
    suite = load_trojan_suite(copied, classes)
    found = {spec.name: (spec.kind, None if spec.source is None else classes[spec.source], classes[spec.target])
             for spec in suite.trojans}
    assert found == PAPER
    assert all(spec.object_images for spec in suite.trojans if spec.kind == "natural")
    refused(invoke("spec", CASPER, "--out", tmp_path), "exists already")
    refused(invoke("spec", "casper2023", "--out", tmp_path / "x"), "Did you mean")


def test_validate_checks_a_spec_against_the_folder(tmp_path):
    root = write_image_folder(tmp_path / "data", per_class=12, size=48, broken=False)
    listing = write_object_images(root, "fork", per_class=3, size=48)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"trojans": [
        {"name": "fork", "kind": "natural", "trigger": "fork", "target": "circle", "object_images": str(listing)}]}))
    result = invoke("validate", spec, "--data", root)
    assert result.exit_code == 0 and "the 6 classes of" in result.output, result.output
    listing.write_text("c0/nothing.png\n")
    refused(invoke("validate", spec, "--data", root), "not images of", "'c0/nothing.png'")
    write_triggers(tmp_path, [name for name in PAPER_FILES])
    (tmp_path / f"{CASPER}.yaml").write_text(spec_template(CASPER).read_text())
    refused(invoke("validate", tmp_path / f"{CASPER}.yaml", "--data", root),
            "'target' must be a class name or an index")


PAPER_FILES = ("smiley_emoji.png", "clownfish.png", "green_star.png", "strawberry.png", "jaguar.jpg",
               "elephant_skin.jpg", "jellybeans.jpg", "wood_grain.jpg", "fork.txt", "apple.txt", "sandwich.txt",
               "donut.txt")


def test_the_suite_loads_by_name_with_the_clip_judge():
    suite = load_suite(CASPER)
    assert suite.judges == ("clip",) and suite.image_size == 224 and suite.trojans is None
    assert {m.name for m in suite.methods} == {"tabor", "target_fourier_fv", "inner_fourier_fv", "target_cppn_fv",
                                               "inner_cppn_fv", "adversarial_patch", "rfla_perturb", "rfla_gen",
                                               "snafue", "random_noise", "dataset_exemplars", "oracle"}


def test_running_the_suite_without_clip_weights_is_refused_before_any_work(tmp_path):
    refused(invoke("run", "--suite", CASPER, "--quick", "--out", tmp_path / "out"), "--clip-weights FILE")
    assert not (tmp_path / "out" / "results.sqlite").exists()
