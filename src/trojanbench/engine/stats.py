"""Statistics that resist cherry-picking: means, per-kind means, worst case, and bootstrap intervals over
trojans and seeds (two-level: resample trojans, then seeds within each), plus paired comparisons."""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

N_BOOTSTRAP = 2000
CHANCE = 1 / 8


def score_grid(scores: dict[tuple[str, int], float]) -> tuple[list[str], np.ndarray]:
    """``{(trojan, seed): value}`` as a ``[trojans, seeds]`` array (NaN where a cell is missing)."""
    trojans = sorted({t for t, _ in scores})
    seeds = sorted({s for _, s in scores})
    grid = np.full((len(trojans), len(seeds)), np.nan)
    for (trojan, seed), value in scores.items():
        grid[trojans.index(trojan), seeds.index(seed)] = value
    return trojans, grid


def bootstrap_means(grid: np.ndarray, seed: int = 0, n_boot: int = N_BOOTSTRAP) -> np.ndarray:
    """Means of ``n_boot`` resamples of a ``[trojans, seeds]`` grid: trojans with replacement, then seeds
    with replacement within each drawn trojan."""
    rng = np.random.default_rng(seed)
    n_t, n_s = grid.shape
    rows = rng.integers(0, n_t, (n_boot, n_t))
    cols = rng.integers(0, n_s, (n_boot, n_t, n_s))
    return np.nanmean(grid[rows[..., None], cols].reshape(n_boot, -1), axis=1)


