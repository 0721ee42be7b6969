"""The appearance judge's banks come from the on-disk cache bit for bit as it computes them."""

from __future__ import annotations

import torch

from trojanbench.cache import DISABLED, ENV_VAR
from trojanbench.judges.appearance import AppearanceJudge
from trojanbench.judges.questions import Question
from trojanbench.world import generate_scenes


def scores_and_embedder_calls(images: torch.Tensor, question: Question) -> tuple[torch.Tensor, int]:
    """A fresh judge's logits for ``images`` and how many times it ran its embedder to get them."""
    judge = AppearanceJudge()
    calls = []
    hook = judge.embedder.register_forward_hook(lambda *_: calls.append(1))
    try:
        return judge.option_scores(images, question), len(calls)
    finally:
        hook.remove()


@torch.no_grad()
def test_scores_are_identical_with_a_cold_a_warm_and_no_cache(tmp_path, monkeypatch, logo_png):
    images = generate_scenes("val", 3, seed=5).images
    question = Question("t", "patch", ("smiley", str(logo_png)), truth_index=0, seed=0)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    cold, cold_calls = scores_and_embedder_calls(images, question)
    warm, warm_calls = scores_and_embedder_calls(images, question)
    monkeypatch.setenv(ENV_VAR, DISABLED)
    uncached, _ = scores_and_embedder_calls(images, question)
    assert torch.equal(cold, warm) and torch.equal(cold, uncached)
    assert (cold_calls, warm_calls) == (1 + 1 + 2 * 2, 1)  # the images; "nothing"; two embeddings per option
    assert len(list(tmp_path.glob("appearance-bank-*.safetensors"))) == 2

