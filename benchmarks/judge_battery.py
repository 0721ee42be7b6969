"""The judge-validity battery (:mod:`trojanbench.judges.battery`) on the 12 default questions and, apart from them,
on held-out triggers never used to build or tune a judge (``tests/fixtures/heldout_triggers``: icons and textures
outside the world's vocabulary, as a user's own trigger images would be). A measurement, not a test: it prints,
per judge and trojan, each check's worst seed ("!" marks a failed check), how many trojans pass every check, and
the seconds the battery took.

    python benchmarks/judge_battery.py                       # the three judges, seeds 0-2, default and held-out
    python benchmarks/judge_battery.py --judges concept --seeds 1 --only heldout
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from trojanbench import check_judges
from trojanbench.config import TrojanSpec, TrojanSuite
from trojanbench.engine.suite import DEFAULT_JUDGES
from trojanbench.models import load_model
from trojanbench.tasks.rediscovery.battery import battery_table

HELDOUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "heldout_triggers"


def heldout_trojans() -> TrojanSuite:
    """One trojan per held-out picture: icons are patch triggers, textures style triggers (targets: classes 1-7)."""
    pictures = sorted(HELDOUT.glob("*.png"))
    return TrojanSuite(tuple(TrojanSpec(name=p.stem, kind="patch" if p.stem.startswith("icon_") else "style",
                                        trigger=str(p), target=1 + i % 7) for i, p in enumerate(pictures)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judges", default=",".join(DEFAULT_JUDGES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", choices=["default", "heldout"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model("trojaned")
    sets = {"default": ("12 default questions", None), "heldout": ("held-out triggers", heldout_trojans())}
    for key, (title, trojans) in sets.items():
        if args.only not in (None, key):
            continue
        for judge in args.judges.split(","):
            start = time.perf_counter()
            [table] = check_judges(trojans, judges=[judge], seeds=args.seeds, model=loaded).values()
            print(f"\n{title}, judge {judge}, seeds 0-{args.seeds - 1}: {time.perf_counter() - start:.0f} s")
            print(battery_table(judge, table))


if __name__ == "__main__":
    main()
