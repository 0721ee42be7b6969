"""Speed-up of 2 workers (worker processes, and a local Ray instance) over the local executor, on the quick suite
(a measurement, not a test).

Runs the whole quick rediscovery suite (cells computed and judged, combinations, store) four times in this
process, each into a fresh folder: once to warm the on-disk cache (the appearance judge's banks, SNAFUE's pool),
then timed with the local executor, ``--executor processes`` and a local Ray instance, one torch thread per
worker. Prints the times, the ratios, and whether the runs' scores are identical (they must be).

    python benchmarks/executor_scaling.py [--workers 2] [--methods a,b,c]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from trojanbench import run


def timed_run(folder: Path, **options) -> tuple[float, dict]:
    start = time.perf_counter()
    results = run(out=folder, quick=True, report=False, **options)
    seconds = time.perf_counter() - start
    failed = [c for c in results.cells if c.status != "ok"]
    if failed:
        raise SystemExit(f"{len(failed)} cells failed: {failed[0].reason}")
    scores = {(r["method"], r["trojan"], r["seed"], r["judge"]): r["p_true"] for r in results.records()}
    return seconds, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="worker processes, and Ray's local CPUs")
    parser.add_argument("--methods", help="comma-separated subset of the default suite (default: all of it)")
    args = parser.parse_args()
    methods = args.methods.split(",") if args.methods else None
    with tempfile.TemporaryDirectory() as tmp:  # each run uses 1 torch thread per worker (the default policy)
        root = Path(tmp)
        timed_run(root / "warm-up", methods=methods)
        local, local_scores = timed_run(root / "local", methods=methods)
        processes, process_scores = timed_run(root / "processes", methods=methods, executor="processes",
                                              workers=args.workers)
        from trojanbench.engine.executors import RayExecutor

        ray_executor = RayExecutor(num_cpus=args.workers)  # started here so that the run uses these CPUs
        try:
            ray, ray_scores = timed_run(root / "ray", methods=methods, executor="ray")
        finally:
            ray_executor.close()
    print(f"quick suite ({len(local_scores)} cell-judge scores), 1 torch thread per worker")
    print(f"local executor:        {local:7.1f} s")
    print(f"{args.workers} worker processes:    {processes:7.1f} s   speed-up: {local / processes:.2f}x")
    print(f"ray, {args.workers} local workers:  {ray:7.1f} s   speed-up: {local / ray:.2f}x")
    print(f"identical scores: {local_scores == process_scores == ray_scores}")


if __name__ == "__main__":
    main()
