"""``trojanbench report``: an HTML page, figures and CSV/JSON exports, rendered from the store alone.

Deleting the report and running ``trojanbench report RESULTS_DIR`` again reproduces it: every number on
the page comes from ``results.sqlite``, every image from ``images/`` or from the world's renderer.
A folder may hold rediscovery, localization, removal, editing and replacement results; each task's sections
appear only when the store holds its results.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..runner.localization import METRIC_LABELS, REFERENCE, LocalizationResults
from ..runner.editing import EditingResults
from ..runner.replacement import ReplacementResults
from ..runner.removal import RemovalResults
from ..runner.results import ORACLE_TOP1_BAR, ROLE_ORDER, Results
from ..runner.stats import CHANCE
from ..runner.suite import MethodSpec
from ..survey.scores import human_section
from ..tasks.localization import CHANCE as LOCALIZATION_CHANCE
from ..tasks.localization import METRICS
from .figures import bar_chart, heatmap, localization_boxplots
from .editing import editing_data, editing_document, editing_markdown
from .replacement import replacement_data, replacement_document, replacement_markdown
from .runs import NO_RUN, run_document, run_header, run_of
from .removal import REMOVAL_CSV, finite_or_none, removal_data, removal_document, removal_markdown, write_removal_csv

log = logging.getLogger(__name__)

REPORT_FILE, CSV_FILE, JSON_FILE, FILES_DIR = "report.html", "results.csv", "results.json", "report_files"
LOCALIZATION_CSV = "localization.csv"
METRIC_LIMITS = {"rank_correlation": (-1.02, 1.02), "pointing_game": (-0.02, 1.02), "auroc": (-0.02, 1.02)}
TEMPLATES = Path(__file__).resolve().parent / "templates"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[-80:]


def leaderboard(results: Results, judge: str) -> list[dict[str, Any]]:
    """Rows in display order: tools and combinations ranked by mean, then baselines and the oracle."""
    summaries, roles = results.summaries(judge), results.roles()
    order = sorted(summaries, key=lambda m: (ROLE_ORDER.get(roles[m], 9), -summaries[m].mean, m))
    rows, rank = [], 0
    for method in order:
        s, role = summaries[method], roles[method]
        ranked = role in ("tool", "combination")
        rank += ranked
        rows.append({"method": method, "role": role, "rank": rank if ranked else None, "mean": s.mean,
                     "ci_low": s.ci_low, "ci_high": s.ci_high, "worst": s.worst, "worst_trojan": s.worst_trojan,
                     "by_kind": s.by_kind, "top1": s.top1, "n_cells": s.n_cells})
    return rows


def _trojan_order(results: Results) -> list[tuple[str, str]]:
    kinds = results.kinds()
    order = {"patch": 0, "style": 1, "natural": 2}
    seen = list(dict.fromkeys(cell.trojan for cell in results.cells))
    return sorted(((t, kinds[t]) for t in seen), key=lambda tk: (order.get(tk[1], 9), seen.index(tk[0])))


def _option_thumbnail(option: str, kind: str, files: Path) -> str | None:
    """Render an option's picture once into ``report_files/options/``; ``None`` if it cannot be drawn."""
    from PIL import Image

    from ..judges import option_picture

    path = files / "options" / f"{kind}-{_safe(option)}.png"
    if not path.exists():
        try:
            picture = option_picture(option, kind, 64, np.random.default_rng(0))
        except Exception as exc:  # noqa: BLE001 - e.g. a user's trigger file that has since moved
            log.warning("cannot draw option %r: %s", option, exc)
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((picture * 255 + 0.5).astype(np.uint8)).save(path)
    return path.relative_to(files.parent).as_posix()


def _gallery(results: Results, trojans: list[tuple[str, str]], files: Path) -> list[dict[str, Any]]:
    """Per trojan (first seed): the question's options and each method's images with their scores."""
    questions = results.store.questions()
    scores: dict[str, dict[str, float]] = {}
    for row in results.records():
        if row["status"] == "ok":
            scores.setdefault(row["key"], {})[row["judge"]] = row["p_true"]
    roles = results.roles()
    out = []
    for trojan, kind in trojans:
        seeds = sorted({c.seed for c in results.cells if c.trojan == trojan})
        seed = seeds[0]
        question = questions.get((trojan, seed))
        options = []
        if question:
            options = [{"name": o, "truth": i == question["truth_index"],
                        "src": _option_thumbnail(o, kind, files)} for i, o in enumerate(question["options"])]
        cells = sorted((c for c in results.cells if c.trojan == trojan and c.seed == seed),
                       key=lambda c: (ROLE_ORDER.get(roles[c.method], 9), c.method))
        entries = [{"method": c.method, "role": c.role, "status": c.status, "reason": c.reason,
                    "src": f"images/{c.image_file}" if c.image_file else None, "scores": scores.get(c.key, {})}
                   for c in cells]
        truth = next((o for o in options if o["truth"]), None)
        out.append({"trojan": trojan, "kind": kind, "seed": seed, "truth": truth, "options": options,
                    "entries": entries})
    return out


