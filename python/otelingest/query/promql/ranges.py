"""Range functions (rate, increase, delta, irate, *_over_time) at every step at once, over a series'
samples or its per-bucket aggregates: Prometheus' extrapolatedRate, vectorized."""

from __future__ import annotations

import numpy as np

from ..timeparse import NS
from .buckets import Buckets, NeedRaw
from .values import VALUE_NAN, Samples


RANGE_FUNCS = frozenset({
    "rate", "increase", "delta", "irate", "avg_over_time", "sum_over_time", "min_over_time", "max_over_time",
    "count_over_time", "last_over_time",
})


def last_nonempty(n: np.ndarray) -> np.ndarray:
    """For each bucket index, the last non-empty bucket at or before it (-1 if none)."""
    return np.maximum.accumulate(np.where(n > 0, np.arange(len(n)), -1))


def _next_nonempty(n: np.ndarray) -> np.ndarray:
    """For each bucket index, the first non-empty bucket at or after it (len(n) if none)."""
    idx = np.where(n > 0, np.arange(len(n)), len(n))
    return np.minimum.accumulate(idx[::-1])[::-1]


def range_over_buckets(name: str, b: Buckets, lo: np.ndarray, hi: np.ndarray, starts: np.ndarray,
                     ends: np.ndarray) -> np.ndarray:
    """A range function per step from the buckets (lo, hi] of each step's window.

    Raises:
        NeedRaw: a gauge's or counter's bucket holds a NaN or infinite sample (its sum is not finite): the raw samples
            give each window's NaN or Inf as Prometheus does.
    """
    if b.exact_stats and not np.isfinite(b.v_sum[b.n > 0]).all():
        raise NeedRaw()
    nb = len(b.n)
    cnt = np.concatenate([[0.0], np.cumsum(b.n)])
    count = cnt[hi + 1] - cnt[lo + 1]
    some = count > 0
    nxt = np.append(_next_nonempty(b.n), nb)
    prv = last_nonempty(b.n)
    fi = np.where(some, nxt[np.minimum(lo + 1, nb)], 0)
    li = np.where(some, prv[hi], 0)
    fi = np.minimum(fi, nb - 1)
    if name in ("rate", "increase", "delta"):
        counter_fn = name != "delta"
        resets = np.zeros(len(lo))
        if counter_fn:
            # Drops inside buckets, plus drops between consecutive non-empty buckets.
            r_in = np.concatenate([[0.0], np.cumsum(b.resets)])
            prev_last = np.where(prv > 0, b.v_last[np.maximum(np.concatenate([[-1], prv[:-1]]), 0)], np.nan)
            prev_idx = np.concatenate([[-1], prv[:-1]])
            boundary = np.where((b.n > 0) & (prev_idx >= 0) & (b.v_first < prev_last), prev_last, 0.0)
            bd = np.concatenate([[0.0], np.cumsum(np.nan_to_num(boundary))])
            resets = (r_in[hi + 1] - r_in[lo + 1]) + (bd[hi + 1] - bd[fi + 1])
        return _extrapolate(name, b.v_first[fi], b.v_last[li], b.t_first[fi], b.t_last[li], count, resets,
                            starts, ends, some, from_zero=not b.delta)
    if name == "count_over_time":
        return np.where(some, count, np.nan)
    if name == "last_over_time":
        return np.where(some, b.v_last[li], np.nan)
    csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(b.v_sum))])
    total = csum[hi + 1] - csum[lo + 1]
    if name == "sum_over_time":
        return np.where(some, total, np.nan)
    if name == "avg_over_time":
        with np.errstate(all="ignore"):
            return np.where(some, total / count, np.nan)
    out = np.full(len(lo), np.nan)
    src, fn = (b.v_min, np.nanmin) if name == "min_over_time" else (b.v_max, np.nanmax)
    for i in np.nonzero(some)[0]:
        out[i] = fn(src[lo[i] + 1:hi[i] + 1])
    return out


def _extrapolate(name: str, v0: np.ndarray, v1: np.ndarray, t0: np.ndarray, t1: np.ndarray, n: np.ndarray,
                 resets: np.ndarray, starts: np.ndarray, ends: np.ndarray, valid: np.ndarray, *,
                 from_zero: bool = True) -> np.ndarray:
    """Prometheus' extrapolatedRate (promql/functions.go), vectorized over steps. ``from_zero``: a
    counter may be extrapolated back to its zero point (not for running totals of deltas, which
    start at the window's edge, not at the series' start)."""
    two = valid & (n >= 2)
    counter_fn = name != "delta"
    result = v1 - v0 + (resets if counter_fn else 0.0)
    t0, t1 = t0.astype(np.float64), t1.astype(np.float64)
    with np.errstate(all="ignore"):
        sampled = (t1 - t0) / NS
        to_start = (t0 - starts) / NS
        to_end = (ends - t1) / NS
        avg_between = sampled / np.maximum(n - 1, 1)
        if counter_fn and from_zero:
            to_zero = sampled * (v0 / result)
            use_zero = (result > 0) & (v0 >= 0) & (to_zero < to_start)
            to_start = np.where(use_zero, to_zero, to_start)
        threshold = avg_between * 1.1
        interval = sampled + np.where(to_start < threshold, to_start, avg_between / 2)
        interval = interval + np.where(to_end < threshold, to_end, avg_between / 2)
        result = result * (interval / sampled)
        if name == "rate":
            result = result / ((ends - starts) / NS)
    return np.where(two & (sampled > 0), result, np.nan)


