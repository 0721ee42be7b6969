"""A small finished run written straight through the store API (no model, no training): the survey's test bed.

Tools ``alpha`` and ``beta``, the ``random_noise`` baseline and the ``oracle`` on four default trojans and
``seeds`` seeds, with synthetic images (the oracle's are renders of the true trigger) and two judges whose
probabilities are drawn under a fixed seed (the oracle's favour the truth), plus a combination cell, which
has no images of its own and must never be shown to people.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trojanbench.config import default_trojan_suite
from trojanbench.judges.questions import build_question, option_picture
from trojanbench.survey.security import Limits
from trojanbench.tasks.rediscovery.store import CellRow, RediscoveryStore as Store

TROJANS = ("smiley", "clownfish", "jaguar", "fork")
METHODS = {"alpha": "tool", "beta": "tool", "random_noise": "baseline", "oracle": "oracle"}
JUDGES = ("concept", "appearance")
ADMIN = "admin-token-for-tests-0123456789"
"""The admin token of the served test studies."""
GENEROUS = Limits(per_address_per_minute=100_000, per_participant_per_minute=100_000)
"""Rate limits no functional test reaches (the load tests measure the real ones)."""


class ManualClock:
    """A study's clock, moved by hand (``clock.now += seconds``): leases and admin sessions expire without waiting."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def write_results(folder: str | Path, *, seeds: tuple[int, ...] = (0,), n_images: int = 10) -> Path:
    folder = Path(folder)
    store = Store(folder)
    specs = {spec.name: spec for spec in default_trojan_suite().trojans}
    run_id = store.start_run({"name": "survey-test", "methods": list(METHODS), "judges": list(JUDGES),
                              "seeds": list(seeds)}, {"trojanbench": "test"})
    rng = np.random.default_rng(7)
    for trojan in TROJANS:
        spec = specs[trojan]
        for seed in seeds:
            question = build_question(spec, seed)
            store.record_question(trojan, seed, question.to_dict())
            for method, role in METHODS.items():
                key = f"{method}-{trojan}-{seed}"
                if method == "oracle":
                    pixels = np.stack([(option_picture(spec.trigger, spec.kind, 64, np.random.default_rng(i)) * 255)
                                       .astype(np.uint8) for i in range(n_images)])
                else:
                    pixels = rng.integers(0, 256, (n_images, 64, 64, 3), dtype=np.uint8)
                image_file = store.save_images(key, pixels)
                scores = []
                for judge in JUDGES:
                    alpha = np.ones(8)
                    if method == "oracle":
                        alpha[question.truth_index] = 40
                    probabilities = rng.dirichlet(alpha)
                    p_true = float(probabilities[question.truth_index])
                    scores.append((judge, p_true, int(np.argmax(probabilities) == question.truth_index),
                                   [float(p) for p in probabilities], 0.01))
                store.record_cell(run_id, CellRow(key, method, role, {}, trojan, spec.kind, seed, "ok", None, 0.1,
                                                  image_file), scores)
            store.record_cell(run_id, CellRow(f"all-{trojan}-{seed}", "all", "combination", {}, trojan, spec.kind,
                                              seed, "ok", None, 0.0, None),
                              [(judge, 0.2, 0, [0.2] + [0.8 / 7] * 7, 0.0) for judge in JUDGES])
    store.finish_run(run_id)
    store.close()
    return folder
