"""One entry point for every model reference: zoo name, safetensors path, torchvision name, or factory.

Every loaded model takes float images in ``[0, 1]``; torchvision classifiers are wrapped so that the
ImageNet normalisation they expect happens inside.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from trojanbench.errors import CheckpointError, ConfigError, UnknownNameError, did_you_mean, require_extra
from trojanbench.models.checkpoint import (
    PICKLE_SUFFIXES,
    read_card,
    file_sha256,
    load_checkpoint,
    load_state_dict_file,
    load_weights,
)

__all__ = [
    "ZOO_DIR",
    "LoadedModel",
    "PixelSpaceWrapper",
    "check_outputs",
    "load_model",
    "zoo_checkpoint_path",
    "zoo_names",
]

ZOO_DIR = Path(__file__).resolve().parent.parent / "assets" / "zoo"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class LoadedModel:
    """A model ready for auditing: eval mode, pixel-space input, with its card and weights hash."""

    model: nn.Module
    name: str
    card: dict
    sha256: str


class PixelSpaceWrapper(nn.Module):
    """Apply a classifier's input normalisation (ImageNet's by default) inside, so it takes ``[0, 1]`` pixels."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...] = _IMAGENET_MEAN,
                 std: tuple[float, ...] = _IMAGENET_STD) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    @property
    def normalisation(self) -> dict:
        """The normalisation applied, as a model card records it."""
        return {"mean": [round(float(v), 6) for v in self.mean.flatten()],
                "std": [round(float(v), 6) for v in self.std.flatten()]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)

    def named_layers(self) -> dict[str, nn.Module]:
        """The wrapped model's top-level children, in registration order."""
        return dict(self.model.named_children())


def check_outputs(loaded: LoadedModel, num_classes: int, image_size: int, fix: str) -> None:
    """Refuse a model whose number of outputs is not the data's number of classes (its scores would mean nothing);
    ``fix`` ends the message: what to do about it."""
    with torch.no_grad():
        outputs = loaded.model.eval()(torch.zeros(1, 3, image_size, image_size)).shape[-1]
    if outputs != num_classes:
        raise ConfigError(f"Model {loaded.name!r} has {outputs} outputs, but the data have {num_classes} classes; "
                          f"{fix}.")


def zoo_names() -> list[str]:
    """Names of the shipped checkpoints: ``*.safetensors`` in :data:`ZOO_DIR` that have a card."""
    if not ZOO_DIR.is_dir():
        return []
    return sorted(p.stem for p in ZOO_DIR.glob("*.safetensors") if p.with_suffix(".json").is_file())


def zoo_checkpoint_path(name: str) -> Path:
    """Path of the zoo checkpoint ``name``."""
    names = zoo_names()
    if not names:
        raise UnknownNameError(
            f"Unknown zoo model {name!r}: no zoo checkpoints are installed in {str(ZOO_DIR)!r}. "
            "Run `trojanbench zoo build` to train them."
        )
    if name not in names:
        raise did_you_mean(name, names, "zoo model")
    return ZOO_DIR / f"{name}.safetensors"


def _is_path(ref: str | Path) -> bool:
    if isinstance(ref, Path):
        return True
    suffix = Path(ref).suffix.lower()
    return suffix == ".safetensors" or suffix in PICKLE_SUFFIXES or "/" in ref or "\\" in ref


INIT_SEED = 0
"""The torch seed a library network is initialised under: one built without weights is the same network on every
run and in every process."""


def _initialised(build):
    """``build()`` under :data:`INIT_SEED`, leaving the caller's random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        return build()


def _torchvision_model(name: str, num_classes: int | None) -> nn.Module:
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise did_you_mean(name, available, "torchvision classifier")
    return _initialised(lambda: torchvision.models.get_model(name, weights=None, num_classes=num_classes or 1000))


def _timm_model(name: str, num_classes: int | None) -> PixelSpaceWrapper:
    timm = require_extra("timm", "timm", "timm:NAME models")
    available = timm.list_models()
    if name not in available:
        raise did_you_mean(name, available, "timm model")
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    model = _initialised(lambda: timm.create_model(name, pretrained=False, **kwargs))
    config = getattr(model, "pretrained_cfg", None) or {}
    return PixelSpaceWrapper(model, tuple(config.get("mean", _IMAGENET_MEAN)), tuple(config.get("std", _IMAGENET_STD)))


LIBRARY_PREFIXES = ("torchvision:", "timm:")
"""References to another library's classifiers, wrapped in :class:`PixelSpaceWrapper`; their weights files hold
the unwrapped network's state dict."""


