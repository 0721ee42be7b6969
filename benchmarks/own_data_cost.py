"""Cost of auditing a user's own data on a torchvision network (a measurement, not a test).

Writes an ImageFolder (6 classes of procedurally rendered world scenes, ``--per-class`` images each, written at
``--write-size`` px, alternating PNG and JPEG, so that the shorter-side resize and centre crop run) into a
temporary folder, opens it with :class:`~trojanbench.data.ImageFolderData` at ``--image-size``, and, per
random-weight ``torchvision:<model>`` (``num_classes=6``), prints:

1. data loading: images/s through ``ImageFolderData.batches`` (batches of 64, ``--workers`` workers, a fresh
   DataLoader per pass as in a run, one untimed pass first) against the model's forward rate (eval, no_grad,
   batch 32), their ratio and which is slower (loading should not be the bottleneck);
2. the forward+backward rate (gradient with respect to the input, batch 8, the work a synthesis step does) and,
   per tool in ``--tools``, seconds per rediscovery cell (``--n-images`` images, one patch trojan) with quick
   settings: ``warm-up`` is an untimed-in-``s/cell`` first call on 1 image with ``steps``/``adv_steps`` set to
   1 (imports, first-call costs and one-off work such as loading the patch generator or SNAFUE's patch-pool
   embedding, computed into a temporary on-disk cache), ``s/cell`` the full cell after it; ``x fwd+bwd`` is
   ``s/cell`` divided by the time of one forward+backward image, a work-unit ratio that holds on a noisy machine
   where seconds do not; the range and shape of the returned images are printed as a sanity check;
3. with ``--full``, the same cells with the tools' default (non-quick) settings.

A tool that raises has its error printed in the table; the others still run. Ratios are measured in one run.

    python benchmarks/own_data_cost.py                                   # resnet18, quick, 224 px, 2 threads
    python benchmarks/own_data_cost.py --models resnet18,resnet50 --tools neural_cleanse,snafue
    python benchmarks/own_data_cost.py --full --image-size 128 --workers 4 --threads 4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trojanbench.config import TrojanSpec
from trojanbench.data import ImageFolderData
from trojanbench.methods import Target
from trojanbench.models import load_model
from trojanbench.tasks.rediscovery.synthesis import make_method, synthesize_for_trojan
from trojanbench.world import OBJECT_CLASSES, generate_scenes

TOOLS = ("adversarial_patch", "neural_cleanse", "tabor", "target_fourier_fv", "inner_fourier_fv", "target_cppn_fv",
         "inner_cppn_fv", "rfla_perturb", "rfla_gen", "snafue", "random_noise", "dataset_exemplars")
CLASSES = 6
LOAD_BATCH = 64
FORWARD_BATCH = 32
BACKWARD_BATCH = 8
WARMUP_KEYS = ("steps", "adv_steps")
"""Hyperparameters set to 1 for the warm-up call (every code path and one-off cost, a fraction of the work)."""
TROJAN = TrojanSpec(name="mushroom", kind="patch", trigger="mushroom", target=0, patch_scale=(0.3, 0.4))


def write_folder(root: Path, per_class: int, size: int) -> Path:
    """``root/<class>/<i>.png|jpg``: ``per_class`` world scenes of each of the first six classes."""
    for label, name in enumerate(OBJECT_CLASSES[:CLASSES]):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        scenes = generate_scenes("train", per_class, seed=11, size=size, label=label).images
        pixels = (scenes.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for i, image in enumerate(pixels):
            Image.fromarray(image).save(folder / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    return root


def timed(fn, min_seconds: float = 2.0, min_reps: int = 2) -> float:
    """Seconds per call of ``fn`` (after one untimed call), repeated for at least ``min_seconds``."""
    fn()
    reps, start = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < min_seconds:
        fn()
        reps += 1
    return (time.perf_counter() - start) / reps


def loading_rate(data: ImageFolderData) -> tuple[float, int]:
    """Images per second through :meth:`ImageFolderData.batches` over every file of every split."""
    entries = [entry for split in ("train", "val", "test") for entry in data.files[split]]
    chunks = [entries[i:i + LOAD_BATCH] for i in range(0, len(entries), LOAD_BATCH)]
    count = 0

    def one_pass() -> None:
        nonlocal count
        count = sum(len(batch) for batch, _ in data.batches(chunks))

    return len(entries) / timed(one_pass, min_seconds=3.0), count


def forward_rate(model: torch.nn.Module, size: int) -> float:
    images = torch.rand(FORWARD_BATCH, 3, size, size)

    def forward() -> None:
        with torch.no_grad():
            model(images)

    return FORWARD_BATCH / timed(forward)


def backward_rate(model: torch.nn.Module, size: int) -> float:
    """Images per second of forward+backward to the input (the model frozen, as the tools see it)."""
    images = torch.rand(BACKWARD_BATCH, 3, size, size)

    def step() -> None:
        x = images.clone().requires_grad_(True)
        model(x).log_softmax(1)[:, 0].sum().backward()

    return BACKWARD_BATCH / timed(step)


def describe(images) -> str:
    if not isinstance(images, torch.Tensor):
        return f"not a tensor: {type(images).__name__}"
    if images.numel() == 0:
        return f"empty {tuple(images.shape)}"
    low, high = images.min().item(), images.max().item()
    flag = "" if (np.isfinite(low) and np.isfinite(high) and low >= 0 and high <= 1) else " OUT OF [0,1]"
    return f"[{low:.2f},{high:.2f}] {tuple(images.shape)}{flag}"


def run_cells(target: Target, tools: list[str], quick: bool, n_images: int, per_image_fb: float) -> list[str]:
    print(f"  rediscovery cells, {'quick' if quick else 'default'} settings, {n_images} images, "
          f"trojan {TROJAN.name!r} (target {TROJAN.target}):")
    print(f"  {'tool':<20}{'warm-up':>9}{'s/cell':>9}{'x fwd+bwd':>11}  images")
    failures, total = [], 0.0
    for name in tools:
        try:
            method = make_method(name, quick=quick)
            shortest = {key: 1 for key in WARMUP_KEYS if key in method.get_params()}
            start = time.perf_counter()
            synthesize_for_trojan(make_method(name, shortest, quick=quick), target, TROJAN, n_images=1, seed=0)
            first = time.perf_counter() - start
            start = time.perf_counter()
            images = synthesize_for_trojan(method, target, TROJAN, n_images=n_images, seed=1)
            seconds = time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001 - report the tool's failure and go on with the others
            message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            print(f"  {name:<20}{'FAILED':>9}  {message[:160]}")
            failures.append(f"{name}: " + "".join(traceback.format_exception(exc)))
            continue
        total += seconds
        print(f"  {name:<20}{first:>9.2f}{seconds:>9.2f}{seconds / per_image_fb:>11.0f}  {describe(images)}",
              flush=True)
    print(f"  all tools: {total:.1f} s per trojan (timed cells)")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18", help="comma-separated torchvision names (default resnet18)")
    parser.add_argument("--image-size", type=int, default=224, help="side the folder is opened at (default 224)")
    parser.add_argument("--write-size", type=int, default=256, help="side the images are written at (default 256)")
    parser.add_argument("--per-class", type=int, default=40, help="images per class (default 40)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated (default: 10 tools, 2 baselines)")
    parser.add_argument("--n-images", type=int, default=10, help="images per cell (default 10)")
    parser.add_argument("--full", action="store_true", help="also the cells with default (non-quick) settings")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tools = [t for t in args.tools.split(",") if t]

    with tempfile.TemporaryDirectory(prefix="own_data_cost_") as tmp:
        os.environ["TROJANBENCH_CACHE_DIR"] = str(Path(tmp) / "cache")  # cold one-off costs, no stale entries
        start = time.perf_counter()
        root = write_folder(Path(tmp) / "folder", args.per_class, args.write_size)
        written = time.perf_counter() - start
        data = ImageFolderData.open(root, image_size=args.image_size, workers=args.workers)
        counts = {split: len(entries) for split, entries in data.files.items()}
        print(f"folder: {CLASSES} classes x {args.per_class} images at {args.write_size} px (written in "
              f"{written:.1f} s), opened at {args.image_size} px, splits {counts}; {args.workers} worker(s), "
              f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")
        load_per_s, loaded_count = loading_rate(data)
        sample = data.labelled("val", 8, seed=0)
        print(f"loading: {load_per_s:.1f} images/s ({loaded_count} images per pass, batches of {LOAD_BATCH}); "
              f"val sample {describe(sample.images)}, skipped {len(data.skipped)}")
        failures = []
        for model_name in [m for m in args.models.split(",") if m]:
            torch.manual_seed(0)
            loaded = load_model(f"torchvision:{model_name}", num_classes=data.num_classes)
            start = time.perf_counter()
            target = Target.from_image_folder(loaded, data)
            built = time.perf_counter() - start
            fwd = forward_rate(target.model, args.image_size)
            fb = backward_rate(target.model, args.image_size)
            slower = "loading" if load_per_s < fwd else "the forward pass"
            print(f"\n== torchvision:{model_name} (random weights, {data.num_classes} classes) at {args.image_size} px"
                  f" ==\n  target: {len(target.clean_images)} clean images, {len(target.natural_patches)} patches "
                  f"{tuple(target.natural_patches.shape[2:])} px, built in {built:.1f} s")
            print(f"  {'rate':<34}{'images/s':>10}")
            print(f"  {'loading (batches, workers)':<34}{load_per_s:>10.1f}")
            print(f"  {'forward (eval, no_grad, batch 32)':<34}{fwd:>10.1f}")
            print(f"  {'forward+backward (batch 8)':<34}{fb:>10.1f}")
            print(f"  loading / forward = {load_per_s / fwd:.2f} -> {slower} is slower"
                  f"{' (loading is the bottleneck)' if load_per_s < fwd else ''}; forward / forward+backward = "
                  f"{fwd / fb:.2f}")
            failures += run_cells(target, tools, True, args.n_images, 1 / fb)
            if args.full:
                failures += run_cells(target, tools, False, args.n_images, 1 / fb)
        for failure in failures:
            print("\n" + failure)


if __name__ == "__main__":
    main()
