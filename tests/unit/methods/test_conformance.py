"""Every registered method of every family passes the conformance checks of :mod:`trojanbench.testing`: one test
per (method, check), and the checks catch what they are meant to."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch

from trojanbench.errors import ConfigError
from trojanbench.methods import AttributionMethod, Interval, ReplacementMethod, SynthesisMethod, Target
from trojanbench.methods.editing import RemovalProcedure
from trojanbench.methods.replacement import NetworkReplacement
from trojanbench.params import require
from trojanbench.registry import get_method, method_names
from trojanbench.testing import FAMILIES, ConformanceError, check_method, method_checks, tiny_target

FAST_STEPS = 5


def fast_params(cls) -> dict:
    """The method's ``quick_params`` with every step count (``steps``, ``*_steps``) cut to at most
    ``FAST_STEPS``, as scikit-learn's common tests cut ``max_iter``: the checks test the contract, not quality."""
    settings = {**cls().get_params(), **cls.quick_params}
    fast = dict(cls.quick_params)
    for name, constraint in cls.parameter_constraints.items():
        value = settings.get(name)
        if (name == "steps" or name.endswith("_steps")) and isinstance(constraint, Interval) \
                and constraint.kind is int and isinstance(value, int) and value > FAST_STEPS:
            fast[name] = max(FAST_STEPS, constraint.low or 0)
    return fast


@functools.cache
def checks_of(name: str) -> dict:
    """The checks of a registered method, built once so that its checks share one set of runs."""
    cls = get_method(name)
    return dict(method_checks(cls, params=fast_params(cls)))


METHOD_CHECKS = [(name, check) for family in FAMILIES for name in method_names(family)
                 for check, _ in method_checks(get_method(name))]


@pytest.mark.parametrize("name, check", METHOD_CHECKS, ids=[f"{n}-{c}" for n, c in METHOD_CHECKS])
def test_method_check(name, check):
    checks_of(name)[check]()


def test_every_family_has_its_checks():
    for family in FAMILIES:
        names = [name for name, _ in METHOD_CHECKS if get_method(name).family == family]  # as collected: other
        assert names, family                                                                # tests add plugins
        checks = [check for method, check in METHOD_CHECKS if method == names[0]]
        assert "check_constraints_declared" in checks and f"check_{family}_deterministic" in checks


@pytest.mark.parametrize("name", method_names("synthesis"))
def test_registered_method_conforms(name):
    check_method(get_method(name))


class _Broken(SynthesisMethod):
    name = "broken_for_test"
    paper = "test"
    parameter_constraints = {}

    def __init__(self, scale: float = 2.0):
        self.scale = scale

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        return torch.rand(n_images, 3, target.image_size, target.image_size) * self.scale  # global RNG, out of range


def test_check_method_reports_broken_rules():
    with pytest.raises(ConformanceError, match="failed to synthesize"):
        check_method(_Broken)


_calls = itertools.count()


class _Nondeterministic(SynthesisMethod):
    name = "nondeterministic_for_test"
    paper = "test"

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        fresh = torch.Generator().manual_seed(next(_calls))
        return torch.rand(n_images, 3, target.image_size, target.image_size, generator=fresh)


class _Mutating(SynthesisMethod):
    name = "mutating_for_test"
    paper = "test"

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        target.model.fc.bias.data += 1.0
        return torch.rand(n_images, 3, target.image_size, target.image_size, generator=generator)


class _Unchecked(SynthesisMethod):
    name = "unchecked_for_test"
    paper = "test"
    parameter_constraints = {"steps": Interval(int, 1, None)}

    def __init__(self, steps: int = 3):
        self.steps = steps

    def validate(self):  # forgets to check its constraints
        pass

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        return torch.rand(n_images, 3, target.image_size, target.image_size, generator=generator)


@pytest.mark.parametrize("cls, message", [(_Nondeterministic, "not deterministic"),
                                          (_Mutating, "the audited model was changed"),
                                          (_Unchecked, "bad value for 'steps' was accepted")])
def test_check_method_catches_broken_rules(cls, message):
    from trojanbench.models import CompactResNet

    fresh = Target.from_model(CompactResNet(16, width=4), n_clean=32, n_patches=8)
    with pytest.raises(ConformanceError, match=message):
        check_method(cls, target=fresh)


def test_synthesize_validates_arguments():
    noise = get_method("random_noise")()
    target = tiny_target()
    for kwargs, message in [({"target_class": 16}, "target_class must be an int in \\[0, 15\\]"),
                            ({"n_images": 0}, "n_images must be an int"),
                            ({"seed": -1}, "seed must be an int"),
                            ({"source_class": "x"}, "source_class must be")]:
        args = {"target_class": 1, "n_images": 2, "seed": 0, **kwargs}
        with pytest.raises(ConfigError, match=message):
            noise.synthesize(target, **args)


# --- the checks of the other families catch what they are meant to ------------------------------------------


class _Undeclared(SynthesisMethod):
    name = "undeclared_for_test"
    paper = "test"

    def __init__(self, steps: int = 3):  # no constraint declared for steps
        self.steps = steps

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        return torch.rand(n_images, 3, target.image_size, target.image_size, generator=generator)


class _NoisyMaps(AttributionMethod):
    name = "noisy_maps_for_test"
    paper = "test"

    def _attribute(self, model, images, target_class, generator):
        return torch.rand(images.shape[0], *images.shape[2:], generator=torch.Generator().manual_seed(next(_calls)))


class _InPlaceRemoval(RemovalProcedure):
    name = "in_place_for_test"
    paper = "test"

    def remove(self, model, data, guidance, target_class, seed=0):  # edits the model it was given
        with torch.no_grad():
            model.fc.bias += 1.0
        return model


class _OverBudget(ReplacementMethod):
    name = "over_budget_for_test"
    paper = "test"

    def _replace(self, model, data, budget, seed):
        return NetworkReplacement(model)  # the whole network, whatever the budget


@pytest.mark.parametrize("cls, message", [(_Undeclared, r"\['steps'\] have no declared constraint"),
                                          (_NoisyMaps, "not deterministic: the same seed gave different maps"),
                                          (_InPlaceRemoval, "returned the input model itself"),
                                          (_InPlaceRemoval, "the model was changed"),
                                          (_OverBudget, "the replacement exceeds its budget")])
def test_family_checks_catch_broken_rules(cls, message):
    with pytest.raises(ConformanceError, match=message):
        check_method(cls)


def test_method_checks_are_chosen_by_family():
    names = [name for name, _ in method_checks(_OverBudget)]
    assert names[0] == "check_attributes" and "check_replacement_budget" in names
    assert not any(name.startswith("check_synthesis") for name in names)
    with pytest.raises(ConformanceError, match="expects a Method subclass"):
        list(method_checks(int))


def test_one_wording_for_every_constraint():
    with pytest.raises(ConfigError, match=r"^The 'steps' parameter of TABOR must be an int in \[1, inf\)\. "
                                          r"Got 0 instead\.$"):
        require("steps", 0, Interval(int, 1, None), owner="TABOR")
    with pytest.raises(ConfigError, match=r"^steps must be an int in \[1, inf\)\. Got 0 instead\.$"):
        require("steps", 0, Interval(int, 1, None))
    with pytest.raises(ConfigError, match="Got True instead"):
        require("steps", True, Interval(int, 1, None))
    value = require("steps", np.int64(3), Interval(int, 1, None))
    assert value == 3 and type(value) is int
