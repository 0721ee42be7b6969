"""The rediscovery task in the report: leaderboards per judge, the ground-truth diagnostics, the methods × trojans
grid, judge validity and agreement, the gallery of every tool's images beside the 8 options, failed cells, a page
per tool (:mod:`.tool_pages`); its ``results.json`` part and Markdown lines."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ...engine.stats import CHANCE
from ...figures import bar_chart, heatmap
from ...engine.runs import failure_lines
from ...judges.battery import BATTERY_IMAGES
from ...judges.evidence import WINDOW
from .battery import CHECK_LABELS
from .diagnostics import DIAGNOSTIC_FIELDS, DIAGNOSTIC_LABELS, N_CARRIERS, PASTE_FRACTION
from .results import (AGREEMENT_TARGET, BELOW_BAR_ADVICE, MIN_AGREEMENT_CELLS, ORACLE_TOP1_BAR, RANKED_ROLES,
                      ROLE_ORDER, Results)
from .store import RediscoveryStore
from .tool_pages import TOOLS_DIR, method_source, write_tool_pages

log = logging.getLogger(__name__)

CSV_FILE = "results.csv"


EVIDENCE_SCALE = 2
"""The gallery's evidence thumbnails show a cell's image at this many times its size."""


def safe_name(name: str) -> str:
    """``name`` as a file name (letters, digits, ``_.-``; at most 80 characters)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[-80:]


def trojan_order(results: Results) -> list[tuple[str, str]]:
    """``(trojan, kind)`` pairs: patch, style, then natural trojans, each kind in the order the cells met them."""
    kinds = results.kinds()
    order = {"patch": 0, "style": 1, "natural": 2}
    seen = list(dict.fromkeys(cell.trojan for cell in results.cells))
    return sorted(((t, kinds[t]) for t in seen), key=lambda tk: (order.get(tk[1], 9), seen.index(tk[0])))


def _option_thumbnail(option: str, kind: str, files: Path) -> str | None:
    """Render an option's picture once into ``report_files/options/``; ``None`` if it cannot be drawn."""
    from PIL import Image

    from ...judges import option_picture

    path = files / "options" / f"{kind}-{safe_name(option)}.png"
    if not path.exists():
        try:
            picture = option_picture(option, kind, 64, np.random.default_rng(0))
        except Exception as exc:  # noqa: BLE001 - e.g. a user's trigger file that has since moved
            log.warning("cannot draw option %r: %s", option, exc)
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((picture * 255 + 0.5).astype(np.uint8)).save(path)
    return path.relative_to(files.parent).as_posix()


def _evidence_thumbnail(image: np.ndarray, evidence: dict, path: Path) -> None:
    """``image`` (``[H, W, 3]`` uint8) at twice its size with the judge's evidence window framed."""
    from PIL import Image, ImageDraw

    scale = EVIDENCE_SCALE
    picture = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    top, left, size = (scale * evidence[k] for k in ("top", "left", "size"))
    draw = ImageDraw.Draw(picture)
    draw.rectangle([left, top, left + size - 1, top + size - 1], outline=(0, 0, 0), width=4)
    draw.rectangle([left + 1, top + 1, left + size - 2, top + size - 2], outline=(255, 221, 0), width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)


def _evidence(results: Results, cell, question: dict | None, strip: np.ndarray, files: Path) -> list[dict[str, Any]]:
    """Each judge's evidence on a gallery cell: the framed thumbnail, the option it chose and what the frame does."""
    out = []
    for judge in results.judges:
        found = results.evidence.get((cell.key, judge))
        if found is None or question is None:
            continue
        path = files / "evidence" / f"{safe_name(cell.key)}-{safe_name(judge)}.png"
        _evidence_thumbnail(strip[found["image"]], found, path)
        choice = question["options"][found["choice"]]
        out.append({"judge": judge, "src": path.relative_to(files.parent).as_posix(), "label": Path(choice).name,
                    "truth": found["choice"] == question["truth_index"],
                    "title": f"{judge} chose {choice}: vote {found['vote']:.2f} on image {found['image'] + 1}, "
                             f"{found['covered']:.2f} with the framed window covered"})
    return out


