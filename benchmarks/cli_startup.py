"""How long the command line takes to answer ``--help`` (a measurement, not a test; the goal is under a second).

Each command runs in a fresh interpreter, as a user's shell runs it; the median of a few runs is printed beside
the median of a bare ``python -c pass`` measured in the same run, so the ratio says what trojanbench itself adds.

    python benchmarks/cli_startup.py            # 5 runs of each
    python benchmarks/cli_startup.py --runs 11
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = [
    ["-c", "pass"],
    ["-m", "trojanbench.cli", "--help"],
    ["-m", "trojanbench.cli", "run", "--help"],
    ["-m", "trojanbench.cli", "ls", "--help"],
    ["-m", "trojanbench.cli", "survey", "--help"],
    ["-c", "import trojanbench"],
    ["-c", "import torch"],
]


def median_seconds(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    bare = median_seconds(COMMANDS[0], runs)
    for args in COMMANDS:
        seconds = median_seconds(args, runs)
        print(f"{' '.join(args):45s} {seconds:6.3f} s   {seconds / bare:5.1f}x bare python")


if __name__ == "__main__":
    main()
