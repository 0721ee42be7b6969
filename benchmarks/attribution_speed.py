"""Seconds per image of every attribution method, on one patch trojan (a measurement, not a test).

Explains the target class on ``--n`` held-out images carrying the first patch trojan of the shipped
``trojaned`` model (or, with ``--random-model``, a random-weight CompactResNet(16 classes, width 32) and
a smiley patch), all methods in this process (each after an untimed warm-up call on 2 images), and prints
seconds per image, the ratio to saliency (one backward pass; ratios hold on noisy machines where absolute
times do not) and the localization scores.

    python benchmarks/attribution_speed.py [--random-model] [--n 8] [--methods a,b,c] [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys

import torch

from trojanbench.config import TrojanSpec
from trojanbench.methods.attribution import AttributionMethod
from trojanbench.registry import get_method, method_names
from trojanbench.tasks.localization.metrics import localization_set, score_attribution


def load(random_model: bool):
    if random_model:
        from trojanbench.models import CompactResNet

        torch.manual_seed(0)
        model = CompactResNet(num_classes=16, width=32).eval()
        spec = TrojanSpec("smiley", "patch", "smiley", target=6)
        return "random CompactResNet(num_classes=16, width=32)", model, spec
    from trojanbench.audit import trojans_of
    from trojanbench.models import load_model

    try:
        loaded = load_model("trojaned")
        patches = [t for t in trojans_of(loaded).trojans if t.kind == "patch"]
    except Exception as exc:  # noqa: BLE001 - the zoo may not be built yet; say so and stop
        sys.exit(f"Cannot load the shipped 'trojaned' model ({exc}). Build the zoo, or pass --random-model.")
    if not patches:
        sys.exit("The 'trojaned' model records no patch trojan; pass --random-model.")
    width = loaded.card.get("arch_kwargs", {}).get("width", "?")
    return f"zoo 'trojaned' (CompactResNet width {width}, sha256 {loaded.sha256[:12]})", loaded.model, patches[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--random-model", action="store_true", help="use a random CompactResNet(16, width=32)")
    parser.add_argument("--n", type=int, default=8, help="images (default 8)")
    parser.add_argument("--methods", default="", help="comma-separated names (default: all attribution methods)")
    parser.add_argument("--quick", action="store_true", help="use each method's quick_params")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import trojanbench.methods.attribution  # noqa: F401 - registers the family

    description, model, spec = load(args.random_model)
    names = args.methods.split(",") if args.methods else method_names("attribution")
    names = ["saliency"] + [n for n in names if n != "saliency"]
    data = localization_set(spec, n=args.n, seed=0)
    print(f"model: {description}; trojan {spec.name!r} ({spec.kind}, target {spec.target}); {args.n} images "
          f"{tuple(data.images.shape[2:])}; {torch.get_num_threads()} thread(s); "
          f"{'quick' if args.quick else 'default'} settings")
    print(f"{'method':<24}{'s/image':>10}{'x saliency':>12}{'AUROC':>8}{'rank corr':>11}{'pointing':>10}")
    reference = None
    for name in names:
        cls = get_method(name)
        if not issubclass(cls, AttributionMethod):
            continue
        method = cls(**(cls.quick_params if args.quick else {}))
        method.attribute(model, data.images[:2], data.target_class)  # warm-up (imports, first-call costs), untimed
        result = score_attribution(method, model, spec, n=args.n, batch_size=args.n, data=data)
        per_image = result["seconds_per_image"]
        reference = reference or per_image
        print(f"{name:<24}{per_image:>10.4f}{per_image / reference:>12.1f}{result['mean_auroc']:>8.3f}"
              f"{result['mean_rank_correlation']:>11.3f}{result['mean_pointing_game']:>10.3f}")


if __name__ == "__main__":
    main()
