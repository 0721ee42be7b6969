"""The figures of the report (matplotlib, Agg): a methods x trojans heat map, a bar chart of means, and box plots
of the localization scores, removal bars and replacement fidelity curves.

Colour maps are perceptually uniform and colour-blind safe (cividis); every cell and bar also carries
its number or a hatch, so the figures read in grey-scale too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HATCHES = {"tool": "", "combination": "//", "baseline": "..", "oracle": "xx"}
TOOL_COLOUR, BASELINE_COLOUR = "#6b8ec2", "#e6e6e6"
"""A mid blue and a light grey: told apart by colour-blind readers and, with the baselines' hatch, in grey-scale."""


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(values: np.ndarray, methods: list[str], trojans: list[str], path: Path, *, title: str,
            chance: float) -> Path:
    """``values[method, trojan]`` (mean p_true over seeds) as an annotated heat map."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3.6 + 0.62 * len(trojans), 1.6 + 0.36 * len(methods)), dpi=110)
    image = ax.imshow(values, cmap="cividis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(trojans)), trojans, rotation=45, ha="right")
    ax.set_yticks(range(len(methods)), methods)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.55 else "white")
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    bar.set_label(f"p(true trigger)  (chance {chance:.3f})")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")  # no label cut at the edge
    plt.close(fig)
    return path


def bar_chart(rows: list[dict], path: Path, *, title: str, chance: float) -> Path:
    """Mean p_true per method with its 95% interval; hatch by role; a dashed line at chance."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.8 + 0.3 * len(rows)), dpi=110)
    positions = np.arange(len(rows))[::-1]
    for y, row in zip(positions, rows):
        ax.barh(y, row["mean"], color="#6b8ec2" if row["role"] in ("tool", "combination") else "#bbbbbb",
                edgecolor="black", hatch=HATCHES.get(row["role"], ""), linewidth=0.6)
        ax.errorbar(row["mean"], y, xerr=[[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]],
                    color="black", capsize=3, linewidth=1)
    ax.axvline(chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:.3f})")
    ax.set_yticks(positions, [f"{r['method']} ({r['role']})" for r in rows])
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean p(true trigger) over trojans, 95% bootstrap interval")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # beside the bars, never over them
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")  # no label cut at the edge
    plt.close(fig)
    return path


def _horizontal_boxplot(ax, data: list[np.ndarray], positions: np.ndarray):
    import inspect

    flag = ({"orientation": "horizontal"} if "orientation" in inspect.signature(ax.boxplot).parameters
            else {"vert": False})  # matplotlib < 3.10
    return ax.boxplot(data, positions=positions, widths=0.6, patch_artist=True, showmeans=True, **flag,
                      medianprops={"color": "black", "linewidth": 1.6},
                      meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black",
                                 "markersize": 4},
                      flierprops={"marker": ".", "markersize": 2, "markerfacecolor": "black",
                                  "markeredgecolor": "black"})


