"""The localization section of the report: the leaderboard per metric, per-image box plots, the edge-detector
verdict, the recorded image sets, failed cells; and the Markdown / JSON forms of the same numbers."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ...engine.runs import failure_lines, finite_or_none, run_document, run_header, run_of
from ...figures import localization_boxplots
from .metrics import CHANCE, METRICS
from .results import METRIC_LABELS, REFERENCE, LocalizationResults

CSV_FILE = "localization.csv"
METRIC_LIMITS = {"rank_correlation": (-1.02, 1.02), "pointing_game": (-0.02, 1.02), "auroc": (-0.02, 1.02)}


def _localization_sets(localization: LocalizationResults) -> list[dict[str, Any]]:
    """The recorded image sets, with each trojan's target name and the attack success its model's card records."""
    from ...world import OBJECT_CLASSES

    recorded = run_of(localization)["provenance"].get("model", {}).get("attack_success", {})
    return [{**info, "target_name": OBJECT_CLASSES[info["target"]] if info["target"] < len(OBJECT_CLASSES) else "?",
             "attack_success": recorded.get(info["trojan"])}
            for info in sorted(localization.sets.values(), key=lambda i: (i["trojan"], i["seed"]))]


def data(localization: LocalizationResults, files: Path) -> dict[str, Any]:
    """The localization section: leaderboard rows, box plots, the edge-detector verdict, sets, failed cells."""
    rows = localization.rows()
    per_image = {metric: localization.per_image(metric) for metric in METRICS}
    values = {method: {metric: np.array(list(per_image[metric].get(method, {}).values())) for metric in METRICS}
              for method in localization.roles()}
    failed = [c for c in localization.cells if c.status != "ok"]
    figure = localization_boxplots(rows, values, files / "localization-boxplots.png", labels=METRIC_LABELS,
                                   chance=CHANCE, limits=METRIC_LIMITS,
                                   title=f"Per-image localization scores, {localization.description()}")
    return {"rows": rows, "metrics": METRICS, "labels": METRIC_LABELS, "chance": CHANCE,
            "verdict": localization.verdict(), "description": localization.description(), "reference": REFERENCE,
            "figure": figure.relative_to(files.parent).as_posix(), "sets": _localization_sets(localization),
            "failed": failed, "failure_lines": failure_lines(failed), **run_header(localization)}


def document(localization: LocalizationResults) -> dict[str, Any]:
    """The localization part of ``results.json``: config, summaries, comparisons, verdict, sets, per-image scores."""
    rows = localization.rows()
    return {**run_document(localization),
            "summaries": {r["method"]: {"role": r["role"], "seconds_per_image": finite_or_none(r["seconds_per_image"]),
                                        **r["metrics"]} for r in rows},
            f"versus_{REFERENCE}": {r["method"]: asdict(r["versus_reference"]) for r in rows if r["versus_reference"]},
            "verdict": localization.verdict(), "sets": list(localization.sets.values()),
            "images": [{k: finite_or_none(v) for k, v in record.items()} for record in localization.records()]}


def markdown(localization: LocalizationResults) -> list[str]:
    """The localization leaderboard as Markdown lines: per metric mean, 95% interval, worst trojan; s/image."""
    head = " | ".join(f"{METRIC_LABELS[m]} mean | 95% CI | worst (trojan)" for m in METRICS)
    lines = ["## Localization: attribution tools vs planted patch triggers", "", localization.description(), "",
             f"| rank | method | role | {head} | s/image |", "|" + "---|" * (4 + 3 * len(METRICS))]
    rows = localization.rows()
    for row in rows:
        cells = " | ".join(f"{s['mean']:.3f} | [{s['ci_low']:.2f}, {s['ci_high']:.2f}] | {s['worst']:.3f} "
                           f"({s['worst_trojan']})" for s in (row["metrics"][m] for m in METRICS))
        lines.append(f"| {row['rank'] or ''} | {row['method']} | {row['role']} | {cells} | "
                     f"{row['seconds_per_image']:.4f} |")
    failed = sum(row["failed"] for row in rows)
    lines += ["", localization.verdict()] + ([f"{failed} failed cell(s), scored as a flat map (chance)."]
                                             if failed else [])
    return lines


def exports(localization: LocalizationResults, folder: Path) -> list[Path]:
    """``localization.csv``: one row per method, trojan and image."""
    return [localization.to_csv(folder / CSV_FILE)]
