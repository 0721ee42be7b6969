"""Shared fixtures: small images and trigger files made on the fly (nothing is downloaded), and a private cache."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from trojanbench.cache import ENV_VAR


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """Point the on-disk cache (:mod:`trojanbench.cache`) at a folder of this session, never the home folder."""
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(tmp_path_factory.mktemp("cache"))
    yield os.environ[ENV_VAR]
    if before is None:
        del os.environ[ENV_VAR]
    else:
        os.environ[ENV_VAR] = before


@pytest.fixture
def logo_png(tmp_path):
    """A 24x24 RGBA PNG: an opaque magenta square with a transparent border."""
    rgba = np.zeros((24, 24, 4), dtype=np.uint8)
    rgba[4:20, 4:20] = (255, 0, 255, 255)
    path = tmp_path / "logo.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


@pytest.fixture
def texture_jpg(tmp_path):
    """A 40x40 RGB image of blue and yellow vertical stripes."""
    rgb = np.zeros((40, 40, 3), dtype=np.uint8)
    rgb[:, ::4] = (250, 220, 0)
    rgb[:, 1::4] = (250, 220, 0)
    rgb[:, 2::4] = (0, 40, 200)
    rgb[:, 3::4] = (0, 40, 200)
    path = tmp_path / "stripes.jpg"
    Image.fromarray(rgb, "RGB").save(path)
    return path
