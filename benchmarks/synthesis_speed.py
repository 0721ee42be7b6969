"""Speed of every synthesis method on the shipped trojaned model (a measurement, not a test).

Prints, per method: seconds per trojan, optimization steps per second (for methods with a ``steps``
hyperparameter), and achieved GFLOP/s as a fraction of this machine's float32 matmul rate measured in
the same process (FLOPs counted with torch's FlopCounterMode on a separate, untimed run).

    python benchmarks/synthesis_speed.py                 # default settings, one trojan per kind
    python benchmarks/synthesis_speed.py --quick --all   # quick settings, all 12 trojans
"""

from __future__ import annotations

import argparse
import time

from flops import matmul_rate
from torch.utils.flop_counter import FlopCounterMode

from trojanbench.audit import trojans_of
from trojanbench.methods import Target
from trojanbench.models import load_model
from trojanbench.registry import method_names
from trojanbench.engine.suite import first_of_each_kind
from trojanbench.tasks.rediscovery import make_method, synthesize_for_trojan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the methods' quick settings")
    parser.add_argument("--all", action="store_true", help="all trojans (default: the first of each kind)")
    parser.add_argument("--methods", help="comma-separated subset")
    parser.add_argument("--n-images", type=int, default=10)
    args = parser.parse_args()

    loaded = load_model("trojaned")
    target = Target.from_model(loaded)
    trojans = list(trojans_of(loaded).trojans)
    if not args.all:
        trojans = first_of_each_kind(trojans)
    names = args.methods.split(",") if args.methods else method_names("synthesis")
    peak = matmul_rate(1024) / 1e9
    print(f"float32 matmul rate: {peak:.1f} GFLOP/s; {len(trojans)} trojans; "
          f"{'quick' if args.quick else 'default'} settings; {args.n_images} images per trojan")
    print(f"{'method':<20}{'s/trojan':>10}{'steps/s':>10}{'GFLOP/s':>10}{'of peak':>9}")
    total = 0.0
    for name in names:
        method = make_method(name, quick=args.quick)
        start = time.perf_counter()
        for spec in trojans:
            synthesize_for_trojan(method, target, spec, n_images=args.n_images, seed=0)
        seconds = (time.perf_counter() - start) / len(trojans)
        total += seconds
        with FlopCounterMode(display=False) as counter:
            synthesize_for_trojan(method, target, trojans[0], n_images=args.n_images, seed=0)
        gflops = counter.get_total_flops() / 1e9
        steps = method.get_params().get("steps")
        rate = f"{steps / seconds:>10.1f}" if isinstance(steps, int) else f"{'-':>10}"
        print(f"{name:<20}{seconds:>10.2f}{rate}{gflops / seconds:>10.1f}{gflops / seconds / peak:>9.1%}")
    print(f"all methods: {total:.1f} s per trojan -> {total * 12 / 60:.1f} min for 12 trojans, one seed")


if __name__ == "__main__":
    main()