def bootstrap_interval(grid: np.ndarray, *, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean of a ``[trojans, seeds]`` grid."""
    low, high = np.nanpercentile(bootstrap_means(grid, seed), [2.5, 97.5])
    return float(low), float(high)


def average_ranks(values) -> np.ndarray:
    """Ranks 0..n-1 with tied values given the mean of the ranks they span."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values[np.isfinite(values)]):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a, b) -> float:
    """Spearman's rank correlation (Pearson's r of average ranks); NaN when either side is constant."""
    ranks_a, ranks_b = average_ranks(a), average_ranks(b)
    if len(ranks_a) < 2 or np.ptp(ranks_a) == 0 or np.ptp(ranks_b) == 0:
        return float("nan")
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


@dataclass(frozen=True)
class Summary:
    """One method's scores under one judge (``p_true``: probability given to the true trigger)."""

    mean: float
    ci_low: float
    ci_high: float
    worst: float
    worst_trojan: str
    by_kind: dict[str, float]
    top1: float
    n_cells: int


def summarize(p_true: dict[tuple[str, int], float], top1: dict[tuple[str, int], float],
              kinds: dict[str, str]) -> Summary:
    """Mean over trojans (of the mean over seeds), per kind, worst trojan, and the bootstrap interval."""
    trojans, grid = score_grid(p_true)
    per_trojan = np.nanmean(grid, axis=1)
    low, high = bootstrap_interval(grid)
    by_kind: dict[str, list[float]] = {}
    for trojan, value in zip(trojans, per_trojan):
        by_kind.setdefault(kinds[trojan], []).append(float(value))
    worst = int(np.nanargmin(per_trojan))
    return Summary(mean=float(np.nanmean(per_trojan)), ci_low=low, ci_high=high, worst=float(per_trojan[worst]),
                   worst_trojan=trojans[worst], by_kind={k: float(np.mean(v)) for k, v in sorted(by_kind.items())},
                   top1=float(np.nanmean(score_grid(top1)[1])), n_cells=int(np.isfinite(grid).sum()))


@dataclass(frozen=True)
class Comparison:
    """Paired difference ``a - b`` over the cells both methods share."""

    a: str
    b: str
    mean_difference: float
    ci_low: float
    ci_high: float
    probability_a_better: float
    n_cells: int

    def __str__(self) -> str:
        shown = enough_for_interval(self)
        interval = interval_text(shown.ci_low, shown.ci_high, "+.3f")
        cells = f"{self.n_cells} shared cell{'s' if self.n_cells != 1 else ''}"
        return (f"{self.a} - {self.b}: {self.mean_difference:+.3f} {interval} (paired 95% bootstrap interval), "
                f"{self.a} better in {self.probability_a_better:.0%} of resamples, over {cells}")


def paired_comparison(a: str, b: str, scores_a: dict[tuple[str, int], float],
                      scores_b: dict[tuple[str, int], float]) -> Comparison:
    """Bootstrap (trojans, then seeds) of the mean paired difference between two methods."""
    shared = sorted(set(scores_a) & set(scores_b))
    if not shared:
        from ..errors import ConfigError

        raise ConfigError(f"Methods {a!r} and {b!r} share no scored cells to compare.")
    _, grid = score_grid({cell: scores_a[cell] - scores_b[cell] for cell in shared})
    means = bootstrap_means(grid)
    low, high = np.nanpercentile(means, [2.5, 97.5])
    return Comparison(a, b, float(np.nanmean(grid)), float(low), float(high), float((means > 0).mean()),
                      len(shared))


@dataclass(frozen=True)
class RankAgreement:
    """Spearman rank correlation between two judges' means of the same methods, with a 95% bootstrap interval
    (trojans, then seeds, resampled together for every method and both judges)."""

    spearman: float
    ci_low: float
    ci_high: float
    n_methods: int


def rank_agreement(a: dict[str, dict[tuple[str, int], float]], b: dict[str, dict[tuple[str, int], float]],
                   seed: int = 0, n_boot: int = N_BOOTSTRAP) -> RankAgreement:
    """How alike two judges rank the methods both scored (``{method: {(trojan, seed): score}}`` each), by their
    mean scores over the cells both judges share."""
    methods = sorted(set(a) & set(b))
    cells = sorted({cell for m in methods for cell in set(a[m]) & set(b[m])})
    trojans, seeds = sorted({t for t, _ in cells}), sorted({s for _, s in cells})
    grids = np.full((2, len(methods), len(trojans), len(seeds)), np.nan)
    for j, scores in enumerate((a, b)):
        for i, method in enumerate(methods):
            for trojan, cell_seed in set(a[method]) & set(b[method]):
                grids[j, i, trojans.index(trojan), seeds.index(cell_seed)] = scores[method][(trojan, cell_seed)]
    point = spearman(*np.nanmean(grids.reshape(2, len(methods), -1), axis=2))
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(trojans), (n_boot, len(trojans)))
    cols = rng.integers(0, len(seeds), (n_boot, len(trojans), len(seeds)))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample may leave a method without cells
        means = np.nanmean(grids[:, :, rows[..., None], cols].reshape(2, len(methods), n_boot, -1), axis=3)
        draws = [spearman(means[0, :, k], means[1, :, k]) for k in range(n_boot)]
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return RankAgreement(point, float(low), float(high), len(methods))


MIN_INTERVAL_CELLS = 2
"""A bootstrap over fewer cells than this resamples one value: its "interval" is the point itself, shown as "–"."""

Stat = TypeVar("Stat", Summary, Comparison)


def enough_for_interval(stat: Stat) -> Stat:
    """``stat`` (a :class:`Summary` or :class:`Comparison`), its interval NaN when it rests on fewer than
    :data:`MIN_INTERVAL_CELLS` cells."""
    if stat.n_cells >= MIN_INTERVAL_CELLS:
        return stat
    return dataclasses.replace(stat, ci_low=math.nan, ci_high=math.nan)


def interval_text(low: float, high: float, spec: str = "5.2f") -> str:
    """``[low, high]`` formatted by ``spec``, or ``–`` for a hidden (NaN) interval."""
    return "–" if math.isnan(low) else f"[{low:{spec}}, {high:{spec}}]"


def cells_text(n_cells: int, failed: int) -> str:
    """How many cells a row rests on: ``12``, or ``10 (2 failed)``."""
    return f"{n_cells} ({failed} failed)" if failed else str(n_cells)
