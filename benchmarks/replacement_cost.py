"""Seconds per replacement method on the shipped trojaned model (a measurement, not a test).

Draws the fit images once, then fits each replacement method at one budget in this process after an untimed
warm-up and prints seconds, the ratio to magnitude pruning (ratios hold on noisy machines where absolute times do
not), clean fidelity on 300 test scenes, and the floor of each distillation: forward+backward FLOPs per image x
batch x steps / the matmul rate measured here (pruned networks still run dense, so their floor is the full
network's).

    python benchmarks/replacement_cost.py [--budget 10%] [--n-fit 6000] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch
from flops import forward_flops, matmul_rate, timed

from trojanbench.methods.replacement import NetworkReplacement, ReplacementMethod
from trojanbench.methods.replacement.base import BATCH, count_nonzero_parameters
from trojanbench.models import load_model
from trojanbench.registry import make_method_of, method_names
from trojanbench.tasks.replacement.metrics import fit_data, parameter_budget
from trojanbench.tasks.removal.metrics import clean_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="10%")
    parser.add_argument("--n-fit", type=int, default=6000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("trojaned").model
    budget = parameter_budget(args.budget, count_nonzero_parameters(model))
    data_seconds, data = timed(lambda: fit_data(model, args.n_fit))
    test = clean_set(300, [])[0]
    reference = NetworkReplacement(model).predict(test)
    make_method_of("magnitude_pruning", {"steps": 2}, ReplacementMethod, "").replace(model, data, budget)  # warm-up
    rate = matmul_rate()
    rows = []
    for name in method_names("replacement"):
        method = make_method_of(name, {}, ReplacementMethod, "a replacement method")
        seconds, replacement = timed(lambda: method.replace(model, data, budget))
        fidelity = float((replacement.predict(test) == reference).float().mean())
        steps = method.get_params().get("steps")
        floor = None
        if steps is not None and isinstance(replacement, NetworkReplacement):
            floor = 3 * forward_flops(replacement.network) * BATCH * steps / rate
        rows.append((name, seconds, fidelity, replacement.parameter_count(), floor))
    baseline = next(seconds for name, seconds, *_ in rows if name == "magnitude_pruning")
    print(f"torch threads {args.threads}; budget {args.budget} = {budget} parameters; {args.n_fit} fit images drawn "
          f"in {data_seconds:.1f} s; matmul rate {rate / 1e9:.1f} GFLOP/s")
    print(f"{'method':<22}{'seconds':>9}{'x magnitude':>13}{'parameters':>12}{'clean fid.':>12}{'floor s':>9}"
          f"{'x floor':>9}")
    for name, seconds, fidelity, parameters, floor in rows:
        floors = f"{floor:>9.2f}{seconds / floor:>9.1f}" if floor else f"{'':>18}"
        print(f"{name:<22}{seconds:>9.2f}{seconds / baseline:>13.2f}{parameters:>12}{fidelity:>12.3f}{floors}")


if __name__ == "__main__":
    main()