def _gallery(results: Results, trojans: list[tuple[str, str]], pages: dict[str, str],
             files: Path) -> list[dict[str, Any]]:
    """Per trojan (first seed): the question's options and each method's images with their scores (p(true) and
    whether the true trigger was each judge's top choice), each judge's evidence, its diagnostics and tool page."""
    scores: dict[str, dict[str, dict]] = {}
    for row in results.records():
        if row["status"] == "ok":
            scores.setdefault(row["key"], {})[row["judge"]] = row
    roles = results.roles()
    with RediscoveryStore(results.folder, create=False) as store:
        return [_gallery_trojan(results, trojan, kind, scores, roles, pages, store, files) for trojan, kind in trojans]


def _gallery_trojan(results: Results, trojan: str, kind: str, scores: dict, roles: dict, pages: dict[str, str],
                    store: RediscoveryStore, files: Path) -> dict[str, Any]:
    """One trojan's part of the gallery (its first seed)."""
    seed = min(c.seed for c in results.cells if c.trojan == trojan)
    question = results.questions.get((trojan, seed))
    options = []
    if question:
        options = [{"name": o, "truth": i == question["truth_index"],
                    "src": _option_thumbnail(o, kind, files)} for i, o in enumerate(question["options"])]
    cells = sorted((c for c in results.cells if c.trojan == trojan and c.seed == seed),
                   key=lambda c: (ROLE_ORDER.get(roles[c.method], 9), c.method))
    strips = {c.key: store.load_images(c) for c in cells
              if c.image_file and any((c.key, j) in results.evidence for j in results.judges)}
    entries = [{"method": c.method, "role": c.role, "status": c.status, "reason": c.reason, "params": c.params,
                "src": f"images/{c.image_file}" if c.image_file else None, "page": pages[c.method],
                "scores": {judge: row["p_true"] for judge, row in scores.get(c.key, {}).items()},
                "top1": {judge: row["top1"] for judge, row in scores.get(c.key, {}).items()},
                "diagnostics": results.diagnostics.get(c.key),
                "evidence": _evidence(results, c, question, strips[c.key], files) if c.key in strips else []}
               for c in cells]
    truth = next((o for o in options if o["truth"]), None)
    return {"trojan": trojan, "kind": kind, "seed": seed, "truth": truth, "options": options, "entries": entries}


def _diagnostics(results: Results, order: list[str], pages: dict[str, str]) -> dict[str, Any]:
    """The ground-truth diagnostics table: per method with diagnosed cells (in ``order``), each diagnostic's
    summary (:meth:`Results.diagnostic_summaries`), with the kinds paste success is broken down by."""
    summaries, roles = results.diagnostic_summaries(), results.roles()
    rows = [{"method": m, "role": roles[m], "page": pages[m], "fields": summaries[m],
             "n_cells": max(s["n_cells"] for s in summaries[m].values())} for m in order if m in summaries]
    kinds = sorted({k for row in rows for k in row["fields"].get("paste_success", {}).get("by_kind", {})})
    return {"rows": rows, "fields": DIAGNOSTIC_FIELDS, "labels": DIAGNOSTIC_LABELS, "kinds": kinds,
            "paste_fraction": PASTE_FRACTION, "n_carriers": N_CARRIERS}


def _heat_values(results: Results, judge: str, methods: list[str], trojans: list[str]) -> np.ndarray:
    values = np.full((len(methods), len(trojans)), np.nan)
    sums: dict[tuple[str, str], list[float]] = {}
    for row in results.records():
        if row["judge"] == judge and row["p_true"] is not None:
            sums.setdefault((row["method"], row["trojan"]), []).append(row["p_true"])
    for (method, trojan), vals in sums.items():
        if method in methods and trojan in trojans:
            values[methods.index(method), trojans.index(trojan)] = float(np.mean(vals))
    return values


