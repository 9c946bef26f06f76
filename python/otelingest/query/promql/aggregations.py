"""Aggregation operators evaluated in the process: per group and step over stacked series values."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import functions as fx
from .naming import format_value
from .values import Labels, Vector, label_key, present


def count_values(v: Vector, group_labels: Callable[[Labels], Labels], target: str, steps: int) -> Vector:
    """count_values: per group and step, how many series have each value (as a label)."""
    out: dict[tuple[tuple[str, str], ...], tuple[Labels, np.ndarray]] = {}
    for lab, vals in v.series:
        g = group_labels(lab)
        for j in np.nonzero(present(vals))[0]:
            glab = {**g, target: format_value(float(vals[j]))}
            k = label_key(glab)
            if k not in out:
                out[k] = (glab, np.full(steps, np.nan))
            arr = out[k][1]
            arr[j] = 1.0 if math.isnan(arr[j]) else arr[j] + 1.0
    return Vector(list(out.values()))


def topk(v: Vector, group_labels: Callable[[Labels], Labels], k: np.ndarray, top: bool) -> Vector:
    if not v.series:
        return v
    groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for i, (lab, _) in enumerate(v.series):
        groups.setdefault(label_key(group_labels(lab)), []).append(i)
    stacked = np.vstack([vals for _, vals in v.series])
    held = present(stacked)
    keep = np.zeros_like(stacked, dtype=bool)
    for members in groups.values():
        for step in range(stacked.shape[1]):
            kk = int(k[step]) if not math.isnan(k[step]) else 0
            # A value NaN ranks last for topk and bottomk alike (Prometheus).
            col = [(math.isnan(x), -x if top else x, i) for i in members
                   for x in [float(stacked[i, step])] if held[i, step]]
            col.sort(key=lambda x: x[:2])
            for _, _, i in col[:max(kk, 0)]:
                keep[i, step] = True
    return Vector([(lab, np.where(keep[i], vals, np.nan)) for i, (lab, vals) in enumerate(v.series)])


# Over present values (``p``), a value NaN included: sum, avg, stddev and stdvar become NaN, min and
# max skip it unless every value is NaN (Prometheus), count counts it.
def _agg_sum(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.sum(np.where(p, x, 0.0), axis=0)


def _agg_count(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p.sum(axis=0).astype(np.float64)


def _agg_avg(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return _agg_sum(x, p) / p.sum(axis=0)


def _agg_min(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    number = p & ~np.isnan(x)
    return np.where(number.any(axis=0), np.min(np.where(number, x, np.inf), axis=0), np.nan)


def _agg_max(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    number = p & ~np.isnan(x)
    return np.where(number.any(axis=0), np.max(np.where(number, x, -np.inf), axis=0), np.nan)


def _agg_group(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.ones(x.shape[1])


AGGREGATIONS = {"sum": _agg_sum, "count": _agg_count, "avg": _agg_avg, "min": _agg_min, "max": _agg_max,
         "group": _agg_group, "stddev": fx.agg_stddev, "stdvar": fx.agg_stdvar}
