"""Conformance checks every method must pass, built-in or plugin: ``check_method(MyTool)``.

Modelled on scikit-learn's ``check_estimator``: it runs the method on a tiny random model and raises
:class:`ConformanceError` listing every broken rule (output shape, range and dtype, no NaN, determinism
under a seed, global random state and the audited model left unchanged, parameters that round-trip
through ``get_params``, an inert constructor, and bad hyperparameters rejected with a clear message).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..config import TrojanSpec
from ..errors import ConfigError, TrojanbenchError
from ..methods.base import Method, SynthesisMethod
from ..methods.params import Boolean, Interval, Options
from ..methods.target import Target


class ConformanceError(TrojanbenchError, AssertionError):
    """A method breaks the method contract; the message lists each broken rule."""


_tiny_targets: dict[int, Target] = {}


def tiny_target(seed: int = 0) -> Target:
    """A small random-weight world classifier with a little clean data (cached per seed)."""
    if seed not in _tiny_targets:
        from ..models import CompactResNet
        from ..world import OBJECT_CLASSES

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CompactResNet(num_classes=len(OBJECT_CLASSES), width=4)
        _tiny_targets[seed] = Target.from_model(model, n_clean=48, n_patches=64, seed=seed)
    return _tiny_targets[seed]


def _bad_value(constraint) -> Any:
    if isinstance(constraint, Interval):
        if constraint.low is not None:
            return constraint.low - 1 if constraint.kind is int else constraint.low - 1.0
        return "not a number"
    if isinstance(constraint, Options):
        return "__not_an_option__"
    if isinstance(constraint, Boolean):
        return "yes"
    raise ConformanceError(f"Unknown constraint type {type(constraint).__name__}.")


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def check_method(method_cls: type[Method], *, params: dict[str, Any] | None = None,
                 target: Target | None = None) -> None:
    """Run the conformance checks on ``method_cls`` (with its ``quick_params`` plus ``params``)."""
    failures: list[str] = []
    if not (isinstance(method_cls, type) and issubclass(method_cls, SynthesisMethod)):
        raise ConformanceError(f"check_method expects a SynthesisMethod subclass. Got {method_cls!r}.")
    for attribute in ("name", "paper"):
        if not getattr(method_cls, attribute):
            failures.append(f"class attribute {attribute!r} is empty")
    try:
        default = method_cls()
    except Exception as exc:  # noqa: BLE001 - report any failure of the contract
        raise ConformanceError(f"{method_cls.__name__}() must construct with defaults only: {exc!r}") from exc
    if type(default)(**default.get_params()).get_params() != default.get_params():
        failures.append("get_params() does not round-trip through the constructor")

    settings = {**method_cls.quick_params, **(params or {})}
    method = method_cls(**settings)
    if method.get_params() != {**default.get_params(), **settings}:
        failures.append("the constructor does not store its arguments unchanged")
    if method_cls.is_oracle:
        method = method.with_ground_truth(TrojanSpec("smiley", "patch", "smiley", target=1))
    target = target or tiny_target()
    before, rng_before, np_before = _state(target.model), torch.get_rng_state(), np.random.get_state()[1].copy()
    try:
        first = method.synthesize(target, 1, 3, seed=0)
        second = method.synthesize(target, 1, 3, seed=0)
        conditional = method.synthesize(target, 1, 2, seed=1, source_class=2)
    except Exception as exc:  # noqa: BLE001
        raise ConformanceError(f"{method_cls.__name__} failed to synthesize on a tiny model: {exc!r}") from exc
    if first.dtype != torch.float32:
        failures.append(f"images must be float32, got {first.dtype}")
    if conditional.shape[0] != 2:
        failures.append("source_class changed the number of images")
    if not torch.equal(first, second):
        failures.append("not deterministic: the same seed gave different images")
    if not torch.equal(torch.get_rng_state(), rng_before) or not np.array_equal(np.random.get_state()[1], np_before):
        failures.append("the global random state changed (draw randomness from the generator given)")
    after = _state(target.model)
    if any(not torch.equal(before[k], after[k]) for k in before) or target.model.training:
        failures.append("the audited model was changed (weights, buffers or train mode)")
    if any(p.grad is not None for p in target.model.parameters()):
        failures.append("gradients were left on the audited model's parameters")

    for name, constraint in method_cls.parameter_constraints.items():
        bad = copy.deepcopy(method).set_params(**{name: _bad_value(constraint)})  # constructors stay inert
        try:
            bad.synthesize(target, 1, 1, seed=0)
            failures.append(f"bad value for {name!r} was accepted")
        except ConfigError as exc:
            if f"The {name!r} parameter of {method_cls.__name__}" not in str(exc):
                failures.append(f"bad {name!r} rejected with an unclear message: {exc}")
    if failures:
        raise ConformanceError(f"{method_cls.__name__} breaks the method contract: " + "; ".join(failures) + ".")


__all__ = ["ConformanceError", "check_method", "tiny_target"]
