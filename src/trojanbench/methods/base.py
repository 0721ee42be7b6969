"""The method contract: inert constructors, declared hyperparameters, one entry point per family.

Like scikit-learn estimators, a method's ``__init__`` takes only keyword hyperparameters and stores them
unchanged; :meth:`Method.get_params` reads them back by introspecting the signature, and validation
happens when the method is used, against :attr:`Method.parameter_constraints`.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch

from ..errors import ConfigError, MethodError
from ..params import Constraint, Interval, require, validate_params
from .target import Target


class Method:
    """Base of every interpretability method (and baseline) that trojanbench scores."""

    name: ClassVar[str] = ""
    """Registry name, lowercase snake_case (e.g. ``"tabor"``)."""
    family: ClassVar[str] = ""
    """``"synthesis"`` now; attribution, editing and replacement families follow."""
    paper: ClassVar[str] = ""
    """Short citation of the method's source (e.g. "Guo et al. 2019, TABOR")."""
    is_baseline: ClassVar[bool] = False
    """Baselines are reported beside tools, marked as such."""
    is_oracle: ClassVar[bool] = False
    """An oracle sees the ground truth; it validates judges and never ranks as a tool."""
    parameter_constraints: ClassVar[dict[str, Constraint]] = {}
    quick_params: ClassVar[dict[str, Any]] = {}
    """Overrides that make the method fast (fewer steps) for ``--quick`` runs and conformance checks."""

    def __init__(self) -> None:  # subclasses declare their hyperparameters as keyword arguments
        pass

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        names = []
        for parameter in list(signature.parameters.values())[1:]:
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise ConfigError(f"{cls.__qualname__}.__init__ must list its hyperparameters explicitly "
                                  f"(no *args/**kwargs).")
            names.append(parameter.name)
        return names

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, as given to the constructor."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "Method":
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no parameter(s) {unknown}. "
                              f"Valid parameters: {self._param_names()}.")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def validate(self) -> None:
        """Raise :class:`ConfigError` if a hyperparameter breaks its declared constraint."""
        validate_params(type(self).__name__, self.get_params(), self.parameter_constraints)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class SynthesisMethod(Method):
    """Feature synthesis: from the model alone, make images that reveal what drives a class.

    Subclasses implement :meth:`_synthesize`; :meth:`synthesize` validates arguments and the output.
    A method never sees the trojan's trigger (only an oracle does, through :meth:`with_ground_truth`).
    """

    family = "synthesis"

    def synthesize(self, target: Target, target_class: int, n_images: int, seed: int,
                   source_class: int | None = None) -> torch.Tensor:
        """``n_images`` float images ``[n, 3, H, W]`` in ``[0, 1]`` meant to reveal ``target_class``.

        ``source_class`` is given for class-conditional trojans (the class whose images are redirected).
        """
        self.validate()
        class_index = Interval(int, 0, len(target.class_names) - 1)
        target_class = require("target_class", target_class, class_index)
        if source_class is not None:
            source_class = require("source_class", source_class, class_index)
        n_images = require("n_images", n_images, Interval(int, 1, None))
        seed = require("seed", seed, Interval(int, 0, None))
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            images = self._synthesize(target, target_class, n_images, generator, source_class)
        check_images(images, n_images, target.image_size, owner=type(self).__name__)
        return images.detach().float()

    def _synthesize(self, target: Target, target_class: int, n_images: int, generator: torch.Generator,
                    source_class: int | None) -> torch.Tensor:
        raise NotImplementedError


def check_images(images: object, n_images: int, image_size: int, *, owner: str) -> None:
    """Raise :class:`MethodError` unless ``images`` is a finite float ``[n, 3, H, W]`` tensor in ``[0, 1]``."""
    expected = (n_images, 3, image_size, image_size)
    if not isinstance(images, torch.Tensor):
        raise MethodError(f"{owner} returned {type(images).__name__}, not a torch.Tensor.")
    if tuple(images.shape) != expected:
        raise MethodError(f"{owner} returned images of shape {tuple(images.shape)}; expected {expected}.")
    if not images.is_floating_point():
        raise MethodError(f"{owner} returned {images.dtype} images; expected a float tensor in [0, 1].")
    if not torch.isfinite(images).all():
        raise MethodError(f"{owner} returned images with NaN or infinite values.")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise MethodError(f"{owner} returned pixel values in [{low:.3g}, {high:.3g}]; expected [0, 1].")
