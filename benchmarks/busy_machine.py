"""A run on a quiet machine and beside a busy one (a measurement, not a test).

Runs the rediscovery suite (``--quick`` by default) into a fresh folder with nothing else started, then again into
another fresh folder while a 2-thread torch process multiplies matrices beside it (as a build or a second
experiment would), and prints both times, their ratio, the failed cells of each (there must be none) and whether
the two runs' scores are identical (they must be: a run's limits measure work, not the clock). The on-disk cache is
warmed first, so that both timed runs find it in the same state.

    python benchmarks/busy_machine.py             # the quick suite
    python benchmarks/busy_machine.py --full      # the default suite (tens of minutes each)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trojanbench import run

BUSY = ("import torch\ntorch.set_num_threads(2)\nx = torch.randn(1024, 1024)\n"
        "while True:\n    x = torch.tanh(x @ x / 32)\n")


def timed_run(folder: Path, quick: bool) -> tuple[float, int, dict]:
    start = time.perf_counter()
    results = run(out=folder, quick=quick, report=False)
    seconds = time.perf_counter() - start
    scores = {(r["method"], r["trojan"], r["seed"], r["judge"]): r["p_true"] for r in results.records()}
    return seconds, sum(c.status != "ok" for c in results.cells), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the default suite instead of --quick")
    args = parser.parse_args()
    quick = not args.full
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if quick:
            timed_run(root / "warm-up", quick)
        quiet, quiet_failed, quiet_scores = timed_run(root / "quiet", quick)
        busy_process = subprocess.Popen([sys.executable, "-c", BUSY])
        try:
            busy, busy_failed, busy_scores = timed_run(root / "busy", quick)
        finally:
            busy_process.kill()
            busy_process.wait()
    print(f"{'quick' if quick else 'default'} suite, 1 torch thread per worker")
    print(f"quiet machine:                 {quiet:7.1f} s, {quiet_failed} failed cells")
    print(f"beside a 2-thread torch load:  {busy:7.1f} s, {busy_failed} failed cells   ratio {busy / quiet:.2f}x")
    print(f"identical scores: {quiet_scores == busy_scores}")


if __name__ == "__main__":
    main()
