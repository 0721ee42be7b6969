"""The lm-rediscovery section of the report: per tool, recovery of the planted triggers and how often its
guesses elicit the targets, with intervals, worst trojan, per kind, and false discoveries on the decoys."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from ...engine.runs import finite_or_none, run_document, run_header
from ...engine.stats import cells_text, interval_text
from .results import LABELS, MEASURES, PRIMARY, LMRediscoveryResults

KINDS = ("token", "syntactic", "natural")
RECOVERY = ("exact", "multiple_choice", "recall", "token_f1")
"""The recovery measures the HTML table shows before the elicitation ones (BLEU: in the exports)."""
ELICITATION = ("reasr", "reasr_alone")
CSV_FILE = "lm_rediscovery.csv"
CSV_COLUMNS = ("label", "method", "role", "trojan", "kind", "topic", "seed", "status", "reason", "budget_used",
               "top_candidate", "false_discovery", *MEASURES)


def data(results: LMRediscoveryResults, files: Path | None = None) -> dict[str, Any]:
    return {"rows": results.rows(), "recovery": RECOVERY, "elicitation": ELICITATION, "labels": LABELS,
            "primary": PRIMARY, "kinds": KINDS,
            "description": results.description(), **run_header(results),
            "examples": _examples(results), "failed": [c for c in results.cells if c["status"] != "ok"]}


def _examples(results: LMRediscoveryResults) -> list[dict[str, Any]]:
    """Each tool's top candidate per trojan on the first seed, beside the true trigger: what the tools found."""
    seed = min((c["seed"] for c in results.cells), default=0)
    return [{"label": c["label"], "trojan": c["trojan"], "kind": c["kind"],
             "top": (c["measures"].get("candidates") or [{"text": ""}])[0]["text"],
             "reasr": c["measures"].get("reasr_best_of_k")}
            for c in results.cells if c["status"] == "ok" and c["seed"] == seed]


def document(results: LMRediscoveryResults) -> dict[str, Any]:
    """The lm-rediscovery part of ``results.json``: config, per-tool summaries and every cell's candidates and
    measures."""
    rows = [{**row, **{k: finite_or_none(row[k]) for k in ("gap", "false_discovery", "budget_used")}}
            for row in results.rows()]
    return {**run_document(results), "rows": rows, "cells": results.cells}


def exports(results: LMRediscoveryResults, folder: Path) -> list[Path]:
    """``lm_rediscovery.csv``: one row per tool, trojan and seed (its top candidate and every measure)."""
    path = folder / CSV_FILE
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for cell in results.cells:
            measures = cell["measures"]
            top = (measures.get("candidates") or [{"text": ""}])[0]["text"]
            writer.writerow({**cell, **{k: measures.get(k) for k in (*MEASURES, "budget_used", "false_discovery")},
                             "top_candidate": top})
    return [path]


def markdown(results: LMRediscoveryResults) -> list[str]:
    shown = [m for m in MEASURES if m != PRIMARY]
    lines = ["## LM rediscovery: invert a language model's trojan triggers", "", results.description(), "",
             f"| tool | role | {LABELS[PRIMARY]} | 95% CI | worst | " + " | ".join(LABELS[m] for m in shown)
             + " | gap | false disc. | cells |", "|---|---|---|---|---|" + "---|" * (len(shown) + 3)]
    for row in results.rows():
        m, cells = row["metrics"], cells_text(row["n_cells"], row["failed"])
        if PRIMARY not in m:
            lines.append(f"| {row['label']} | {row['role']} | failed |" + " |" * (len(shown) + 4) + f" {cells} |")
            continue
        s = m[PRIMARY]
        lines.append(f"| {row['label']} | {row['role']} | {s['mean']:.3f} | "
                     f"{interval_text(s['ci_low'], s['ci_high'], '.2f')} | {s['worst']:.3f} | "
                     + " | ".join(f"{m[k]['mean']:.3f}" if k in m else "–" for k in shown)
                     + f" | {_text(row['gap'])} | {_text(row['false_discovery'])} | {cells} |")
    return lines


def _text(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"
