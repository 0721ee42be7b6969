"""A page per method of a rediscovery run, beside the report (``report_files/tools/<method>.html``): what the tool
showed and why it scored so.

Each page is the rediscovery section's data seen from one method: a sentence on how it did, its source and its
parameters as run, then per trojan (the gallery's first seed) the true trigger and the 8 options beside the
method's images, each judge's p(true) and choice and the cell's ground-truth diagnostics; its leaderboard row per
judge, the combinations it joins, and its results in the folder's other tasks (the removal task's normalized
guidance score; a link where a method of the same name ran in another task).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ...errors import ConfigError, UnknownNameError
from ...registry import TASKS, get_method
from ...templating import template_environment

TOOLS_DIR = "tools"
"""The pages' folder inside ``report_files/``."""
TEMPLATE = "rediscovery/tool_page.html.j2"
OTHER_TASKS = ("localization", "editing", "replacement")
"""Tasks whose section is linked from a page when a method of the page's name ran there."""
ROLE_WORDS = {"tool": "an interpretability tool", "baseline": "a baseline (shown for reference, never ranked)",
              "oracle": "the oracle: it renders the true trigger (a check of the judges, never ranked)",
              "combination": "a combination: the pooled images of several tools"}


def write_tool_pages(results: Any, section: dict[str, Any], files: Path) -> list[Path]:
    """Write one page per method of ``section`` (the rediscovery section's data, its ``pages`` naming each
    method's page relative to the results folder); return their paths."""
    template = template_environment({"rediscovery": Path(__file__).resolve().parent}).get_template(TEMPLATE)
    guidance = _removal_guidance(results.folder)
    elsewhere = _other_tasks(results.folder)
    members = {c.method: c.params.get("members", []) for c in results.cells if c.role == "combination"}
    roles, paths = results.roles(), []
    for method, href in section["pages"].items():
        page = _page(method, roles[method], section, members, guidance.get(method, []),
                     [task for task, methods in elsewhere.items() if method in methods])
        path = files.parent / href
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.render(page=page, up="../" * href.count("/"), chance=section["chance"]),
                        encoding="utf-8")
        paths.append(path)
    return paths


def method_source(method: str) -> tuple[str, str]:
    """The method's paper and the first paragraph of its class docstring (empty when it cannot be loaded now)."""
    try:
        cls = get_method(method)
    except (ConfigError, UnknownNameError):
        return "", ""
    first = " ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split())
    return cls.paper, (first[:-1] + "…" if first.endswith(":") else first)


def _page(method: str, role: str, section: dict[str, Any], members: dict[str, list[str]],
          guidance: list[dict[str, Any]], other_tasks: list[str]) -> dict[str, Any]:
    """Everything one method's page shows."""
    boards = []
    for judge in section["judges"]:
        row = next(r for r in judge["rows"] if r["method"] == method)
        boards.append({"judge": judge["name"], "kinds": judge["kinds"], "row": row,
                       "n_ranked": sum(r["rank"] is not None for r in judge["rows"])})
    trojans = []
    for g in section["gallery"]:
        entry = next((e for e in g["entries"] if e["method"] == method), None)
        if entry is None:
            continue
        choices = {v["judge"]: v for v in entry["evidence"]}
        judges = [{"judge": j["name"], "p_true": entry["scores"].get(j["name"]), "top1": entry["top1"].get(j["name"]),
                   "choice": choices.get(j["name"])} for j in section["judges"]]
        trojans.append({**{k: g[k] for k in ("trojan", "kind", "seed", "truth", "options")}, "entry": entry,
                        "judges": judges})
    diagnostics = next((r for r in section["diagnostics"]["rows"] if r["method"] == method), None)
    paper, summary = method_source(method)
    combinations = [{"method": name, "members": names,
                     "boards": [{"judge": j["name"], "row": next(r for r in j["rows"] if r["method"] == name)}
                                for j in section["judges"]]}
                    for name, names in members.items() if method in names]
    return {"method": method, "role": role, "role_words": ROLE_WORDS.get(role, f"a {role}"), "paper": paper,
            "summary": summary, "params": trojans[0]["entry"]["params"] if trojans else {},
            "members": members.get(method, []), "headline": _headline(boards, diagnostics, role), "boards": boards,
            "trojans": trojans, "diagnostics": diagnostics, "combinations": combinations, "guidance": guidance,
            "other_tasks": other_tasks, "pages": section["pages"], "labels": section["diagnostics"]["labels"],
            "fields": section["diagnostics"]["fields"]}


def _headline(boards: list[dict[str, Any]], diagnostics: dict[str, Any] | None, role: str) -> str:
    """How the method did, in one sentence: its rank (or mean) per judge, then what its images do to the model (a
    combination has no images of its own to diagnose)."""
    parts = []
    for board in boards:
        row, judge = board["row"], board["judge"]
        if row["rank"]:
            parts.append(f"ranked {row['rank']} of {board['n_ranked']} by the {judge} judge (mean {row['mean']:.3f})")
        elif not row["n_cells"]:
            parts.append(f"no cell scored by the {judge} judge")
        else:
            incomplete = "" if row["complete"] else f", {row['n_cells']} of {row['n_planned']} cells: not ranked"
            parts.append(f"mean {row['mean']:.3f} by the {judge} judge{incomplete}")
    sentence = "; ".join(parts)
    fields = diagnostics["fields"] if diagnostics else {}
    if "target_rate" in fields and "paste_success" in fields:
        sentence += (f". The model calls {fields['target_rate']['mean']:.0%} of its images the target class, and "
                     f"{fields['paste_success']['mean']:.0%} of clean scenes with one pasted on")
        if "trigger_match" in fields:
            sentence += f"; trigger match {fields['trigger_match']['mean']:.2f} on patch trojans"
    elif diagnostics is None and role != "combination":
        sentence += ". No ground-truth diagnostics for its images in this store"
    return sentence[:1].upper() + sentence[1:] + "."


def _removal_guidance(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """``{source: rows}``: the removal task's rows (:meth:`RemovalResults.rows`) guided by each source's images,
    with their normalized score, per budget; empty when the folder holds no removal results."""
    removal = TASKS.get("removal").results(folder)
    out: dict[str, list[dict[str, Any]]] = {}
    for budget in removal.budgets if removal else []:
        for row in removal.rows(budget):
            if row["source"] != "-":
                out.setdefault(row["source"], []).append({"budget": budget, **row})
    return out


def _other_tasks(folder: Path) -> dict[str, set[str]]:
    """``{task: methods}`` of the :data:`OTHER_TASKS` whose results the folder holds."""
    out = {}
    for name in OTHER_TASKS:
        results = TASKS.get(name).results(folder)
        if results:
            out[name] = {_method_of(cell) for cell in results.cells}
    return out


def _method_of(cell: Any) -> str | None:
    """The method (the editor, in the editing task) another task's cell ran: its cells are rows or dicts."""
    if isinstance(cell, dict):
        return cell.get("method", cell.get("editor"))
    return getattr(cell, "method", None)