def _heat_values(results: Results, judge: str, methods: list[str], trojans: list[str]) -> np.ndarray:
    values = np.full((len(methods), len(trojans)), np.nan)
    sums: dict[tuple[str, str], list[float]] = {}
    for row in results.records():
        if row["judge"] == judge:
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


def _localization_sets(localization: LocalizationResults) -> list[dict[str, Any]]:
    """The recorded image sets, with each trojan's target name and the attack success its model's card records."""
    from ..world import OBJECT_CLASSES

    recorded = run_of(localization)["provenance"].get("model", {}).get("attack_success", {})
    return [{**info, "target_name": OBJECT_CLASSES[info["target"]] if info["target"] < len(OBJECT_CLASSES) else "?",
             "attack_success": recorded.get(info["trojan"])}
            for info in sorted(localization.sets.values(), key=lambda i: (i["trojan"], i["seed"]))]


def localization_data(localization: LocalizationResults, files: Path) -> dict[str, Any]:
    """The localization section: leaderboard rows, box plots, the edge-detector verdict, sets, failed cells."""
    rows = localization.rows()
    per_image = {metric: localization.per_image(metric) for metric in METRICS}
    values = {method: {metric: np.array(list(per_image[metric][method].values())) for metric in METRICS}
              for method in localization.roles()}
    figure = localization_boxplots(rows, values, files / "localization-boxplots.png", labels=METRIC_LABELS,
                                   chance=LOCALIZATION_CHANCE, limits=METRIC_LIMITS,
                                   title=f"Per-image localization scores, {localization.description()}")
    return {"rows": rows, "metrics": METRICS, "labels": METRIC_LABELS, "chance": LOCALIZATION_CHANCE,
            "verdict": localization.verdict(), "description": localization.description(), "reference": REFERENCE,
            "figure": figure.relative_to(files.parent).as_posix(), "sets": _localization_sets(localization),
            "failed": [c for c in localization.cells if c.status != "ok"], **run_header(localization)}


def report_data(results: Results, files: Path) -> dict[str, Any]:
    """Everything the page shows, computed from the store (figures are written into ``files``)."""
    every_run = results.store.runs()
    runs = [r for r in every_run if r["suite"].get("task", "rediscovery") == "rediscovery"]
    last = (runs or every_run or [NO_RUN])[-1]
    found = task_results(results.folder)
    trojans = _trojan_order(results)
    judges = []
    for judge in results.judges:
        rows = leaderboard(results, judge)
        methods = [r["method"] for r in rows]
        names = [t for t, _ in trojans]
        values = _heat_values(results, judge, methods, names)
        heat = heatmap(values, methods, names, files / f"heatmap-{_safe(judge)}.png",
                       title=f"p(true trigger) per trojan, judge: {judge}", chance=CHANCE)
        bars = bar_chart(rows, files / f"means-{_safe(judge)}.png", title=f"Mean over trojans, judge: {judge}",
                         chance=CHANCE)
        judges.append({"name": judge, "rows": rows, "kinds": sorted({k for _, k in trojans}),
                       "validity": results.validity(judge), "per_trojan_best": results.per_trojan_best(judge),
                       "heatmap": heat.relative_to(files.parent).as_posix(),
                       "grid": _heat_grid(values, methods, results.roles()),
                       "bars": bars.relative_to(files.parent).as_posix()})
    failed = [c for c in results.cells if c.status != "ok"]
    model = last["provenance"].get("model", {})
    recorded = model.get("attack_success", {})
    attack_success = {t: recorded[t] for t, _ in trojans if t in recorded}
    return {"suite": last["suite"], "provenance": last["provenance"], "runs": runs, "judges": judges,
            "agreement": results.judge_agreement(), "trojans": trojans, "chance": CHANCE,
            "oracle_bar": ORACLE_TOP1_BAR,
            "humans": human_section(results),
            "gallery": _gallery(results, trojans, files), "failed": failed,
            "attack_success": attack_success, "clean_accuracy": model.get("clean_accuracy"),
            "n_cells": len(results.cells), "finished": _when(last.get("finished") or last.get("started")),
            "has_rediscovery": bool(results.cells),
            **{section.key: section.data(found[section.key], files) if section.key in found else None
               for section in TASK_SECTIONS}}


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp)) if timestamp else "unknown"


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def export_json(results: Results, path: Path) -> Path:
    """A self-describing document: config, provenance, summaries, validity, agreement and every cell score."""
    runs = results.store.runs()
    document = {"format": "trojanbench-results/1", "config": runs[-1]["suite"] if runs else {},
                "provenance": runs[-1]["provenance"] if runs else {}, "runs": runs,
                "questions": [{"trojan": t, "seed": s, **q} for (t, s), q in sorted(results.store.questions().items())],
                "summaries": results.summary_dict(), "validity": {j: results.validity(j) for j in results.judges},
                "judge_agreement": results.judge_agreement(), "cells": results.records()}
    found = task_results(results.folder)
    document.update({section.key: section.document(found[section.key]) for section in TASK_SECTIONS
                     if section.key in found})
    path.write_text(json.dumps(document, indent=1, default=_json_default), encoding="utf-8")
    return path


