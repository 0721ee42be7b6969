"""The conformance checks stop a method that hangs, name the registry-name rule, and catch a method that edits the
target's data."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from trojanbench.methods import SynthesisMethod
from trojanbench.testing import ConformanceError, check_method, method_checks

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
def sleeping(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    from faulty_plugins import Sleeping

    return Sleeping


def test_a_hanging_method_fails_its_checks_within_the_time_limit(sleeping):
    start = time.monotonic()
    with pytest.raises(ConformanceError) as raised:
        check_method(sleeping, params={"seconds": 600.0}, time_limit=1)
    assert time.monotonic() - start < 30, "the 600 s sleep must be cut off at the 1 s limit, once"
    message = str(raised.value)
    assert "check_synthesis_output did not finish within its time limit of 1 s" in message
    assert "time_limit=SECONDS" in message
    assert "did not finish synthesize() on a tiny model within the time limit of 1 s" in message  # the later checks


def test_each_check_of_a_hanging_method_fails_on_its_own(sleeping):
    checks = dict(method_checks(sleeping, params={"seconds": 600.0}, time_limit=1))
    checks["check_attributes"]()  # shared checks do not run the method
    start = time.monotonic()
    for name in ("check_synthesis_deterministic", "check_synthesis_side_effects"):
        with pytest.raises(ConformanceError, match="time limit of 1 s"):
            checks[name]()
    assert time.monotonic() - start < 30


class _Named(SynthesisMethod):
    paper = "test"

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        return torch.rand(n_images, 3, target.image_size, target.image_size, generator=generator)


@pytest.mark.parametrize("name", ["MyTool", "my-tool", "2tool", "mypkg.tools:MyTool"])
def test_a_registry_name_must_match_the_name_rule(name):
    cls = type("Badly", (_Named,), {"name": name})
    checks = dict(method_checks(cls))
    with pytest.raises(ConformanceError, match=r"must match \^\[a-z\]\[a-z0-9_\]\*\$"):
        checks["check_attributes"]()


class _EditsTarget(_Named):
    name = "edits_target"

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        target.clean_images.mul_(0.5)  # the auditor's data is the target's, not the method's
        return super()._synthesize(target, target_class, n_images, generator, source_class)


def test_a_method_that_edits_the_targets_images_breaks_the_contract():
    with pytest.raises(ConformanceError, match="the input clean images were changed"):
        dict(method_checks(_EditsTarget))["check_synthesis_side_effects"]()
