"""The values a PromQL expression evaluates to, one array of step values per series, and the NaN
conventions they follow (absent vs value NaN vs stale marker)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import Unprocessable

Labels = dict[str, str]


@dataclass
class Samples:
    labels: dict[str, str]
    times: np.ndarray  # int64 ns, ascending
    values: np.ndarray  # float64
    counter: bool
    # Delta temporality: values are a running total from the window's start, not from the series'
    # start, so rate() must not extrapolate to a zero point that is only the window's edge.
    delta: bool = False


@dataclass
class Vector:
    series: list[tuple[Labels, np.ndarray]]  # values per step, NaN = absent


@dataclass
class Scalar:
    values: np.ndarray


@dataclass
class Matrix:
    """Only as the top-level result of an instant query over a range selector."""

    series: list[Samples]


# A NaN that is a value (sqrt(-1), x * NaN, a NaN sample) rather than "no sample at this step", which
# the per-step arrays write as the plain NaN: a quiet NaN with its own payload. An operation that may
# make a NaN computes which steps have both operands (present()) and marks its NaN results there
# (keep_nan()); the API renders it as "NaN". Aggregations and range functions take it as Prometheus
# does (sum NaN, min/max skip it unless all are NaN, count counts it: docs/promql.md).
VALUE_NAN_BITS = 0x7FF8_0000_0000_0BAD
VALUE_NAN = float(np.array([VALUE_NAN_BITS], dtype=np.uint64).view(np.float64)[0])


def is_value_nan(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).view(np.uint64) == VALUE_NAN_BITS


def present(x: np.ndarray) -> np.ndarray:
    """Steps holding a value (a value NaN included)."""
    return ~np.isnan(x) | is_value_nan(x)


def keep_nan(res: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``res`` at the ``where`` steps (its NaNs there as value NaNs), absent elsewhere."""
    out = np.where(where, res, np.nan)
    out[where & np.isnan(res)] = VALUE_NAN
    return out


def scalar_values(x: np.ndarray) -> np.ndarray:
    """A scalar's values as step values: a scalar is never absent, so its NaN is a value NaN."""
    return np.where(np.isnan(x), VALUE_NAN, x)


# Prometheus' stale marker: a NaN with payload 2, written when a series stops (remote write). It
# ends instant selection at once (a NaN is no sample there) and is no sample of a range window.
STALE_NAN_BITS = 0x7FF0000000000002


def without_stale(s: Samples) -> Samples:
    stale = s.values.view(np.uint64) == STALE_NAN_BITS
    if not stale.any():
        return s
    keep = ~stale
    return Samples(s.labels, s.times[keep], s.values[keep], s.counter, s.delta)


def label_key(labels: Labels) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def drop_name(labels: Labels) -> Labels:
    return {k: v for k, v in labels.items() if k != "__name__"}


def check_unique(series: list[tuple[Labels, np.ndarray]]) -> None:
    """A vector cannot hold two series with one label set at one step (label_replace/label_join)."""
    seen: dict[tuple[tuple[str, str], ...], np.ndarray] = {}
    for lab, vals in series:
        k = label_key(lab)
        held = present(vals)
        if k in seen and (seen[k] & held).any():
            raise Unprocessable("vector cannot contain metrics with the same labelset")
        seen[k] = seen.get(k, np.zeros(len(vals), dtype=bool)) | held


def sort_by_value(series: list[tuple[Labels, np.ndarray]], desc: bool) -> list[tuple[Labels, np.ndarray]]:
    """An instant vector's series by their (last) value, ascending or descending, NaN last; ties
    keep their order (Prometheus' heap sort leaves them unspecified)."""
    def key(item: tuple[Labels, np.ndarray]) -> tuple[bool, float]:
        x = float(item[1][-1])
        return (math.isnan(x), 0.0 if math.isnan(x) else (-x if desc else x))
    return sorted(series, key=key)
