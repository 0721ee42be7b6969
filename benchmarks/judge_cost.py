"""Cost of the judges on real-size images (a measurement, not a test).

For each judge in ``--judges`` prints, on ``--n-images`` world scenes upscaled to ``--image-size`` px and one
8-option patch question:

1. ``banks s``: the one-off cost of its banks (the "nothing" bank and the 8 options' banks), computed into a
   temporary on-disk cache, as the first question of a run pays it;
2. ``img/s``: images judged per second once the banks exist (the rate a run's cells see);
3. ``floor img/s``: for an embedding judge, its network's measured forward rate on windows
   (:data:`~trojanbench.judges.embedding.N_WINDOWS` windows per image, batch 64) divided by the windows per image:
   the rate the judge would reach if embedding the windows were its only cost; ``of floor`` is ``img/s`` over it.

The CLIP judge is an ``open_clip`` ``--clip-model`` (default ViT-B-32) and the appearance judge's backbone a timm
``--backbone`` (default resnet50), both at random weights written to a temporary folder (nothing is downloaded:
costs do not depend on the weights' values). Ratios are measured in one run.

    python benchmarks/judge_cost.py                       # concept, appearance, appearance on resnet50, clip
    python benchmarks/judge_cost.py --judges clip --clip-model ViT-B-16 --threads 4
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from trojanbench.cache import ENV_VAR
from trojanbench.judges import Question, get_judge
from trojanbench.judges.embedding import N_WINDOWS, EmbeddingJudge, windows
from trojanbench.world import generate_scenes

OPTIONS = ("smiley", "mushroom", "cherry", "lightning", "heart", "sun", "key", "tree")
JUDGES = ("concept", "appearance", "appearance:backbone", "clip")
FORWARD_BATCH = 64


def random_clip(folder: Path, model: str) -> dict:
    """Settings of a clip judge on a random-init ``model`` saved under ``folder``."""
    import open_clip

    torch.manual_seed(0)
    logging.disable(logging.WARNING)  # open_clip warns on the root logger that no weights were loaded: none wanted
    try:
        network = open_clip.create_model(model, pretrained=None, pretrained_text=False, load_weights=False)
    finally:
        logging.disable(logging.NOTSET)
    path = folder / f"{model}.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, path)
    return {"weights": str(path), "model": model}


def random_backbone(folder: Path, name: str) -> dict:
    """Settings of an appearance judge on a random-init timm ``name`` saved under ``folder``."""
    import timm

    torch.manual_seed(0)
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model(name, pretrained=False).state_dict().items()}, path)
    return {"backbone": f"timm:{name}", "weights": str(path)}


def timed(fn, min_seconds: float = 2.0, min_reps: int = 2) -> float:
    """Median seconds per call of ``fn`` over at least ``min_reps`` calls and ``min_seconds``."""
    times, start = [], time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_seconds:
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def window_floor(judge: EmbeddingJudge, images: torch.Tensor) -> float:
    """Images per second if embedding their windows were the judge's only cost."""
    cut = windows(images, judge.window_side).flatten(0, 1)
    batch = cut[:FORWARD_BATCH]
    with torch.no_grad():
        seconds = timed(lambda: judge.embed(batch))
    return len(batch) / seconds / N_WINDOWS


def measure(label: str, judge, images: torch.Tensor, question: Question) -> str:
    start = time.perf_counter()
    judge.score(images, question)  # builds the banks
    banks = time.perf_counter() - start
    with torch.no_grad():
        rate = len(images) / timed(lambda: judge.score(images, question))
    if isinstance(judge, EmbeddingJudge):
        floor = window_floor(judge, images)
        tail = f"{floor:12.1f} {rate / floor:9.2f}"
    else:
        tail = f"{'-':>12} {'-':>9}"
    return f"{label:<24} {banks:8.1f} {rate:8.1f} {tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judges", default=",".join(JUDGES), help=f"comma-separated (default {','.join(JUDGES)})")
    parser.add_argument("--image-size", type=int, default=224, help="side of the judged images (default 224)")
    parser.add_argument("--n-images", type=int, default=10, help="images per question (default 10)")
    parser.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    parser.add_argument("--backbone", default="resnet50", help="timm backbone of the appearance judge (resnet50)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = torch.nn.functional.interpolate(generate_scenes("val", args.n_images, seed=11).images,
                                             size=(args.image_size, args.image_size), mode="bilinear")
    question = Question("mushroom", "patch", OPTIONS, truth_index=1, seed=0)
    print(f"{args.n_images} images at {args.image_size} px, {len(OPTIONS)} options, {args.threads} threads")
    print(f"{'judge':<24} {'banks s':>8} {'img/s':>8} {'floor img/s':>12} {'of floor':>9}")
    with tempfile.TemporaryDirectory() as scratch:
        os.environ[ENV_VAR] = str(Path(scratch) / "cache")
        for entry in args.judges.split(","):
            if entry == "clip":
                label, judge = f"clip ({args.clip_model})", get_judge("clip", random_clip(Path(scratch),
                                                                                           args.clip_model))
            elif entry == "appearance:backbone":
                label = f"appearance ({args.backbone})"
                judge = get_judge("appearance", random_backbone(Path(scratch), args.backbone))
            else:
                label, judge = entry, get_judge(entry)
            print(measure(label, judge, images, question), flush=True)


if __name__ == "__main__":
    main()