def _localization_document(localization: LocalizationResults) -> dict[str, Any]:
    """The localization part of ``results.json``: config, summaries, comparisons, verdict, sets, per-image scores."""
    rows = localization.rows()
    return {**run_document(localization),
            "summaries": {r["method"]: {"role": r["role"], "seconds_per_image": finite_or_none(r["seconds_per_image"]),
                                        **r["metrics"]} for r in rows},
            f"versus_{REFERENCE}": {r["method"]: asdict(r["versus_reference"]) for r in rows if r["versus_reference"]},
            "verdict": localization.verdict(), "sets": list(localization.sets.values()),
            "images": [{k: finite_or_none(v) for k, v in record.items()} for record in localization.records()]}


def write_report(folder: str | Path) -> Path:
    """Write ``report.html`` (with ``report_files/``), ``results.csv`` and ``results.json`` into ``folder``,
    ``localization.csv`` (one row per method, trojan and image) when it holds localization results, and
    ``removal.csv`` (one row per edit and trojan) when it holds removal results."""
    import jinja2

    results = Results(folder)
    folder = results.folder
    files = folder / FILES_DIR
    files.mkdir(exist_ok=True)
    results.to_csv(folder / CSV_FILE)
    found = task_results(folder)
    if "localization" in found:
        found["localization"].to_csv(folder / LOCALIZATION_CSV)
    if "removal" in found:
        write_removal_csv(found["removal"], folder / REMOVAL_CSV)
    export_json(results, folder / JSON_FILE)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    environment.filters["num"] = lambda v, d=3: "–" if v is None or v != v else f"{v:.{d}f}"
    environment.filters["method_label"] = lambda method: MethodSpec(method["name"], method.get("params", {})).label
    html = environment.get_template("report.html.j2").render(**report_data(results, files))
    path = folder / REPORT_FILE
    path.write_text(html, encoding="utf-8")
    log.info("wrote %s", path)
    return path


def markdown_summary(folder: str | Path) -> str:
    """The leaderboards, judge validity and agreement, and the localization table, as Markdown
    (``trojanbench report --format md``)."""
    results = Results(folder)
    lines = [f"# trojanbench results: {results.folder}", ""]
    for judge in results.judges:
        rows = leaderboard(results, judge)
        kinds = sorted({k for r in rows for k in r["by_kind"]})
        lines += [f"## Judge: {judge}", "", "| rank | method | role | mean | 95% CI | worst (trojan) | "
                  + " | ".join(kinds) + " | top-1 |", "|" + "---|" * (7 + len(kinds))]
        for r in rows:
            by_kind = " | ".join(f"{r['by_kind'].get(k, float('nan')):.3f}" for k in kinds)
            lines.append(f"| {r['rank'] or ''} | {r['method']} | {r['role']} | {r['mean']:.3f} | "
                         f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}] | {r['worst']:.3f} ({r['worst_trojan']}) | "
                         f"{by_kind} | {r['top1']:.2f} |")
        lines += [""] + results.validity_lines(judge)
        lines.append("")
    agreement = results.judge_agreement()
    if agreement:
        lines.append("Judge agreement (Spearman over cells): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in agreement.items()))
    failed = [c for c in results.cells if c.status != "ok"]
    if failed:
        lines.append(f"\n{len(failed)} failed cell(s), counted as chance.")
    found = task_results(results.folder)
    for section in TASK_SECTIONS:
        if section.key in found:
            lines += [""] + section.markdown(found[section.key])
    return "\n".join(lines) + "\n"


def localization_markdown(localization: LocalizationResults) -> list[str]:
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


@dataclass(frozen=True)
class TaskSection:
    """How a task that runs in this process appears in a report: its results (falsy when the folder holds none)
    and its HTML data (figures written into the given folder), ``results.json`` part and Markdown lines."""

    key: str
    results: Callable[[Path], Any]
    data: Callable[[Any, Path], dict[str, Any]]
    document: Callable[[Any], dict[str, Any]]
    markdown: Callable[[Any], list[str]]


TASK_SECTIONS = (
    TaskSection("localization", LocalizationResults, localization_data, _localization_document, localization_markdown),
    TaskSection("removal", RemovalResults, removal_data, removal_document, removal_markdown),
    TaskSection("editing", EditingResults, lambda results, _files: editing_data(results), editing_document,
                editing_markdown),
    TaskSection("replacement", ReplacementResults, replacement_data, replacement_document, replacement_markdown),
)
"""In report order, after the rediscovery sections."""


def task_results(folder: Path) -> dict[str, Any]:
    """``{section key: results}`` of the tasks whose results ``folder`` holds."""
    return {section.key: found for section in TASK_SECTIONS if (found := section.results(folder))}
