"""The removal section of the report: one table per data budget, normalized scores per kind of trojan, the
clean-model damage, a guided-versus-control figure, and the Markdown / JSON / CSV forms of the same numbers."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...engine.runs import finite_or_none, run_document, run_header, run_of
from ...figures import removal_bars
from ...engine.stats import cells_text, interval_text
from .results import ANCHOR, METRIC_LABELS, METRICS, RemovalResults

REMOVAL_CSV = "removal.csv"


def _relearning_reference(results: RemovalResults, budget: str) -> float | None:
    """Mean attack success the *clean* model reaches after the same poisoned relearning budget."""
    clean = results.summaries(budget, "clean").get((ANCHOR, "-"), {})
    summary = clean.get("relearned_attack_success")
    return summary.mean if summary else None


def _by_kind(results: RemovalResults, budget: str) -> dict[str, Any]:
    kinds = sorted(set(results.kinds.values()))
    table = {kind: results.normalized(budget, kind) for kind in kinds}
    entries = sorted({entry for values in table.values() for entry in values})
    return {"kinds": kinds, "rows": [{"label": f"{p} <- {s}", "values": [table[k].get((p, s)) for k in kinds]}
                                     for p, s in entries]}


def data(results: RemovalResults, files: Path) -> dict[str, Any]:
    """Everything the removal section shows, per budget (figures written into ``files``)."""
    budgets = []
    for budget in results.budgets:
        rows = results.rows(budget)
        damage = results.clean_damage(budget)
        for row in rows:
            row["clean_damage"] = damage.get((row["procedure"], row["source"]))
        figure = removal_bars(rows, files / f"removal-{budget.replace('%', 'pct')}.png",
                              title=f"Removal by guidance source, budget {budget}: mean fidelity over trojans")
        budgets.append({"budget": budget, "rows": rows, "verdict": results.verdict(budget),
                        "by_kind": _by_kind(results, budget),
                        "relearning_reference": _relearning_reference(results, budget),
                        "figure": figure.relative_to(files.parent).as_posix()})
    return {"budgets": budgets, "description": results.description(), "labels": METRIC_LABELS,
            **run_header(results), "missing_tools": run_of(results)["suite"].get("missing_tools", []),
            "failed": [c for c in results.cells if c.status != "ok"]}


def document(results: RemovalResults) -> dict[str, Any]:
    """The removal part of ``results.json``: config, per-budget rows (summaries, normalized, comparisons),
    verdicts and every per-trojan measure."""
    budgets = {}
    for budget in results.budgets:
        rows = []
        for row in results.rows(budget):
            rows.append({**{k: row[k] for k in ("procedure", "source", "role", "metrics", "clean_model", "n_cells",
                                                "failed")},
                         "normalized": asdict(row["normalized"]) if row["normalized"] else None,
                         "versus_random": asdict(row["versus_random"]) if row["versus_random"] else None})
        budgets[budget] = {"rows": rows, "verdict": results.verdict(budget)}
    return {**run_document(results), "budgets": budgets,
            "edits": [{k: finite_or_none(v) for k, v in r.items()} for r in results.records()]}


def exports(results: RemovalResults, folder: Path) -> list[Path]:
    """``removal.csv``: one row per edit and trojan (budget, model, procedure, source, trojan, kind, seed and every
    metric)."""
    path = folder / REMOVAL_CSV
    columns = ("budget", "model", "procedure", "source", "trojan", "kind", "seed", *METRICS)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(results.records())
    return [path]


def markdown(results: RemovalResults) -> list[str]:
    """The removal tables as Markdown lines, one per budget, with the cells each row rests on."""
    lines = ["## Removal: does a tool's output help remove the trojan?", "", results.description(), ""]
    for budget in results.budgets:
        lines += [f"### Budget {budget}", "",
                  "| edit | fidelity | 95% CI | worst | DER | ASR after | acc after | ASR relearned | normalized "
                  "| cells |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in results.rows(budget):
            m, cells = row["metrics"], cells_text(row["n_cells"], row["failed"])
            if not m:
                lines.append(f"| {row['label']} | failed | | | | | | | | {cells} |")
                continue
            fid = m.get("fidelity", {})
            norm = row["normalized"]
            lines.append(f"| {row['label']} | {fid.get('mean', math.nan):.3f} | "
                         f"{interval_text(fid.get('ci_low', math.nan), fid.get('ci_high', math.nan), '.2f')} | "
                         f"{fid.get('worst', math.nan):.3f} | "
                         + " | ".join(f"{m.get(k, {}).get('mean', math.nan):.3f}" for k in
                                      ("der", "attack_success", "clean_accuracy", "relearned_attack_success"))
                         + f" | {'' if not norm or math.isnan(norm.value) else f'{norm.value:.2f}'} | {cells} |")
        lines += ["", results.verdict(budget), ""]
    return lines
