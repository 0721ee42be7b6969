"""Every registered synthesis method passes the shared conformance checks."""

from __future__ import annotations

import itertools

import pytest
import torch

from trojanbench.errors import ConfigError
from trojanbench.methods import Interval, SynthesisMethod, Target
from trojanbench.registry import get_method, method_names
from trojanbench.testing import ConformanceError, check_method, tiny_target


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
