"""Agreement between scorer and humans on the normalised scale (Pearson, Spearman, RMSE,
quadratic weighted kappa), and the mappings from a scorer's raw output to that scale (see the
``asag`` module docstring for why each)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from interviewer.errors import UserError

KAPPA_STEPS = 4  # quarters: five levels
MAPPINGS = ("fixed", "linear", "isotonic")


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two equally long sequences, got {a.shape} and {b.shape}")
    return a, b


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """NaN when either side is constant (no correlation is defined)."""
    a, b = _pair(x, y)
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else math.nan


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties given the mean of the ranks they span."""
    a = np.asarray(x, dtype=float)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    sorted_a = a[order]
    start = 0
    for end in range(1, len(a) + 1):
        if end == len(a) or sorted_a[end] != sorted_a[start]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    a, b = _pair(x, y)
    return pearson(average_ranks(a), average_ranks(b))


def rmse(x: Sequence[float], y: Sequence[float]) -> float:
    a, b = _pair(x, y)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def to_levels(normalized: Sequence[float], steps: int = KAPPA_STEPS) -> np.ndarray:
    """Normalised scores to integer levels 0..steps (nearest; halves round up)."""
    a = np.clip(np.asarray(normalized, dtype=float), 0, 1)
    return np.floor(a * steps + 0.5).astype(int)


def quadratic_weighted_kappa(a: Sequence[int], b: Sequence[int], levels: int) -> float:
    """Cohen's kappa with quadratic weights over the categories 0..levels-1."""
    x, y = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    if x.shape != y.shape or x.size == 0:
        raise ValueError("need two equally long, non-empty sequences of levels")
    if x.min() < 0 or y.min() < 0 or x.max() >= levels or y.max() >= levels:
        raise ValueError(f"levels must be in 0..{levels - 1}")
    observed = np.zeros((levels, levels))
    np.add.at(observed, (x, y), 1)
    expected = np.outer(np.bincount(x, minlength=levels), np.bincount(y, minlength=levels))
    expected = expected / x.size
    index = np.arange(levels)
    weights = (index[:, None] - index[None, :]) ** 2 / (levels - 1) ** 2
    disagreement = float((weights * expected).sum())
    if disagreement == 0:
        return math.nan
    return 1 - float((weights * observed).sum()) / disagreement


@dataclass(frozen=True)
class Metrics:
    n: int
    pearson: float
    spearman: float
    rmse: float
    qwk: float


def metrics(predicted: Sequence[float], human: Sequence[float]) -> Metrics:
    """All four, on the normalised scale (see the ``asag`` module doc)."""
    p, h = _pair(predicted, human)
    return Metrics(
        n=len(p),
        pearson=pearson(p, h),
        spearman=spearman(p, h),
        rmse=rmse(p, h),
        qwk=quadratic_weighted_kappa(to_levels(p), to_levels(h), KAPPA_STEPS + 1),
    )


# --- mapping raw scorer output to the human scale --------------------------------------------


class Mapping:
    """Raw scorer output -> predicted normalised score; ``fit`` learns from other rows."""

    name = "fixed"

    def fit(self, raw: Sequence[float], human: Sequence[float]) -> Mapping:
        return self

    def __call__(self, raw: Sequence[float]) -> np.ndarray:
        return np.clip(np.asarray(raw, dtype=float), 0, 1)


class LinearMapping(Mapping):
    name = "linear"

    def fit(self, raw: Sequence[float], human: Sequence[float]) -> LinearMapping:
        x, y = _pair(raw, human)
        if x.size == 0:
            raise ValueError("no rows to fit on")
        if np.ptp(x) == 0:  # a constant scorer: the best line is the mean
            self.slope, self.intercept = 0.0, float(y.mean())
        else:
            self.slope, self.intercept = (float(v) for v in np.polyfit(x, y, 1))
        return self

    def __call__(self, raw: Sequence[float]) -> np.ndarray:
        x = np.asarray(raw, dtype=float)
        return np.clip(self.intercept + self.slope * x, 0, 1)


class IsotonicMapping(Mapping):
    """Monotone non-decreasing fit (pool adjacent violators), linear between fitted points."""

    name = "isotonic"

    def fit(self, raw: Sequence[float], human: Sequence[float]) -> IsotonicMapping:
        x, y = _pair(raw, human)
        if x.size == 0:
            raise ValueError("no rows to fit on")
        order = np.argsort(x, kind="mergesort")
        xs, ys = x[order], y[order]
        # Equal x first become one point (their mean), then PAV over the distinct x.
        ux, start = np.unique(xs, return_index=True)
        sums = np.add.reduceat(ys, start)
        counts = np.diff(np.append(start, len(xs))).astype(float)
        blocks: list[list[float]] = []  # [sum, count, first index, last index]
        for i, (s, c) in enumerate(zip(sums, counts, strict=True)):
            blocks.append([s, c, i, i])
            while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
                s2, c2, _, last = blocks.pop()
                blocks[-1][0] += s2
                blocks[-1][1] += c2
                blocks[-1][3] = last
        fitted = np.empty(len(ux))
        for s, c, first, last in blocks:
            fitted[int(first) : int(last) + 1] = s / c
        self.x, self.y = ux, fitted
        return self

    def __call__(self, raw: Sequence[float]) -> np.ndarray:
        return np.clip(np.interp(np.asarray(raw, dtype=float), self.x, self.y), 0, 1)


def make_mapping(name: str) -> Mapping:
    if name not in MAPPINGS:
        raise UserError(f"unknown mapping {name!r}; choose one of {', '.join(MAPPINGS)}")
    return {"fixed": Mapping, "linear": LinearMapping, "isotonic": IsotonicMapping}[name]()
