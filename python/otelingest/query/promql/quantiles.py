"""histogram_quantile: Prometheus' bucketQuantile over the ``le`` series of each group."""

from __future__ import annotations

import math

import numpy as np

from .values import Labels, Vector, label_key


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' bucketQuantile over (upper bound, cumulative count) pairs."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets)
    if not buckets or not math.isinf(buckets[-1][0]):
        return math.nan
    merged: list[list[float]] = []
    for ub, c in buckets:  # coalesce equal bounds
        if merged and merged[-1][0] == ub:
            merged[-1][1] += c
        else:
            merged.append([ub, c])
    for i in range(1, len(merged)):  # ensure monotonic counts
        if merged[i][1] < merged[i - 1][1]:
            merged[i][1] = merged[i - 1][1]
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next(i for i, (_, c) in enumerate(merged) if c >= rank)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)


def histogram_quantile_of(q: np.ndarray, v: Vector, n: int) -> Vector:
    groups: dict[tuple[tuple[str, str], ...], tuple[Labels, list[tuple[float, np.ndarray]]]] = {}
    for lab, vals in v.series:
        if "le" not in lab:
            continue
        try:
            ub = float(lab["le"].replace("+Inf", "inf"))
        except ValueError:
            continue
        g = {k: x for k, x in lab.items() if k not in ("le", "__name__")}
        groups.setdefault(label_key(g), (g, []))[1].append((ub, vals))
    out = []
    for g, buckets in groups.values():
        vals = np.full(n, np.nan)
        for i in range(n):
            pts = [(ub, float(x[i])) for ub, x in buckets if not math.isnan(x[i])]
            if pts:
                vals[i] = bucket_quantile(float(q[i]), pts)
        out.append((g, vals))
    return Vector(out)
