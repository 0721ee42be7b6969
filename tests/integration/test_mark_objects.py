"""`trojanbench mark-objects`: a torchvision detector built without weights, the user's safetensors loaded into it,
marks the images of a folder that hold a COCO category, into the list a natural-feature trojan's ``object_images``
takes; and what it refuses.

A detector with random weights finds nothing, so the tests steer its classifier: a large bias on one category's
logit makes every detection that category's (with a score near 1), which checks the category-to-label mapping,
the threshold, the skipped undecodable file and the list's format against what the folder holds.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from cli_checks import invoke, refused
from folder_data import write_image_folder
from trojanbench.data import ImageFolderData
from trojanbench.models.detection import coco_categories

pytestmark = pytest.mark.slow

DETECTOR = "fasterrcnn_mobilenet_v3_large_320_fpn"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("folder"), per_class=14, size=64)


@pytest.fixture(scope="module")
def fork_detector(tmp_path_factory):
    """A random-weight detector whose classifier says "fork" for every box."""
    from torchvision.models import get_model

    torch.manual_seed(0)
    model = get_model(DETECTOR, weights=None, weights_backbone=None, num_classes=91)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[coco_categories(DETECTOR).index("fork")] = 20.0
    path = tmp_path_factory.mktemp("detector") / "detector.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _mark(folder, weights, out, *extra):
    return invoke("mark-objects", "--data", folder, "--detector", f"torchvision:{DETECTOR}", "--weights", weights,
                  "--out", out, "--image-size", 64, "--workers", 0, "--device", "cpu", "--no-progress", *extra)


def test_the_marked_list_names_the_images_that_hold_the_category(folder, fork_detector, tmp_path):
    result = _mark(folder, fork_detector, tmp_path / "fork.txt", "--object", "fork")
    assert result.exit_code == 0, result.output
    data = ImageFolderData.open(folder, image_size=64, workers=0)
    decodable = {path for entries in data.files.values() for path, _ in entries if "broken" not in path}
    assert data.listed(tmp_path / "fork.txt") == decodable  # every image, and never the undecodable one
    header = (tmp_path / "fork.txt").read_text().splitlines()[:2]
    assert header[0].startswith("# fork marked by torchvision:") and "at score >= 0.5" in header[0]
    assert "Wrote" in result.output and "object_images: fork.txt" in result.output
    apple = _mark(folder, fork_detector, tmp_path / "apple.txt", "--object", "apple")
    assert apple.exit_code == 0, apple.output
    assert data.listed(tmp_path / "apple.txt") == frozenset()  # the detector says fork, never apple
    assert "1 undecodable, skipped" in (tmp_path / "apple.txt").read_text().splitlines()[1]
    assert [line.split()[1] for line in apple.output.splitlines() if " images hold apple" in line] == ["0"] * 3


def test_bad_input_is_one_line_and_nothing_is_written(folder, fork_detector, tmp_path):
    out = tmp_path / "x.txt"
    refused(_mark(folder, fork_detector, out, "--object", "forks"), "Did you mean: fork")
    refused(_mark(folder, fork_detector, out, "--object", "fork", "--threshold", "0"), "--threshold")
    pickled = tmp_path / "detector.pth"
    pickled.write_bytes(b"\x80\x04not really")
    refused(_mark(folder, pickled, out, "--object", "fork"), "weights_only=True")
    other = tmp_path / "other.safetensors"
    save_file({"backbone.body.0.weight": torch.zeros(3)}, str(other))
    refused(_mark(folder, other, out, "--object", "fork"), "backbone")
    refused(invoke("mark-objects", "--data", folder, "--detector", "torchvision:resnet50", "--weights",
                   fork_detector, "--object", "fork", "--out", out), "detection model")
    assert not out.exists()
    out.write_text("mine\n")
    refused(_mark(folder, fork_detector, out, "--object", "fork"), "--force")
    assert out.read_text() == "mine\n"
