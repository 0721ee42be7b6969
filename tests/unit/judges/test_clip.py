"""The CLIP judge (open_clip) on a small CLIP built from a config with random weights: what it computes is a vote per
image, the same from a cold and a warm cache, named options get text evidence and a user's image does not, and
every bad setting is refused in one line before anything runs. (Whether a *trained* CLIP's verdicts can be trusted
on a run's questions is what its validity battery measures in every run.)"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from clip_model import TINY_CLIP, write_tiny_clip
from trojanbench.cache import ENV_VAR
from trojanbench.errors import (CheckpointError, ConfigError, MissingExtraError, UnknownNameError,
                                 UnsafeCheckpointError)
from trojanbench.judges import Question, get_judge
from trojanbench.judges.base import option_views
from trojanbench.judges.clip import ClipJudge
from trojanbench.world import generate_scenes

OPTIONS = ("smiley", "mushroom", "cherry", "lightning", "heart", "sun", "key", "tree")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("clip"))


def fresh(tiny_clip) -> ClipJudge:
    config, weights = tiny_clip
    return ClipJudge(weights=str(weights), model=str(config))


def question(options=OPTIONS, truth=0) -> Question:
    return Question("t", "patch", tuple(options), truth_index=truth, seed=0)


def test_votes_are_distributions_and_identical_from_a_cold_and_a_warm_cache(tiny_clip, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    images = generate_scenes("val", 4, seed=3).images
    cold = fresh(tiny_clip).votes(images, question())
    warm = fresh(tiny_clip).votes(images, question())
    assert cold.shape == (4, len(OPTIONS)) and torch.allclose(cold.sum(1), torch.ones(4))
    assert torch.equal(cold, warm)
    assert len(list(tmp_path.glob("clip-bank-*.safetensors"))) == len(OPTIONS)


def test_images_at_another_size_are_windowed_to_the_networks_input(tiny_clip):
    judge = fresh(tiny_clip)
    assert judge.window_side == TINY_CLIP["vision_cfg"]["image_size"]
    large = torch.nn.functional.interpolate(generate_scenes("val", 2, seed=4).images, size=(160, 160))
    assert np.isclose(judge.score(large, question()).sum(), 1.0)


@torch.no_grad()
def test_only_named_options_get_text_evidence(tiny_clip, logo_png):
    """A built-in concept is judged by its pictures and its name; a user's trigger image by its pictures alone."""
    judge, images = fresh(tiny_clip), generate_scenes("val", 2, seed=5).images
    asked = question(("smiley", str(logo_png)))
    embedded = judge.window_embeddings(images)
    pictures = judge.picture_evidence(embedded, asked)
    text, named = judge.text_evidence(embedded, asked)
    assert named.tolist() == [True, False]
    scores = judge.option_scores(images, asked)
    assert torch.allclose(scores[:, 1], pictures[..., 1].amax(1) * judge.logit_scale)
    assert torch.allclose(scores[:, 0], ((pictures[..., 0] + text[..., 0]) / 2).amax(1) * judge.logit_scale)


def test_text_evidence_moves_the_vote_toward_the_option_it_names(tiny_clip, monkeypatch):
    """With the pictures' evidence equal for every option, the option whose name matches the image wins."""
    judge = fresh(tiny_clip)
    images = option_views("patch", "smiley", 3)
    embedded = judge.window_embeddings(images)
    monkeypatch.setattr(judge, "picture_evidence", lambda e, q: torch.zeros(*e.shape[:2], len(q.options)))
    original = judge.text_embedding

    def text_embedding(prompts):  # "smiley" is named by what the images embed to; the others by noise
        if any("smiley" in p for p in prompts):
            return torch.nn.functional.normalize(embedded.mean((0, 1)), dim=0)
        return original(prompts)

    monkeypatch.setattr(judge, "text_embedding", text_embedding)
    assert int(judge.score(images, question()).argmax()) == 0


def test_provenance_names_the_architecture_and_the_weights_hash(tiny_clip):
    from trojanbench.models import file_sha256

    judge = fresh(tiny_clip)
    assert judge.provenance() == {"network": f"open_clip:{tiny_clip[0]}", "sha256": file_sha256(tiny_clip[1])}
    assert judge.settings == {"weights": str(tiny_clip[1]), "model": str(tiny_clip[0])}


def test_bad_settings_are_refused_in_one_line(tiny_clip, tmp_path):
    config, weights = tiny_clip
    with pytest.raises(ConfigError, match="--clip-weights FILE"):
        ClipJudge().check()
    pickle = tmp_path / "clip.pt"
    pickle.write_bytes(b"not read")
    with pytest.raises(UnsafeCheckpointError, match="pickle-based checkpoint.*weights_only=True"):
        ClipJudge(weights=str(pickle), model=str(config)).check()
    with pytest.raises(CheckpointError, match="No checkpoint file at"):
        ClipJudge(weights=str(tmp_path / "none.safetensors"), model=str(config)).check()
    with pytest.raises(UnknownNameError, match="Did you mean: ViT-B-32"):
        ClipJudge(weights=str(weights), model="ViT-B-3").check()
    with pytest.raises(ConfigError, match=r"no setting\(s\) \['weight'\]; it takes weights, model"):
        get_judge("clip", {"weight": str(weights)})


def test_weights_of_another_architecture_name_the_mismatch(tiny_clip, tmp_path):
    other = {**TINY_CLIP, "embed_dim": 16}
    other_config, other_weights = write_tiny_clip(tmp_path / "other", config=other)
    renamed = other_config.rename(other_config.with_name("other-clip.json"))
    with pytest.raises(CheckpointError, match=r"shape mismatch: .*\(file \(64, 16\), model \(64, 32\)\)"):
        ClipJudge(weights=str(other_weights), model=str(tiny_clip[0])).check()
    assert renamed.is_file()


def test_without_open_clip_the_error_names_the_extra(tiny_clip, monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(MissingExtraError, match=r"trojanbench\[clip\]"):
        fresh(tiny_clip).check()


# --- from the command line: one line, exit code 2, nothing written ---------------------------------------------

def test_the_command_line_refuses_a_clip_judge_without_weights_and_stray_settings(tmp_path, tiny_clip):
    from cli_checks import invoke, refused

    out = tmp_path / "out"
    refused(invoke("run", "--quick", "--judges", "clip", "--out", out), "--clip-weights FILE")
    refused(invoke("run", "--quick", "--clip-weights", tiny_clip[1], "--out", out),
            "gives settings to judge(s) ['clip'], which the run does not use")
    refused(invoke("run", "--quick", "--judge-setting", "clip-weights", "--out", out), "must read JUDGE.KEY=VALUE")
    refused(invoke("check-judges", "--judges", "clip", "--clip-weights", tmp_path / "no.safetensors"),
            "No checkpoint file at")
    assert not (out / "results.sqlite").exists()
