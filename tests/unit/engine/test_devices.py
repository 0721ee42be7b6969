"""``--device``: the names it takes, what they mean on a machine with and without a GPU, and where a run's driver
keeps its model."""

from __future__ import annotations

import pytest
import torch

from trojanbench.engine.devices import check_device, driver_device, resolve_device
from trojanbench.engine.executors import check_executor, make_executor
from trojanbench.errors import ConfigError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_names_taken(name):
    check_device(name)


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cpu:0", "auto:1", "", "CUDA"])
def test_other_names_are_refused_naming_the_choices(name):
    with pytest.raises(ConfigError, match="choose auto .*cpu, cuda or cuda:N"):
        check_device(name)


def test_without_a_gpu_auto_is_the_cpu_and_cuda_is_refused(no_gpu):
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    with pytest.raises(ConfigError, match="torch sees no CUDA GPU.*use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        make_executor("local", device="cuda")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        check_executor("processes", workers=2, device="cuda:0")
    check_executor("ray", device="cuda")  # the cluster's GPUs are asked once it is reached


def test_with_gpus_auto_and_cuda_name_the_gpu_by_index(two_gpus):
    assert resolve_device("auto") == torch.device("cuda", 0) == resolve_device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="has 2 CUDA GPU\\(s\\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")
    assert make_executor("local", device="auto").cell_device == "cuda:0"


def test_the_driver_keeps_the_runs_device_except_on_ray():
    assert driver_device("local", "cuda") == "cuda" and driver_device("processes", "cpu") == "cpu"
    assert driver_device("ray", "cuda:1") == "auto" and driver_device("ray", "cpu") == "cpu"
