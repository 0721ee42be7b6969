"""The judge-validity battery in a rediscovery run: computed for every judge on every question of the run (no tool
involved, so it is cheap), stored once per judge, question and audited model, and read back per trojan.

A trojan's row holds each check's worst seed (the smallest margin past its bar), so a row passes only where every
seed passes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable

from ...engine.cells import content_key
from ...judges import build_question
from ...judges.battery import BATTERY_VERSION, run_battery
from ...progress import Step

log = logging.getLogger(__name__)

CHECK_LABELS = {
    "distinct_options": "options distinct", "oracle_top1": "oracle top-1", "oracle_p_true": "oracle p(true)",
    "null_noise": "noise", "null_flat": "flat colours", "null_scenes": "empty scenes",
    "null_scenes_perturbed": "empty scenes, L∞ 4/255",
    "null_scenes_attacked": "empty scenes, judge attacked",
    "confusion": "confusion diagonal", "stability": "stable under blur, JPEG, shift",
    "dose_response": "dose: largest rise"}
"""The checks in the order the report shows them, with their column headers."""
SHORT_LABELS = {"distinct_options": "distinct",
                "oracle_top1": "top-1", "oracle_p_true": "p(true)", "null_noise": "noise", "null_flat": "flat",
                "null_scenes": "empty", "null_scenes_perturbed": "moved", "null_scenes_attacked": "attacked",
                "confusion": "confusion", "stability": "stable", "dose_response": "dose"}
"""The same, as the text table's narrow headers (the report and the lines below it say what each means)."""


def battery_key(judge, question, trojan, model_sha256: str, data=None) -> str:
    """What a battery row depends on: the battery's version, the judge's network, the question, the trojan, the
    audited model (the perturbed null is computed on it) and the user's image folder its pictures come from."""
    parts = [BATTERY_VERSION, judge.name, judge.provenance(), question.to_dict(), trojan.to_dict(), model_sha256]
    return content_key(parts if data is None else [*parts, data.reference])


def compute_battery(plan, store, questions: dict, progress=None) -> None:
    """Run the battery of every judge of ``plan`` on every question (``{(trojan, seed): Question}``) not yet in
    ``store``, naming each on the run's ``progress`` display as it starts."""
    done, cells = store.battery_keys(), len(plan.cells)
    for judge in plan.judges:
        start, computed = time.perf_counter(), 0
        for trojan in plan.trojans:
            for seed in plan.suite.seeds:
                question = questions[(trojan.name, seed)]
                key = battery_key(judge, question, trojan, plan.loaded.sha256, plan.data)
                if key in done:
                    continue
                if progress is not None:
                    progress(cells, cells, Step(f"judge battery: {judge.name} · {trojan.name} · seed {seed}"))
                began = time.perf_counter()
                checks = run_battery(judge, question, trojan, plan.loaded.model, plan.data)
                store.record_battery(key, judge.name, trojan.name, seed, [c.to_dict() for c in checks],
                                     time.perf_counter() - began)
                computed += 1
        if computed:
            log.info("judge battery: %s on %d questions (%.1f s)", judge.name, computed, time.perf_counter() - start)


def judge_battery(judges: list, trojans: list, seeds: Iterable[int], model=None,
                  progress=None) -> dict[str, dict[str, dict[str, Any]]]:
    """Each judge's battery on the questions of ``trojans`` under ``seeds``, computed afresh and stored nowhere:
    ``{judge: per_trojan(...)}`` (what ``trojanbench check-judges`` prints); ``progress(done, total, step)`` is
    called after each question."""
    seeds = list(seeds)
    total, done, out = len(judges) * len(trojans) * len(seeds), 0, {}
    for judge in judges:
        rows = {}
        for trojan in trojans:
            for seed in seeds:
                checks = run_battery(judge, build_question(trojan, seed), trojan, model)
                rows[(trojan.name, seed)] = [check.to_dict() for check in checks]
                done += 1
                if progress is not None:
                    progress(done, total, Step(f"judge battery: {judge.name} · {trojan.name} · seed {seed}"))
        out[judge.name] = per_trojan(rows)
    return out


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


def battery_table(judge: str, table: dict[str, dict[str, Any]]) -> str:
    """One judge's battery as a text table: per trojan, each check's worst seed ("!": failed), the half-visibility
    point, then :func:`battery_lines` (where "moved" is the empty scenes moved toward the target
    class on the audited model, "attacked" the same toward the true option on the judge itself)."""
    width = max([8, *(len(trojan) + 2 for trojan in table)])
    lines = [f"{'trojan':<{width}}" + "".join(f"{SHORT_LABELS[n]:>10}" for n in CHECK_LABELS) + f"{'half vis.':>11}"]
    for trojan, entry in table.items():
        cells = "".join(f"{c['value']:>9.3f}{' ' if c['passed'] else '!'}" if (c := entry["checks"].get(n)) else
                        f"{'-':>10}" for n in CHECK_LABELS)
        dose = entry["checks"].get("dose_response")
        half = dose["detail"]["half_visibility"] if dose else None
        lines.append(f"{trojan:<{width}}{cells}{'-' if half is None else f'{half:.2f}':>11}")
    return "\n".join(lines + battery_lines(judge, table))


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
            values = ", ".join(f"{t} {c['value']:.3f}" for t, c in failing.items())  # 3 decimals: 0.599 < 0.6
            lines.append(f"  {label} (bar {next(iter(failing.values()))['bar']}) failed on {len(failing)}: {values}")
    return lines
