"""Speed-up of the Ray executor with 2 workers over 1, on the same cells (a measurement, not a test).

Runs the quick grid of a few methods (no judging: only cell computation) through a local Ray instance
started with 1 CPU, then with 2 CPUs, in this process, and prints the ratio.

    python benchmarks/executor_scaling.py [--methods a,b,c]
"""

from __future__ import annotations

import argparse
import time

from trojanbench.engine.executors import LocalExecutor, RayExecutor
from trojanbench.tasks.rediscovery.task import cell_jobs, plan_run


def timed(executor, jobs) -> float:
    start = time.perf_counter()
    outcomes = list(executor.map(jobs))
    executor.close()
    failed = [o for o in outcomes if o.status != "ok"]
    if failed:
        raise SystemExit(f"{len(failed)} cells failed: {failed[0].reason}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="target_fourier_fv,adversarial_patch,tabor,snafue")
    args = parser.parse_args()
    plan = plan_run(None, quick=True, methods=args.methods.split(","), seeds=2)
    jobs = cell_jobs(plan, plan.cells)
    print(f"{len(jobs)} cells ({args.methods}; quick settings, one trojan per kind, 2 seeds)")
    local = timed(LocalExecutor(), jobs)
    one = timed(RayExecutor(num_cpus=1), jobs)
    two = timed(RayExecutor(num_cpus=2), jobs)
    print(f"local (in-process): {local:.1f} s")
    print(f"ray, 1 worker:      {one:.1f} s")
    print(f"ray, 2 workers:     {two:.1f} s   speed-up over 1 worker: {one / two:.2f}x")


if __name__ == "__main__":
    main()
