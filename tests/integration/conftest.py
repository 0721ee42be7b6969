"""A tiny zoo built once per test session (the `zoo build --tiny` path, under a minute)."""

from __future__ import annotations

import pytest

from trojanbench.zoo import build_zoo


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-zoo")
    return build_zoo(out, profile="tiny")
