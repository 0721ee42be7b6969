"""Loop rate of every synthesis method with a ``steps`` hyperparameter against the audited model's raw rate
(a measurement, not a test).

A method's batch is the number of images its loop sends through the model per optimization step (counted by
a hook on the model: images forwarded with gradients enabled, divided by ``steps``); its image-steps per
second are those images over the seconds of one ``synthesize`` call for the first trojan of the shipped
``trojaned`` model (after an untimed one-step call). The raw rate is the model's batched forward+backward
(gradient with respect to the input, as the methods take it) on random images of the same batch and size,
timed right after, in the same process and at the same ``--threads``. A ratio of 1 means the loop spends
all its time in the model. ``--profile`` adds, for each loop below ``--goal`` of its raw rate, the operators
with the most self CPU time (torch.profiler, on a separate run).

    python benchmarks/synthesis_loop_rate.py                        # default settings, 1 thread
    python benchmarks/synthesis_loop_rate.py --quick --threads 2
    python benchmarks/synthesis_loop_rate.py --methods target_cppn_fv,target_fourier_fv --profile
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time

import torch
from torch.profiler import profile

from trojanbench.audit import trojans_of
from trojanbench.methods import Target
from trojanbench.models import load_model
from trojanbench.registry import method_names
from trojanbench.tasks.rediscovery import make_method, synthesize_for_trojan


@contextlib.contextmanager
def counting_images(model: torch.nn.Module):
    """Yield a dict that counts the images ``model`` forwards with gradients enabled (and their side)."""
    seen = {"images": 0, "size": 0}

    def count(_module, inputs, _output):
        if torch.is_grad_enabled():
            seen["images"] += inputs[0].shape[0]
            seen["size"] = inputs[0].shape[-1]

    handle = model.register_forward_hook(count)
    try:
        yield seen
    finally:
        handle.remove()


def raw_rate(model: torch.nn.Module, batch: int, size: int, repeats: int = 10) -> float:
    """Images per second of the model's forward+backward to the input, on random ``[batch, 3, size, size]``."""
    images = torch.rand(batch, 3, size, size, requires_grad=True)

    def step():
        images.grad = None
        model(images).sum().backward()

    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return batch * repeats / (time.perf_counter() - start)


def top_operators(run, k: int = 5) -> str:
    """The ``k`` operators with the most self CPU time in ``run()``, with their shares."""
    with profile() as profiled:
        run()
    events = sorted(profiled.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return ", ".join(f"{e.key} {e.self_cpu_time_total / total:.0%}" for e in events[:k])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="the methods' quick settings")
    parser.add_argument("--methods", help="comma-separated subset (default: every method with 'steps')")
    parser.add_argument("--n-images", type=int, default=10)
    parser.add_argument("--goal", type=float, default=0.85, help="the ratio --profile explains below")
    parser.add_argument("--profile", action="store_true", help="top operators of each loop below --goal")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    loaded = load_model("trojaned")
    target = Target.from_model(loaded)
    trojan = trojans_of(loaded).trojans[0]
    names = args.methods.split(",") if args.methods else [
        name for name in method_names("synthesis") if "steps" in make_method(name).get_params()]
    print(f"{args.threads} thread(s); {'quick' if args.quick else 'default'} settings; {args.n_images} images; "
          f"trojan {trojan.name!r}")
    print(f"{'method':<20}{'batch':>7}{'image-steps/s':>15}{'raw rate':>10}{'ratio':>7}")
    for name in names:
        synthesize_for_trojan(make_method(name, {"steps": 1}), target, trojan, n_images=args.n_images)
        method = make_method(name, quick=args.quick)
        run = functools.partial(synthesize_for_trojan, method, target, trojan, n_images=args.n_images)
        with counting_images(target.model) as seen:
            start = time.perf_counter()
            run()
            seconds = time.perf_counter() - start
        if not seen["images"]:
            print(f"{name:<20} sends no images through the model with gradients")
            continue
        batch = round(seen["images"] / method.get_params()["steps"])
        loop = seen["images"] / seconds
        raw = raw_rate(target.model, batch, seen["size"])
        print(f"{name:<20}{batch:>7}{loop:>15.1f}{raw:>10.1f}{loop / raw:>7.2f}")
        if args.profile and loop / raw < args.goal:
            print(f"    {top_operators(run)}")


if __name__ == "__main__":
    main()
