"""The on-disk tensor cache: where it lives, hits and misses, keys that follow content, and the failures it
survives (a corrupt entry, an unwritable folder) or is told to skip (turned off)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from trojanbench.cache import DISABLED, ENV_VAR, cache_dir, cached, digest


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


class Counted:
    """A computation that counts its calls."""

    def __init__(self, value: torch.Tensor):
        self.value, self.calls = value, 0

    def __call__(self) -> torch.Tensor:
        self.calls += 1
        return self.value.clone()


def lookup(compute, shape=(2, 3), dtype=torch.float32, version=1, **depends_on):
    return cached("test", version, compute, shape=shape, dtype=dtype, **depends_on)


def test_the_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.setenv(ENV_VAR, DISABLED)
    assert DISABLED == "off" and cache_dir() is None
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "trojanbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "trojanbench"


def test_a_miss_computes_and_stores_and_a_hit_reads_it_back(folder):
    compute = Counted(torch.randn(2, 3))
    first, second = lookup(compute, pictures=torch.ones(4)), lookup(compute, pictures=torch.ones(4))
    assert compute.calls == 1 and torch.equal(first, compute.value) and torch.equal(second, compute.value)
    assert [path.suffix for path in folder.iterdir()] == [".safetensors"]


def test_the_key_follows_content_and_version(folder):
    compute = Counted(torch.randn(2, 3))
    lookup(compute, pictures=torch.ones(4), setting=1)
    lookup(compute, pictures=torch.ones(4, dtype=torch.float64), setting=1)
    lookup(compute, pictures=torch.ones(4), setting=2)
    lookup(compute, pictures=torch.ones(4), setting=1, version=2)
    lookup(compute, pictures=torch.ones(4), setting=1)
    assert compute.calls == 4 and len(list(folder.iterdir())) == 4


def test_a_network_stands_in_by_its_weights():
    network = torch.nn.Linear(3, 2)
    same = torch.nn.Linear(3, 2).requires_grad_(False)
    same.load_state_dict(network.state_dict())
    assert digest(network) == digest(same)
    with torch.no_grad():
        same.bias[0] += 1e-6
    assert digest(network) != digest(same)


@pytest.mark.parametrize("corrupt", [lambda data: b"", lambda data: b"not a safetensors file",
                                     lambda data: data[:len(data) // 2]], ids=["empty", "garbage", "truncated"])
def test_a_corrupt_entry_is_recomputed_and_rewritten(folder, caplog, corrupt):
    compute = Counted(torch.randn(2, 3))
    lookup(compute)
    entry = next(folder.iterdir())
    entry.write_bytes(corrupt(entry.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="trojanbench.cache"):
        assert torch.equal(lookup(compute), compute.value)
    assert compute.calls == 2 and "unreadable" in caplog.text
    caplog.clear()
    assert torch.equal(lookup(compute), compute.value)
    assert compute.calls == 2 and not caplog.text


@pytest.mark.parametrize("stored", [torch.zeros(3, 2), torch.zeros(2, 3, dtype=torch.float64)], ids=["shape", "dtype"])
def test_an_entry_that_holds_something_else_is_recomputed(folder, caplog, stored):
    lookup(Counted(stored), shape=tuple(stored.shape), dtype=stored.dtype)
    compute = Counted(torch.randn(2, 3))
    with caplog.at_level(logging.WARNING, logger="trojanbench.cache"):
        assert torch.equal(lookup(compute), compute.value)
    assert compute.calls == 1 and "not torch.float32 (2, 3)" in caplog.text


def test_an_unwritable_folder_warns_once_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "a_file" / "cache"))  # a folder inside a file cannot be made
    compute = Counted(torch.randn(2, 3))
    with caplog.at_level(logging.WARNING, logger="trojanbench.cache"):
        values = [lookup(compute, setting=setting) for setting in (1, 2, 1)]
    assert all(torch.equal(value, compute.value) for value in values) and compute.calls == 3
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert ENV_VAR in caplog.text


def test_turned_off_it_computes_every_time_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, DISABLED)
    monkeypatch.chdir(tmp_path)
    compute = Counted(torch.randn(2, 3))
    assert torch.equal(lookup(compute), compute.value) and torch.equal(lookup(compute), compute.value)
    assert compute.calls == 2 and not list(Path(tmp_path).iterdir())