def range_over_samples(name: str, s: Samples, lo: np.ndarray, hi: np.ndarray, starts: np.ndarray,
                      ends: np.ndarray) -> np.ndarray:
    """A range function at every step at once; samples of step i are s.values[lo[i]:hi[i]]."""
    t, v = s.times, s.values
    n = hi - lo
    out = np.full(len(lo), np.nan)
    some = n > 0
    if not some.any():
        return out
    last_i = np.where(some, hi - 1, 0)
    if name in ("rate", "increase", "delta"):
        two = n >= 2
        first_i = np.where(two, lo, 0)
        last_i = np.where(two, hi - 1, 0)
        resets = np.zeros(len(lo))
        if name != "delta":
            # Counter resets: a drop between samples j and j+1 adds back the value before it.
            drops = np.concatenate([[0.0], np.cumsum(np.where(v[1:] < v[:-1], v[:-1], 0.0))])
            resets = drops[last_i] - drops[first_i]
        return _extrapolate(name, v[first_i], v[last_i], t[first_i], t[last_i], n, resets, starts, ends, two,
                            from_zero=not s.delta)
    if name == "irate":
        two = n >= 2
        a, b = np.where(two, hi - 2, 0), np.where(two, hi - 1, 0)
        dv = np.where(v[b] >= v[a], v[b] - v[a], v[b])
        dt = (t[b] - t[a]) / NS
        with np.errstate(all="ignore"):
            return np.where(two & (dt > 0), dv / dt, np.nan)
    if name == "sum_over_time":
        return np.where(some, window_sum(v, lo, hi), np.nan)
    if name == "count_over_time":
        return np.where(some, n.astype(np.float64), np.nan)
    if name == "avg_over_time":
        with np.errstate(all="ignore"):
            return np.where(some, window_sum(v, lo, hi) / n, np.nan)
    if name == "last_over_time":
        return np.where(some, v[last_i], np.nan)
    # min/max_over_time skip a NaN sample unless all are NaN (Prometheus).
    fn = np.min if name == "min_over_time" else np.max
    for i in np.nonzero(some)[0]:
        w = v[lo[i]:hi[i]]
        w = w[~np.isnan(w)]
        if len(w):
            out[i] = fn(w)
    return out


def window_sum(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Each window's sum of ``v[lo:hi]`` as Prometheus adds: NaN if the window holds a NaN or both
    infinities, ±Inf if it holds one, else the sum (prefix sums that a NaN or an Inf does not
    poison for the later windows)."""
    finite = np.isfinite(v)
    csum = np.concatenate([[0.0], np.cumsum(np.where(finite, v, 0.0))])
    out = csum[hi] - csum[lo]
    if finite.all():
        return out

    def held(mask: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0], np.cumsum(mask)])
        return (c[hi] - c[lo]) > 0

    pos, neg = held(v == np.inf), held(v == -np.inf)
    out = np.where(pos, np.inf, np.where(neg, -np.inf, out))
    return np.where(held(np.isnan(v)) | (pos & neg), np.nan, out)


# Samples a window needs for a range function to have a value (1 for the others).
MIN_SAMPLES = {"rate": 2, "increase": 2, "delta": 2, "irate": 2, "idelta": 2, "deriv": 2, "predict_linear": 2,
               "double_exponential_smoothing": 2}


def value_nans(name: str, v: np.ndarray, lo: np.ndarray, hi: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """``vals`` with the NaN results of the windows holding a NaN or infinite sample (and enough
    samples) marked as value NaNs: such a window's NaN is an answer, not "no value"."""
    odd = ~np.isfinite(v)
    if not odd.any():
        return vals
    c = np.concatenate([[0], np.cumsum(odd)])
    where = ((c[hi] - c[lo]) > 0) & ((hi - lo) >= MIN_SAMPLES.get(name, 1)) & np.isnan(vals)
    if not where.any():
        return vals
    out = vals.copy()
    out[where] = VALUE_NAN
    return out