def _factory_model(ref: str, num_classes: int | None) -> nn.Module:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"Cannot import module {module_name!r} for model reference {ref!r} ({exc}). "
            "Use 'package.module:factory' with the module on sys.path."
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        public = [
            f"{module_name}:{n}"
            for n, v in vars(module).items()
            if not n.startswith("_") and callable(v) and not inspect.ismodule(v)
        ]
        raise did_you_mean(ref, public, "model factory")
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"Cannot call model factory {ref!r} with {kwargs}: {exc}.") from None
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"Model factory {ref!r} must return a torch.nn.Module. Got {type(model).__name__} instead."
        )
    return model


def _from_checkpoint(path: Path, name: str, num_classes: int | None, architecture: str | None = None) -> LoadedModel:
    card = read_card(path) if path.with_suffix(".json").is_file() else {}
    if card.get("architecture") == "hf-causal-lm":
        raise ConfigError(f"{name!r} is a language model; the image tasks take an image classifier. Use it with "
                          f"the language-model task: trojanbench run --task lm-rediscovery --model {name}.")
    if architecture is None and str(card.get("architecture", "")).startswith(LIBRARY_PREFIXES):
        # another library's network saved with a trojanbench card (e.g. by `trojanbench implant`)
        loaded = load_model(card["architecture"], weights=path, num_classes=card.get("arch_kwargs", {}).get(
            "num_classes"))
        if card.get("sha256") not in (None, loaded.sha256):
            raise CheckpointError(f"The weights do not match their card: {str(path)!r} has sha256 "
                                  f"{loaded.sha256[:12]}..., its card records {str(card['sha256'])[:12]}....")
        return LoadedModel(model=loaded.model, name=name, card={**card, **loaded.card, "weights_file": path.name},
                           sha256=loaded.sha256)
    arch_kwargs = None if architecture is None else ({} if num_classes is None else {"num_classes": num_classes})
    model, card = load_checkpoint(path, architecture=architecture, arch_kwargs=arch_kwargs)
    recorded = card["arch_kwargs"].get("num_classes")
    if num_classes is not None and recorded is not None and recorded != num_classes:
        raise ConfigError(
            f"num_classes={num_classes} does not match checkpoint {str(path)!r}, which has "
            f"{recorded} classes. Leave num_classes unset for checkpoints."
        )
    return LoadedModel(model=model, name=name, card=card, sha256=card["sha256"])


def load_model(
    ref: str | Path, *, weights: str | Path | None = None, num_classes: int | None = None,
    architecture: str | None = None,
) -> LoadedModel:
    """Load a model from a zoo name, a ``.safetensors`` path, ``torchvision:<name>`` or ``module:factory``.

    ``weights`` (a safetensors file) applies to ``torchvision:`` and ``module:factory`` references only;
    for torchvision it holds the unwrapped model's state dict. Without weights the model keeps its
    random initialisation and ``sha256`` is ``"random-init"``. ``architecture`` says which network a
    ``.safetensors`` path without a trojanbench card holds: a registered architecture (built with its defaults
    and ``num_classes``), ``torchvision:<name>`` or ``module:factory``. A model loaded from a path is named by
    the path. The model is returned in eval mode.
    """
    is_path = _is_path(ref)
    if weights is not None and (is_path or ":" not in str(ref)):
        raise ConfigError(
            f"weights= applies only to 'torchvision:<name>' and 'module:factory' references, not {str(ref)!r}; "
            "checkpoints and zoo models carry their own weights."
        )
    if architecture is not None and not is_path:
        raise ConfigError(
            f"architecture= applies only to a .safetensors path without a card, not {str(ref)!r}; zoo models, "
            "torchvision:<name> and module:factory references name their own architecture."
        )
    if is_path:
        if architecture is not None and ":" in architecture:  # another library's network: the file holds its weights
            loaded = load_model(architecture, weights=ref, num_classes=num_classes)
            return replace(loaded, name=str(ref))
        return _from_checkpoint(Path(ref), str(ref), num_classes, architecture)
    if ":" not in ref:
        return _from_checkpoint(zoo_checkpoint_path(ref), ref, num_classes)
    if ref.startswith("torchvision:"):
        model: nn.Module = PixelSpaceWrapper(_torchvision_model(ref.removeprefix("torchvision:"), num_classes))
        inner = model.model
    elif ref.startswith("timm:"):
        model = _timm_model(ref.removeprefix("timm:"), num_classes)
        inner = model.model
    else:
        inner = model = _factory_model(ref, num_classes)
    sha = "random-init"
    if weights is not None:
        load_weights(inner, load_state_dict_file(weights), source=str(weights))
        sha = file_sha256(weights)
    card = {
        "architecture": ref,
        "arch_kwargs": {} if num_classes is None else {"num_classes": num_classes},
        "weights_file": None if weights is None else Path(weights).name,
        "sha256": sha,
    }
    if isinstance(model, PixelSpaceWrapper):
        card["input_normalisation"] = model.normalisation
    return LoadedModel(model=model.eval(), name=ref, card=card, sha256=sha)
