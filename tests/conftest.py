"""Shared fixtures: small images and trigger files made on the fly (nothing is downloaded), a private cache, and
the network guard: a test fails if it, or any Python process it starts, opens a socket beyond the loopback."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trojanbench.cache import ENV_VAR

NETGUARD = Path(__file__).parent / "netguard"
sys.path.insert(0, str(NETGUARD))
import tb_netguard  # noqa: E402  (lives beside this file, on the path just set)

# before any test runs: this process and every Python process started from it refuse and record such sockets
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NETGUARD), os.environ.get("PYTHONPATH")]))
os.environ[tb_netguard.LOG_VARIABLE] = tempfile.mkstemp(prefix="trojanbench-netguard-", suffix=".jsonl")[1]
tb_netguard.install()


@pytest.fixture(autouse=True)
def no_network_beyond_loopback():
    """Fail the test during which a socket beyond the loopback was refused (the guard records each one)."""
    log = os.environ[tb_netguard.LOG_VARIABLE]
    _, start = tb_netguard.read(log)
    yield
    records, _ = tb_netguard.read(log, start)
    if records:
        pytest.fail("During this test (or in a process an earlier one left running) these sockets beyond the "
                    f"loopback were refused:\n{tb_netguard.describe(records)}", pytrace=False)


def pytest_sessionfinish(session):
    """Fail the session over any refused socket, also one outside a test (collection, a late background process)."""
    log = os.environ[tb_netguard.LOG_VARIABLE]
    records, _ = tb_netguard.read(log)
    if records:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        sys.stderr.write(f"\nNetwork guard: {len(records)} socket(s) beyond the loopback were refused in this test "
                         f"run:\n{tb_netguard.describe(records)}\n")
    else:
        os.unlink(log)


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