def _heat_grid(values: np.ndarray, methods: list[str], roles: dict[str, str]) -> list[dict[str, Any]]:
    """Rows of the HTML heat map: each cell's value with its cividis background and a readable text colour."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["cividis"]
    rows = []
    for method, row in zip(methods, values):
        cells = [{"value": float(v), "colour": to_hex(cmap(float(v))) if np.isfinite(v) else "#ffffff",
                  "text": "#000000" if not np.isfinite(v) or v > 0.55 else "#ffffff"} for v in row]
        rows.append({"method": method, "role": roles[method], "cells": cells})
    return rows


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp)) if timestamp else "unknown"


def data(results: Results, files: Path) -> dict[str, Any]:
    """Everything the rediscovery section shows (figures are written into ``files``)."""
    runs = [r for r in results.runs if r["suite"].get("task", "rediscovery") == "rediscovery"]
    last = results.run
    trojans = trojan_order(results)
    pages = {method: f"{files.name}/{TOOLS_DIR}/{safe_name(method)}.html" for method in results.roles()}
    judges = []
    for judge in results.judges:
        rows = [{**row, "page": pages[row["method"]]} for row in results.leaderboard(judge)]
        methods = [r["method"] for r in rows]
        names = [t for t, _ in trojans]
        values = _heat_values(results, judge, methods, names)
        heat = heatmap(values, methods, names, files / f"heatmap-{safe_name(judge)}.png",
                       title=f"p(true trigger) per trojan, judge: {judge}", chance=CHANCE)
        bars = bar_chart(rows, files / f"means-{safe_name(judge)}.png", title=f"Mean over trojans, judge: {judge}",
                         chance=CHANCE)
        judges.append({"name": judge, "rows": rows, "kinds": sorted({k for _, k in trojans}),
                       "validity": results.validity(judge), "per_trojan_best": results.per_trojan_best(judge),
                       "battery": results.battery(judge),
                       "battery_bars": {name: check["bar"] for entry in results.battery(judge).values()
                                        for name, check in entry["checks"].items()},
                       "heatmap": heat.relative_to(files.parent).as_posix(),
                       "grid": _heat_grid(values, methods, results.roles()),
                       "bars": bars.relative_to(files.parent).as_posix()})
    model = last["provenance"].get("model", {})
    recorded = model.get("attack_success", {})
    verdicts = results.counted_verdicts()
    counted = verdicts.summaries(results.kinds())
    roles = results.roles()
    verdict_rows = [{"method": m, "role": roles[m], **asdict(counted[m]),
                     "disagreements": len(verdicts.disagreements.get(m, []))}
                    for m in (row["method"] for row in judges[0]["rows"]) if m in counted] if judges else []
    order = [row["method"] for row in judges[0]["rows"]] if judges else sorted(roles)
    section = {"suite": last["suite"], "provenance": last["provenance"], "runs": runs, "judges": judges,
               "agreement": results.judge_agreement(), "tool_agreement": results.tool_agreement(),
               "agreement_target": AGREEMENT_TARGET, "trojans": trojans, "chance": CHANCE,
               "oracle_bar": ORACLE_TOP1_BAR, "below_bar_advice": BELOW_BAR_ADVICE,
               "min_agreement_cells": MIN_AGREEMENT_CELLS, "battery_checks": CHECK_LABELS,
               "battery_images": BATTERY_IMAGES, "evidence_window": WINDOW,
               "verdicts": {"questions": len(verdicts.valid), "counted": len(verdicts.counted_questions),
                            "valid_counts": verdicts.valid_counts(), "rows": verdict_rows},
               "gallery": _gallery(results, trojans, pages, files), "diagnostics": _diagnostics(results, order, pages),
               "failed": results.failed_cells(), "failure_lines": failure_lines(results.failed_cells()),
               "attack_success": {t: recorded[t] for t, _ in trojans if t in recorded},
               "clean_accuracy": model.get("clean_accuracy"), "n_cells": len(results.cells),
               "finished": _when(last.get("finished") or last.get("started")), "pages": pages}
    write_tool_pages(results, section, files)
    return section


def document(results: Results) -> dict[str, Any]:
    """The rediscovery part of ``results.json``: config, provenance, questions, summaries, validity, the judges'
    battery (per trojan, worst seed, and per question), agreement, every cell score (with the cell's ground-truth
    diagnostics), each method's diagnostics summarized, each method's paper and parameters as run, and the judges'
    evidence on the gallery's cells."""
    run = results.run
    return {"config": {k: v for k, v in run["suite"].items() if k != "cell_keys"}, "provenance": run["provenance"],
            "questions": [{"trojan": t, "seed": s, **q} for (t, s), q in sorted(results.questions.items())],
            "summaries": results.summary_dict(), "validity": {j: results.validity(j) for j in results.judges},
            "battery": {j: {"per_trojan": results.battery(j),
                            "questions": [{"trojan": t, "seed": seed, "checks": checks}
                                          for (t, seed), checks in results.battery_questions(j).items()]}
                        for j in results.judges},
            "judge_agreement": results.judge_agreement(),
            "tool_agreement": {pair: asdict(value) for pair, value in results.tool_agreement().items()},
            "counted_verdicts": _counted_document(results), "cells": results.records(),
            "diagnostics": results.diagnostic_summaries(),
            "methods": {c.method: {"role": c.role, "paper": method_source(c.method)[0], "params": c.params}
                        for c in results.cells if c.role != "combination"},
            "evidence": [{"key": key, "judge": judge, **found}
                         for (key, judge), found in sorted(results.evidence.items())]}


