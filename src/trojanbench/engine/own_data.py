"""A task's run on a user's own classifier and image folder (:mod:`trojanbench.data`) instead of the built-in world:
opening both at the run's image size and checking that they fit each other."""

from __future__ import annotations

from ..data import DEFAULT_IMAGE_SIZE, ImageFolderData
from ..errors import ConfigError
from ..models import LoadedModel, check_outputs, load_model
from .suite import Suite


def open_folder_run(suite: Suite) -> tuple[ImageFolderData, LoadedModel]:
    """A run's image folder, at the suite's ``image_size``, else the model card's, else 224, and its model (a
    checkpoint with its weights, e.g. written by ``trojanbench implant``), checked to fit each other."""
    if ":" in suite.model and not suite.model.endswith(".safetensors"):  # torchvision:, timm:, module:factory
        raise ConfigError(f"--model {suite.model!r} names an architecture, not a trained model: a run on your own "
                          f"data needs a .safetensors checkpoint with its card (e.g. `trojanbench implant ... --out "
                          f"DIR` writes DIR/model.safetensors).")
    loaded = load_model(suite.model)
    size = suite.image_size or loaded.card.get("image_size") or DEFAULT_IMAGE_SIZE
    folder = ImageFolderData.open(suite.data, image_size=size)
    check_outputs(loaded, folder.num_classes, folder.image_size, "run needs one output per class of the folder")
    return folder, loaded


def open_run_model(suite: Suite) -> tuple[ImageFolderData | None, LoadedModel, tuple[str, ...]]:
    """A run's audited model and the classes its trojans name: the built-in world's (``None`` for the folder, the
    model checked to classify the world) or the suite's image folder's (see :func:`open_folder_run`)."""
    if suite.data is None:
        from ..audit import check_world_classifier
        from ..world import OBJECT_CLASSES

        loaded = load_model(suite.model)
        check_world_classifier(loaded)
        return None, loaded, tuple(OBJECT_CLASSES)
    folder, loaded = open_folder_run(suite)
    return folder, loaded, folder.class_names
