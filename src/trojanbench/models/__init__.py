"""Architectures, safetensors checkpoint I/O and model loading (zoo, paths, torchvision, factories)."""

from trojanbench.models.architectures import ARCHITECTURES, BasicBlock, CompactResNet, build_model
from trojanbench.models.checkpoint import (
    file_sha256,
    load_checkpoint,
    load_state_dict_file,
    load_weights,
    read_card,
    save_checkpoint,
)
from trojanbench.models.loading import (
    ZOO_DIR,
    LoadedModel,
    PixelSpaceWrapper,
    check_outputs,
    load_model,
    zoo_checkpoint_path,
    zoo_names,
)

__all__ = [
    "ARCHITECTURES",
    "ZOO_DIR",
    "BasicBlock",
    "CompactResNet",
    "LoadedModel",
    "PixelSpaceWrapper",
    "build_model",
    "check_outputs",
    "file_sha256",
    "load_checkpoint",
    "load_model",
    "load_state_dict_file",
    "load_weights",
    "read_card",
    "save_checkpoint",
    "zoo_checkpoint_path",
    "zoo_names",
]