def _counted_document(results: Results) -> dict[str, Any]:
    verdicts = results.counted_verdicts()
    return {**verdicts.to_dict(), "summaries": {m: asdict(s) for m, s in verdicts.summaries(results.kinds()).items()}}


def exports(results: Results, folder: Path) -> list[Path]:
    """``results.csv``: one row per cell and judge."""
    return [results.to_csv(folder / CSV_FILE)]


def markdown(results: Results) -> list[str]:
    """The leaderboards, judge validity and agreement as Markdown lines."""
    lines: list[str] = []
    for judge in results.judges:
        rows = results.leaderboard(judge)
        kinds = sorted({k for r in rows for k in r["by_kind"]})
        lines += [f"## Judge: {judge}", "", "| rank | method | role | mean | 95% CI | worst (trojan) | "
                  + " | ".join(kinds) + " | top-1 |", "|" + "---|" * (7 + len(kinds))]
        for r in rows:
            if not r["complete"] and r["role"] in RANKED_ROLES:
                r = {**r, "role": f"incomplete ({r['n_cells']}/{r['n_planned']} cells)"}
            by_kind = " | ".join(f"{r['by_kind'].get(k, float('nan')):.3f}" for k in kinds)
            lines.append(f"| {r['rank'] or ''} | {r['method']} | {r['role']} | {r['mean']:.3f} | "
                         f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}] | {r['worst']:.3f} ({r['worst_trojan']}) | "
                         f"{by_kind} | {r['top1']:.2f} |")
        lines += [""] + results.validity_lines(judge)
        lines.append("")
    agreement = results.agreement_line()
    if agreement:
        lines.append(agreement[0].upper() + agreement[1:])
    verdicts = results.verdict_lines()
    if verdicts:
        lines += ["", verdicts[0][0].upper() + verdicts[0][1:], ""] + [f"- {line.strip()}" for line in verdicts[1:]]
    return lines + failure_lines(results.failed_cells())
