"""Safetensors checkpoint round trips and refusals."""

import json
import pickle

import pytest
import torch

from trojanbench.errors import CheckpointError, UnsafeCheckpointError
from trojanbench.models import (
    CompactResNet,
    file_sha256,
    load_checkpoint,
    load_state_dict_file,
    load_weights,
    read_card,
    save_checkpoint,
)

KWARGS = {"num_classes": 4, "width": 4, "image_size": 16}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = CompactResNet(**KWARGS)
    net.train()
    net(torch.rand(8, 3, 16, 16))  # move BN running stats away from their defaults
    path = save_checkpoint(
        net, tmp_path / "net.safetensors", {"role": "clean"}, architecture="compact_resnet", arch_kwargs=KWARGS
    )
    return net.eval(), path


def test_round_trip_gives_identical_outputs(saved):
    net, path = saved
    loaded, card = load_checkpoint(path)
    assert not loaded.training
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(loaded(x), net(x))


def test_card_fields_and_sha(saved):
    net, path = saved
    card = read_card(path)
    assert card["role"] == "clean"
    assert card["architecture"] == "compact_resnet"
    assert card["arch_kwargs"] == KWARGS
    assert card["weights_file"] == "net.safetensors"
    assert card["sha256"] == file_sha256(path)
    assert card["n_parameters"] == sum(p.numel() for p in net.parameters())
    assert sorted(p.name for p in path.parent.iterdir()) == ["net.json", "net.safetensors"]


def test_metadata_suffices_without_card(saved):
    net, path = saved
    path.with_suffix(".json").unlink()
    loaded, card = load_checkpoint(path)
    assert card["arch_kwargs"] == KWARGS and card["sha256"] == file_sha256(path)
    with pytest.raises(CheckpointError, match="net.json"):
        read_card(path)


def test_save_requires_safetensors_suffix(tmp_path):
    with pytest.raises(CheckpointError, match="must end with '.safetensors'"):
        save_checkpoint(CompactResNet(2, 2), tmp_path / "m.pt", {}, architecture="compact_resnet", arch_kwargs={})


def test_torch_save_file_refused_with_conversion_hint(saved, tmp_path):
    net, _ = saved
    pt = tmp_path / "model.pt"
    torch.save(net.state_dict(), pt)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(pt, architecture="compact_resnet", arch_kwargs=KWARGS)
    message = str(info.value)
    assert "never unpickles" in message and "model.pt" in message
    assert "save_file(torch.load('model.pt', weights_only=True), 'model.safetensors')" in message


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickle_renamed_to_safetensors_refused(tmp_path, writer):
    path = tmp_path / "sneaky.safetensors"
    if writer == "torch":
        torch.save({"w": torch.zeros(2)}, path)
    else:
        path.write_bytes(pickle.dumps({"w": [0.0]}, protocol=4))
    with pytest.raises(UnsafeCheckpointError, match="never unpickles"):
        load_checkpoint(path, architecture="compact_resnet", arch_kwargs=KWARGS)


def test_truncated_file_is_readable_error(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="is truncated or corrupted") as info:
        load_checkpoint(path)
    assert "net.safetensors" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\x01\x02garbage" * 50, b"\xff" * 8 + b"{not json"])
def test_garbage_is_readable_error(tmp_path, content):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="is truncated or corrupted"):
        load_checkpoint(path, architecture="compact_resnet", arch_kwargs=KWARGS)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint file"):
        load_checkpoint(tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_shape_mismatch_names_keys(saved):
    _, path = saved
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, arch_kwargs={"num_classes": 7, "width": 4})
    assert "fc.weight" in str(info.value) and "shape mismatch" in str(info.value)
    state = load_state_dict_file(path)
    state["extra.weight"] = state.pop("fc.bias")
    with pytest.raises(CheckpointError, match="missing: fc.bias; unexpected: extra.weight"):
        load_weights(CompactResNet(**KWARGS), state, source="test")


def test_sha_mismatch_refused(saved):
    _, path = saved
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="weights do not match their card"):
        load_checkpoint(path)
