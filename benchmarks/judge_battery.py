"""The judge-validity battery (:mod:`trojanbench.judges.battery`) on the 12 default questions and, apart from them,
on held-out triggers never used to build or tune a judge (``tests/fixtures/heldout_triggers``: icons and textures
outside the world's vocabulary, as a user's own trigger images would be). A measurement, not a test: it prints,
per judge and trojan, each check's worst seed ("!" marks a failed check) and how many trojans pass every check.

    python benchmarks/judge_battery.py                       # both judges, seeds 0-2, default and held-out
    python benchmarks/judge_battery.py --judges concept --seeds 1 --only heldout
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from trojanbench.audit import trojans_of
from trojanbench.config import TrojanSpec
from trojanbench.judges import build_question, get_judge
from trojanbench.judges.battery import run_battery
from trojanbench.models import load_model
from trojanbench.tasks.rediscovery.battery import CHECK_LABELS, battery_lines, per_trojan

HELDOUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "heldout_triggers"


def heldout_trojans() -> list[TrojanSpec]:
    """One trojan per held-out picture: icons are patch triggers, textures style triggers (targets: classes 1-7)."""
    pictures = sorted(HELDOUT.glob("*.png"))
    return [TrojanSpec(name=p.stem, kind="patch" if p.stem.startswith("icon_") else "style", trigger=str(p),
                       target=1 + i % 7) for i, p in enumerate(pictures)]


def print_battery(title: str, judge_name: str, trojans: list[TrojanSpec], seeds: int, model) -> None:
    judge, rows, start = get_judge(judge_name), {}, time.perf_counter()
    for trojan in trojans:
        for seed in range(seeds):
            rows[(trojan.name, seed)] = [c.to_dict() for c in run_battery(judge, build_question(trojan, seed), trojan,
                                                                          model)]
    table = per_trojan(rows)
    print(f"\n{title}, judge {judge_name}: {len(rows)} questions in {time.perf_counter() - start:.0f} s")
    short = {name: label[:12] for name, label in CHECK_LABELS.items()}
    print(f"{'trojan':<18}" + "".join(f"{label:>14}" for label in short.values()) + f"{'half vis.':>12}")
    for trojan, entry in table.items():
        cells = "".join(f"{entry['checks'][n]['value']:>13.2f}{' ' if entry['checks'][n]['passed'] else '!'}"
                        for n in short)
        half = entry["checks"]["dose_response"]["detail"]["half_visibility"]
        print(f"{trojan:<18}{cells}{'-' if half is None else f'{half:.2f}':>12}")
    print("\n".join(battery_lines(judge_name, table)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judges", default="concept,appearance")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", choices=["default", "heldout"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model("trojaned")
    sets = {"default": ("12 default questions", list(trojans_of(loaded).trojans)),
            "heldout": ("held-out triggers", heldout_trojans())}
    for key, (title, trojans) in sets.items():
        if args.only in (None, key):
            for judge in args.judges.split(","):
                print_battery(title, judge, trojans, args.seeds, loaded.model)


if __name__ == "__main__":
    main()
