"""A pushdown query's rows as a PromQL vector: per (group, step) values, or a histogram's element-wise
sums per (group, bounds, step) combined per `le`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..naming import format_le
from ..values import VALUE_NAN, Labels, Vector


def combined(rows: list[tuple[Any, ...]], op: str) -> dict[tuple[int, str, int], float]:
    """(group, step) values of one aggregation over several chunks' rows."""
    out: dict[tuple[int, str, int], float] = {}
    for g, k, v in rows:
        key = (int(g), "", int(k))
        if key not in out:
            out[key] = v
        elif op in ("sum", "count"):
            out[key] += v
        elif math.isnan(v):
            pass  # min and max skip NaN unless all are NaN
        elif math.isnan(out[key]):
            out[key] = v
        else:
            out[key] = min(out[key], v) if op == "min" else max(out[key], v)
    return out


def bucket_vector(rows: list[tuple[Any, ...]], bounds_by_id: list[tuple[float, ...]], op: str, le_grouped: bool,
                   steps: int, group_labels: list[Labels]) -> Vector:
    return vector(per_le(rows, bounds_by_id, op, le_grouped, steps), group_labels, le_grouped)


def vector(values: dict[tuple[int, str], np.ndarray], group_labels: list[Labels], le_grouped: bool) -> Vector:
    out = []
    for (gid, le), arr in sorted(values.items()):
        lab = dict(group_labels[gid])
        if le_grouped:
            lab["le"] = le
        out.append((lab, arr))
    return Vector(out)


def dense(points: dict[tuple[int, str, int], float], steps: int) -> dict[tuple[int, str], np.ndarray]:
    """(group, le, step) -> value as one array over the steps per (group, le), NaN where absent."""
    out: dict[tuple[int, str], np.ndarray] = {}
    for (gid, le, k), v in points.items():
        arr = out.get((gid, le))
        if arr is None:
            arr = out[(gid, le)] = np.full(steps, np.nan)
        arr[k] = VALUE_NAN if math.isnan(v) else v  # a row is a value: its NaN a value NaN
    return out


def per_le(rows: list[tuple[Any, ...]], bounds_by_id: list[tuple[float, ...]], op: str, le_grouped: bool,
            steps: int) -> dict[tuple[int, str], np.ndarray]:
    """Element-wise sums per (group, bounds id, step) combined per `le` (sum, avg or count), as one
    array over the steps per (group, le), NaN where absent."""
    les_by_id = [[format_le(float(b)) for b in bounds] + ["+Inf"] for bounds in bounds_by_id]
    # Per (group, bounds id): each step's series count and element-wise sums, filled row by row.
    per: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for gid, bid, k, n, sums in rows:
        key = (int(gid), int(bid))
        if key not in per:
            per[key] = (np.zeros(steps), np.zeros((steps, len(les_by_id[key[1]]))))
        per[key][0][k] += n
        per[key][1][k] += sums
    # Then per (group, le): series with other bounds may share an `le`.
    acc: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
    for (gid, bid), (counts, sums_) in per.items():
        for j, le in enumerate(les_by_id[bid]):
            key2 = (gid, le if le_grouped else "")
            if key2 not in acc:
                acc[key2] = (np.zeros(steps), np.zeros(steps))
            acc[key2][0][:] += counts
            acc[key2][1][:] += sums_[:, j]
    out = {}
    for key2, (n_, total) in acc.items():
        value = {"count": n_, "sum": total, "avg": total / np.where(n_ > 0, n_, 1)}[op].astype(np.float64)
        out[key2] = np.where(n_ > 0, value, np.nan)
    return out
