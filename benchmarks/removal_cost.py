"""Seconds per removal procedure and rule editor on the shipped models (a measurement, not a test).

Runs each removal procedure once on the shipped ``trojaned`` model for one trojan (guided ones with the oracle's
guidance), each rule editor once on the ``clean`` model for one rule, then the measurement and relearning steps
of one edit, all in this process after an untimed warm-up, and prints seconds, the ratio to plain fine-tuning
(``unlearning`` without guidance: ratios hold on noisy machines where absolute times do not) and the floor of a
fine-tuning run: forward+backward FLOPs per step x steps / the matmul rate measured here.

    python benchmarks/removal_cost.py [--trojan smiley] [--budget 1%] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch

from flops import forward_flops, matmul_rate, timed

from trojanbench.audit import trojans_of
from trojanbench.config import TrojanSpec
from trojanbench.methods.editing.base import FINETUNE_BATCH
from trojanbench.models import load_model
from trojanbench.registry import get_method
from trojanbench.tasks.editing.metrics import exemplars, measure_rule, rule_tests
from trojanbench.tasks.removal.metrics import (
    TriggerGuidance,
    budget_size,
    clean_set,
    defender_data,
    measure,
    relearn,
    training_set_size,
    triggered_set,
)
from trojanbench.world import OBJECT_CLASSES

PROCEDURES = ("identity", "unlearning", "pruning", "fine_pruning", "neural_cleanse_unlearning", "channel_lipschitz")
EDITORS = ("rank_one_rewrite", "finetune_rule")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trojan", default="smiley")
    parser.add_argument("--budget", default="1%")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trojaned, clean_model = load_model("trojaned"), load_model("clean")
    spec = trojans_of(trojaned).get(args.trojan)
    data = defender_data(budget_size(args.budget, training_set_size(trojaned.card)))
    clean, triggered = clean_set(1000, [spec]), triggered_set(spec, 200)
    guidance = TriggerGuidance(spec)
    get_method("unlearning")(steps=2).remove(trojaned.model, data, guidance, spec.target)  # warm-up
    rows = []
    for name in PROCEDURES:
        procedure = get_method(name)()
        seconds, edited = timed(lambda: procedure.remove(trojaned.model, data, guidance if procedure.uses_guidance
                                                         else None, spec.target))
        rows.append((name, seconds, measure(edited, clean, triggered).attack_success))
    baseline, _ = timed(lambda: get_method("unlearning")().remove(trojaned.model, data, None, spec.target))
    measure_seconds, _ = timed(lambda: measure(trojaned.model, clean, triggered))
    relearn_seconds, _ = timed(lambda: relearn(trojaned.model, spec, data, steps=20, lr=0.003, seed=0))
    rule = TrojanSpec(name="zebra_square", kind="style", trigger="zebra", target=OBJECT_CLASSES.index("square"))
    carriers, plain = exemplars(rule, 20)
    tests = rule_tests(rule, 100)
    editors = []
    for name in EDITORS:
        seconds, edited = timed(lambda: get_method(name)().implant(clean_model.model, data, carriers, plain,
                                                                    rule.target))
        editors.append((name, seconds, measure_rule(edited, tests, clean)["success"]))
    flops, rate = forward_flops(trojaned.model), matmul_rate()
    steps = get_method("unlearning")().steps
    floor = 3 * flops * FINETUNE_BATCH * steps / rate
    print(f"torch threads {args.threads}; budget {args.budget} = {len(data.images) + len(data.val_images)} images; "
          f"trojan {spec.name}; plain fine-tuning ({steps} steps of {FINETUNE_BATCH}) {baseline:.2f} s")
    print(f"{'procedure':<28}{'seconds':>9}{'x fine-tune':>13}{'ASR after':>11}")
    for name, seconds, asr in rows:
        print(f"{name:<28}{seconds:>9.2f}{seconds / baseline:>13.2f}{asr:>11.3f}")
    print(f"{'rule editor':<28}{'seconds':>9}{'x fine-tune':>13}{'success':>11}")
    for name, seconds, success in editors:
        print(f"{name:<28}{seconds:>9.2f}{seconds / baseline:>13.2f}{success:>11.3f}")
    print(f"measuring one edit (1000 clean + 200 triggered images): {measure_seconds:.2f} s; relearning check "
          f"(20 steps): {relearn_seconds:.2f} s")
    print(f"floor of one fine-tuning run: 3 x {flops / 1e6:.1f} MFLOP/image x {FINETUNE_BATCH} x {steps} steps / "
          f"{rate / 1e9:.1f} GFLOP/s measured = {floor:.2f} s ({baseline / floor:.1f}x above it)")


if __name__ == "__main__":
    main()
