"""The report's figures (matplotlib, Agg): a methods x trojans heat map and a bar chart of means.

Colour maps are perceptually uniform and colour-blind safe (cividis); every cell and bar also carries
its number or a hatch, so the figures read in grey-scale too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HATCHES = {"tool": "", "combination": "//", "baseline": "..", "oracle": "xx"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(values: np.ndarray, methods: list[str], trojans: list[str], path: Path, *, title: str,
            chance: float) -> Path:
    """``values[method, trojan]`` (mean p_true over seeds) as an annotated heat map."""
    plt = _pyplot()
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
    fig.savefig(path)
    plt.close(fig)
    return path


def bar_chart(rows: list[dict], path: Path, *, title: str, chance: float) -> Path:
    """Mean p_true per method with its 95% interval; hatch by role; a dashed line at chance."""
    plt = _pyplot()
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
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
