"""Samples pre-aggregated per step bucket in ClickHouse (count, first, last, sum, min, max,
counter-reset corrections: sql/queries/promql/buckets_raw.sql), so a long range moves one row per
series and step; the result is exactly what the raw samples give, or NeedRaw says it cannot be."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .matchers import LabelMatcher, labels_match, le_label_sets
from .naming import format_le
from .source import Source, series_chunks


class NeedRaw(Exception):
    """The bucketed path cannot answer exactly (e.g. a histogram reset inside a bucket): read raw samples."""


@dataclass
class Buckets:
    """One Prometheus series pre-aggregated per bucket (dense arrays over bucket index 0..nb)."""

    labels: dict[str, str]
    n: np.ndarray
    t_first: np.ndarray
    t_last: np.ndarray
    v_first: np.ndarray
    v_last: np.ndarray
    v_sum: np.ndarray
    v_min: np.ndarray
    v_max: np.ndarray
    resets: np.ndarray
    exact_stats: bool  # sum/min/max are of the exposed values (not of deltas or histogram arrays)
    delta: bool = False  # as Samples.delta


async def bucketed(source: "Source", matchers: list[LabelMatcher], origin_ns: int, end_ns: int, w: int
                   ) -> list[Buckets]:
    """Series of the selector aggregated in ClickHouse per bucket of ``w`` ns from ``origin_ns``."""
    if source.table != "otel_metrics":
        raise NeedRaw()
    nb = (end_ns - origin_ns) // w
    if nb > 200_000:
        raise NeedRaw()
    series = await source.series(matchers, origin_ns, end_ns)
    if not series:
        return []
    names = sorted({info.otel_name for _, info, _, _ in series})
    rows: list[tuple[Any, ...]] = []
    for ids in series_chunks(sid for sid, _, _, _ in series):
        rows += await source.store.named("promql/buckets_raw", {
            "names": names, "series": ids, "origin_ns": origin_ns, "end_ns": end_ns, "bucket_ns": w,
        }, request=source.request)
    by_sid: dict[int, list[tuple[Any, ...]]] = {}
    for r in rows:
        by_sid.setdefault(int(r[0]), []).append(r)
    fns = await source.predicates([m for m in matchers if m.name == "le"], le_label_sets(rows, 22))
    out: list[Buckets] = []
    for sid, info, kind, labels in series:
        pts = by_sid.get(sid)
        if not pts:
            continue
        delta = info.temporality == "Delta"
        idx = np.fromiter((int(p[1]) for p in pts), dtype=np.int64, count=len(pts))
        ok = (idx >= 0) & (idx <= nb)
        pts = [p for p, good in zip(pts, ok) if good]
        idx = idx[ok]

        def dense(col: int) -> np.ndarray:
            a = np.full(nb + 1, np.nan)
            a[idx] = np.fromiter((float(p[col]) for p in pts), dtype=np.float64, count=len(pts))
            return a

        n = np.zeros(nb + 1)
        n[idx] = [p[2] for p in pts]
        t_first, t_last = dense(3), dense(4)
        if kind == "bucket":
            if any(p[14] > 0 for p in pts):
                raise NeedRaw()  # a histogram reset inside a bucket: per-bound corrections unknown
            out.extend(_bucketed_le(labels, pts, idx, nb, n, t_first, t_last, delta, fns))
            continue
        cols = {"value": (5, 6, 7, 8, 9, 10), "count": (11, 12, 13, None, None, 14),
                "sum": (15, 16, 17, None, None, 18)}[kind]
        v_first, v_last, v_sum = dense(cols[0]), dense(cols[1]), dense(cols[2])
        v_min = dense(cols[3]) if cols[3] is not None else np.full(nb + 1, np.nan)
        v_max = dense(cols[4]) if cols[4] is not None else np.full(nb + 1, np.nan)
        resets = np.nan_to_num(dense(cols[5]))
        exact = kind == "value" and not delta
        if delta:
            # Deltas become a running total: at a bucket's end, everything summed so far.
            prefix = np.cumsum(np.nan_to_num(v_sum))
            before = np.concatenate([[0.0], prefix[:-1]])
            v_first, v_last = before + v_first, prefix.copy()
            resets = np.zeros(nb + 1)
        out.append(Buckets(labels, n, t_first, t_last, v_first, v_last, v_sum, v_min, v_max, resets, exact, delta))
    return out


def _bucketed_le(labels: dict[str, str], pts: list[tuple[Any, ...]], idx: np.ndarray, nb: int, n: np.ndarray,
                 t_first: np.ndarray, t_last: np.ndarray, delta: bool,
                 fns: list[tuple[str, Callable[[str], bool]]]) -> list[Buckets]:
    bounds = None
    for p in pts:
        pb = [float(b) for b in p[22]]
        if bounds is None:
            bounds = pb
        elif pb != bounds:
            raise NeedRaw()  # bounds changed within the window
    assert bounds is not None
    allb = bounds + [math.inf]
    k = len(allb)

    def matrix(col: int) -> np.ndarray:
        m = np.full((nb + 1, k), np.nan)
        for i, p in zip(idx, pts):
            arr = list(p[col])
            if len(arr) != k:
                raise NeedRaw()
            m[i] = np.cumsum(np.asarray(arr, dtype=np.float64))
        return m

    first, last = matrix(19), matrix(20)
    if delta:
        sums = np.nan_to_num(matrix(21))
        prefix = np.cumsum(sums, axis=0)
        before = np.vstack([np.zeros((1, k)), prefix[:-1]])
        first, last = before + np.nan_to_num(first), prefix
        empty = n == 0
        first[empty], last[empty] = np.nan, np.nan
    out = []
    nan = np.full(nb + 1, np.nan)
    for j, b in enumerate(allb):
        lab = {**labels, "le": format_le(b)}
        if labels_match(lab, fns):
            out.append(Buckets(lab, n, t_first, t_last, first[:, j], last[:, j], nan, nan, nan, np.zeros(nb + 1),
                               False, delta))
    return out