def localization_boxplots(rows: list[dict], values: dict[str, dict[str, np.ndarray]], path: Path, *,
                          labels: dict[str, str], chance: dict[str, float], limits: dict[str, tuple[float, float]],
                          title: str) -> Path:
    """One panel per metric: a box plot of each method's per-image scores (all trojans pooled), in ``rows``'
    order; tools solid blue, baselines light grey and dotted; the mean a white diamond, the median a black
    bar, chance (where the metric has one) a dashed line."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(labels), sharey=True, dpi=110,
                             figsize=(3.2 + 3.0 * len(labels), 1.2 + 0.3 * len(rows)))
    positions = np.arange(len(rows))[::-1]
    for ax, (metric, label) in zip(np.atleast_1d(axes), labels.items()):
        data = [values[r["method"]][metric][np.isfinite(values[r["method"]][metric])] for r in rows]
        boxes = _horizontal_boxplot(ax, data, positions)
        for box, row in zip(boxes["boxes"], rows):
            baseline = row["role"] != "tool"
            box.set(facecolor=BASELINE_COLOUR if baseline else TOOL_COLOUR, edgecolor="black", linewidth=0.7,
                    hatch=HATCHES["baseline"] if baseline else "")
        if metric in chance:
            ax.axvline(chance[metric], color="black", linestyle="--", linewidth=1)
        ax.set_xlim(*limits[metric])
        ax.set_xlabel(label + (f" (chance {chance[metric]:g}, dashed)" if metric in chance else ""))
        ax.grid(axis="x", color="#cccccc", linewidth=0.5)
    first = np.atleast_1d(axes)[0]
    first.set_yticks(positions, [f"{r['method']} ({r['role']})" for r in rows])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")  # no label cut at the edge
    plt.close(fig)
    return path


REMOVAL_COLOURS = {"oracle": "#b0b0b0", "tool": TOOL_COLOUR, "baseline": TOOL_COLOUR, "control": BASELINE_COLOUR,
                   "defence": "#c9b26b"}
REMOVAL_HATCHES = {"oracle": "x", "tool": "", "baseline": "", "control": "..", "defence": "//"}


def removal_bars(rows: list[dict], path: Path, *, title: str) -> Path:
    """Mean fidelity of each edit with its 95% interval, guided edits grouped by procedure, coloured and hatched
    by the guidance's role (oracle, tool, control) and reference defences apart; a dotted line marks each
    procedure's ``random`` control."""
    plt = pyplot()
    shown = [r for r in rows if "fidelity" in r["metrics"]]
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.26 * len(shown)), dpi=110)
    positions = np.arange(len(shown))[::-1]
    for y, row in zip(positions, shown):
        s = row["metrics"]["fidelity"]
        ax.barh(y, s["mean"], color=REMOVAL_COLOURS.get(row["role"], TOOL_COLOUR), edgecolor="black",
                hatch=REMOVAL_HATCHES.get(row["role"], ""), linewidth=0.6)
        ax.errorbar(s["mean"], y, xerr=[[max(0, s["mean"] - s["ci_low"])], [max(0, s["ci_high"] - s["mean"])]],
                    color="black", capsize=2, linewidth=0.8)
        if row["source"] == "random":
            group = [p for p, r in zip(positions, shown) if r["procedure"] == row["procedure"]]
            ax.plot([s["mean"]] * 2, [min(group) - 0.4, max(group) + 0.4], color="black", linestyle=":", linewidth=1)
    ax.set_yticks(positions, [f"{r['label']} ({r['role']})" for r in shown], fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("mean fidelity over trojans ((ASR removed share) x (accuracy kept)), 95% bootstrap interval")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")  # no label cut at the edge
    plt.close(fig)
    return path


def fidelity_curves(curves: dict[str, dict[str, list[tuple[int, float, float]]]], distributions: dict[str, str],
                    path: Path, *, anchors: tuple[str, str]) -> Path:
    """One panel per distribution: fidelity against the parameter budget (log axis), a line per method (mean,
    markers distinct in grey-scale), the original network as a star and the constant predictor as a dashed line."""
    plt = pyplot()
    original, constant = anchors
    fig, axes = plt.subplots(1, len(distributions), figsize=(3.3 * len(distributions), 3.3), dpi=110, sharey=True)
    markers = "osD^v<>ph"
    methods = [label for label in curves if label not in anchors]
    for ax, (distribution, title) in zip(np.atleast_1d(axes), distributions.items()):
        for index, label in enumerate(methods):
            points = curves[label][distribution]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=markers[index % len(markers)],
                    color=plt.cm.cividis(index / max(1, len(methods) - 1)), label=label, linewidth=1.4)
        for budget, mean, _ in curves.get(original, {}).get(distribution, []):
            ax.plot([budget], [mean], marker="*", markersize=12, color="black", linestyle="none", label=original)
        for _, mean, _ in curves.get(constant, {}).get(distribution, [])[:1]:
            ax.axhline(mean, color="grey", linestyle="--", linewidth=1, label=constant)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_title(title)
        ax.set_xlabel("non-zero parameters")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("fidelity (top-1 agreement)")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(labels) - 1) // 4), 1, 1))
    fig.savefig(path, bbox_inches="tight")  # no label cut at the edge
    plt.close(fig)
    return path
