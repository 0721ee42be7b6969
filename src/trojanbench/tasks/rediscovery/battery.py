"""The judge-validity battery in a rediscovery run: computed for every judge on every question of the run (no tool
involved, so it is cheap), stored once per judge, question and audited model, and read back per trojan.

A trojan's row holds each check's worst seed (the smallest margin past its bar), so a row passes only where every
seed passes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ...engine.cells import content_key
from ...judges.battery import BATTERY_VERSION, run_battery
from ...progress import Step

log = logging.getLogger(__name__)

CHECK_LABELS = {
    "oracle_top1": "oracle top-1", "oracle_p_true": "oracle p(true)", "null_noise": "noise",
    "null_flat": "flat colours", "null_scenes": "empty scenes", "null_scenes_perturbed": "empty scenes, L∞ 4/255",
    "confusion": "confusion diagonal", "stability": "stable under blur, JPEG, shift",
    "dose_response": "dose: largest rise"}
"""The checks in the order the report shows them, with their column headers."""


def battery_key(judge, question, trojan, model_sha256: str) -> str:
    """What a battery row depends on: the battery's version, the judge's network, the question, the trojan, the
    audited model (the perturbed null is computed on it)."""
    return content_key([BATTERY_VERSION, judge.name, judge.provenance(), question.to_dict(), trojan.to_dict(),
                        model_sha256])


def compute_battery(plan, store, questions: dict, progress=None) -> None:
    """Run the battery of every judge of ``plan`` on every question (``{(trojan, seed): Question}``) not yet in
    ``store``, naming each on the run's ``progress`` display as it starts."""
    done, cells = store.battery_keys(), len(plan.cells)
    for judge in plan.judges:
        start, computed = time.perf_counter(), 0
        for trojan in plan.trojans:
            for seed in plan.suite.seeds:
                question = questions[(trojan.name, seed)]
                key = battery_key(judge, question, trojan, plan.loaded.sha256)
                if key in done:
                    continue
                if progress is not None:
                    progress(cells, cells, Step(f"judge battery: {judge.name} · {trojan.name} · seed {seed}"))
                began = time.perf_counter()
                checks = run_battery(judge, question, trojan, plan.loaded.model)
                store.record_battery(key, judge.name, trojan.name, seed, [c.to_dict() for c in checks],
                                     time.perf_counter() - began)
                computed += 1
        if computed:
            log.info("judge battery: %s on %d questions (%.1f s)", judge.name, computed, time.perf_counter() - start)


def per_trojan(rows: dict[tuple[str, int], list[dict]]) -> dict[str, dict[str, Any]]:
    """``{trojan: {"checks": {name: worst seed's check}, "seeds": n, "passed": bool}}`` from one judge's rows
    ``{(trojan, seed): checks}``."""
    out: dict[str, dict[str, Any]] = {}
    for (trojan, _), checks in sorted(rows.items()):
        entry = out.setdefault(trojan, {"checks": {}, "seeds": 0})
        entry["seeds"] += 1
        for check in checks:
            kept = entry["checks"].get(check["name"])
            if kept is None or check["margin"] < kept["margin"]:
                entry["checks"][check["name"]] = check
    for entry in out.values():
        entry["passed"] = all(check["passed"] for check in entry["checks"].values())
    return out


def battery_lines(judge: str, table: dict[str, dict[str, Any]]) -> list[str]:
    """The battery of one judge in words: how many trojans pass every check, and each failing check."""
    if not table:
        return []
    passing = [trojan for trojan, entry in table.items() if entry["passed"]]
    lines = [f"judge battery ({judge}): every check passed on {len(passing)} of {len(table)} trojans"
             + (f" ({', '.join(passing)})" if passing else "")]
    for name, label in CHECK_LABELS.items():
        failing = {t: e["checks"][name] for t, e in table.items()
                   if name in e["checks"] and not e["checks"][name]["passed"]}
        if failing:
            values = ", ".join(f"{t} {c['value']:.2f}" for t, c in failing.items())
            lines.append(f"  {label} (bar {next(iter(failing.values()))['bar']}) failed on {len(failing)}: {values}")
    return lines
