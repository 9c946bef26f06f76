"""LogQL metric queries (count_over_time, rate, bytes_*, sum by, binary operators) evaluated per step.

A stream is (service, severity, resource attributes); its labels are ``service_name``,
``severity_text``, ``level`` (lower-case severity) and the resource attributes with Prometheus-style
names. Counts per stream and window come from ClickHouse (sql/queries/loki/counts_*.sql with the
filter fragments of :mod:`.parser`); the rest reuses the PromQL evaluator's values and operators.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...clickhouse import sqlfiles
from ..errors import BadRequest, Unavailable
from ..promql.aggregations import AGGREGATIONS
from ..promql.naming import label_name
from ..promql.operators import apply_op
from ..promql.source import series_chunks
from ..promql.values import Scalar, Vector, label_key
from ..storage.store import TenantStore
from ..timeparse import NS
from . import parser as logql

# Stream labels that come from the service and severity columns, not from resource attributes.
COLUMN_LABELS = ("service_name", "severity_text", "level", "detected_level")


def sql_of(*fragments: str) -> str:
    """One query from named fragments (sql/queries/loki/), joined in order."""
    return "\n".join(sqlfiles.query(f) for f in fragments)


def stream_labels(service: str, severity: str, resource: dict[str, str]) -> dict[str, str]:
    labels = {label_name(k): v for k, v in resource.items() if k != "service.name"}
    labels["service_name"] = service
    if severity:
        labels["severity_text"] = severity
        labels["level"] = severity.lower()
    return labels


def keep_earliest(firsts: dict[int, tuple[str, int]], stream: int, service: str, time_ns: int) -> None:
    """Note a record of ``stream`` (service, time) for stream_resources, keeping the stream's earliest."""
    if stream not in firsts or time_ns < firsts[stream][1]:
        firsts[stream] = (service, time_ns)


async def stream_resources(store: TenantStore, request: Any, firsts: dict[int, tuple[str, int]]) -> dict[int, dict[str, str]]:
    """Resource attributes per ResourceHash, read at one record of each stream: ``firsts`` maps a
    hash to the service and time of a record that has it."""
    found: dict[int, dict[str, str]] = {}
    for hashes in series_chunks(firsts):  # ids are a bound parameter: a chunk per query
        part = {h: firsts[h] for h in hashes}
        params = {"hashes": hashes, "services": sorted({s for s, _ in part.values()}),
                  "times": sorted({t for _, t in part.values()})}
        rows = await store.rows(sqlfiles.query("loki/stream_resources"), params, request=request)
        found |= {int(h): res for h, res in rows}
    if len(found) < len(firsts):
        # The record was there a moment ago: dropped by retention (or a DELETE) in between.
        raise Unavailable("log records were removed while the query ran; retry")
    return found


def _gcd_bucket(step: int, rng: int) -> int:
    return math.gcd(step, rng) or rng


class Evaluator:
    """A LogQL metric query at every step: counts and bytes per stream and window read in ClickHouse,
    the aggregations and operators in numpy (as the PromQL evaluator's)."""

    def __init__(self, store: TenantStore, request: Any, steps: np.ndarray, step: int) -> None:
        self.store = store
        self.request = request
        self.steps = steps
        self.step = step

    async def eval(self, e: Any) -> Vector | Scalar:
        if isinstance(e, logql.Number):
            return Scalar(np.full(len(self.steps), e.value))
        if isinstance(e, logql.VectorLit):
            return Vector([({}, np.full(len(self.steps), e.value))])
        if isinstance(e, logql.RangeAgg):
            return await self.range_agg(e, [])
        if isinstance(e, logql.VectorAgg):
            return await self.vector_agg(e)
        if isinstance(e, logql.BinOp):
            lhs, rhs = await self.eval(e.lhs), await self.eval(e.rhs)
            if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
                return Scalar(apply_op(e.op, lhs.values, rhs.values, True))
            if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
                return Vector([(lab, apply_op(e.op, v, rhs.values, True)) for lab, v in lhs.series])
            if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
                return Vector([(lab, apply_op(e.op, lhs.values, v, True)) for lab, v in rhs.series])
            assert isinstance(lhs, Vector) and isinstance(rhs, Vector)
            right = {label_key(lab): v for lab, v in rhs.series}
            out = []
            for lab, v in lhs.series:
                other = right.get(label_key(lab))
                if other is not None:
                    out.append((lab, apply_op(e.op, v, other, True)))
            return Vector(out)
        if isinstance(e, logql.LogQuery):
            raise BadRequest("a log query cannot be used in a metric expression; use count_over_time(...)")
        raise BadRequest(f"unsupported expression {type(e).__name__}")

    async def _windows(self, e: logql.RangeAgg, extra: list[str], per_stream: bool
                       ) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        """Lines and bytes in each step's window, per stream (labels, lines, bytes), exact integers.

        With ``per_stream`` false the streams of one service and severity are added up in
        ClickHouse and labelled by those columns only (for a sum by column labels). ``extra``: keys
        a ``by (...)`` needs that are not stream labels; they come from the parsed line.
        """
        rng = e.range_ns
        w = _gcd_bucket(self.step, rng) if self.step else rng
        origin = int(self.steps[0]) - rng
        end = int(self.steps[-1])
        nb = (end - origin) // w
        if nb > 1_000_000:
            raise BadRequest("range and step too fine for the time window")
        f = logql.compile_filter(e.query)
        with_bytes = e.func.startswith("bytes")
        params = {**f.params, "start_ns": origin, "end_ns": end, "origin_ns": origin, "bucket_ns": w,
                  "per_stream": per_stream, "group_keys": extra}
        select = ["loki/counts_select"] + (["loki/bytes"] if with_bytes else []) + \
            (["loki/counts_extracted"] if extra else [])
        rows = await self.store.rows(sql_of(*select, *f.fragments, "loki/counts_group"), params,
                                                 request=self.request)
        # (service, severity, stream, extracted) -> bucket numbers, lines, bytes
        acc: dict[tuple[Any, ...], tuple[list[int], list[int], list[int]]] = {}
        firsts: dict[int, tuple[str, int]] = {}
        for row in rows:
            service, severity, stream, bucket, first, n = row[:6]
            extracted = tuple(row[-1]) if extra else ()
            buckets, lines, sizes = acc.setdefault((service, severity, stream, extracted), ([], [], []))
            buckets.append(bucket)
            lines.append(n)
            sizes.append(row[6] if with_bytes else 0)
            if per_stream:
                keep_earliest(firsts, stream, service, first)
        resources = await stream_resources(self.store, self.request, firsts)
        # Streams whose labels come out the same (e.g. attributes differing only in service.name
        # or in '.' vs '_') are one series, as in Loki.
        per: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], np.ndarray, np.ndarray]] = {}
        for (service, severity, stream, extracted), (buckets, lines, sizes) in acc.items():
            lab = stream_labels(service, severity, resources[stream] if per_stream else {})
            lab.update({k: v for k, v in zip(extra, extracted) if v})
            key = label_key(lab)
            if key not in per:
                per[key] = (lab, np.zeros(nb + 1), np.zeros(nb + 1))
            idx = np.asarray(buckets, dtype=np.int64)
            inside = (idx >= 0) & (idx <= nb)
            per[key][1][:] += np.bincount(idx[inside], np.asarray(lines, dtype=np.float64)[inside], nb + 1)
            per[key][2][:] += np.bincount(idx[inside], np.asarray(sizes, dtype=np.float64)[inside], nb + 1)
        ratio, stride = rng // w, (self.step // w) if self.step else 0
        # Step k ends at bucket ratio + k*stride and spans `ratio` buckets.
        hi = ratio + stride * np.arange(len(self.steps))
        out = []
        for lab, per_lines, per_bytes in per.values():
            cum_n = np.concatenate([[0.0], np.cumsum(per_lines)])
            cum_b = np.concatenate([[0.0], np.cumsum(per_bytes)])
            out.append((lab, cum_n[hi + 1] - cum_n[hi + 1 - ratio], cum_b[hi + 1] - cum_b[hi + 1 - ratio]))
        return out

    @staticmethod
    def _values(e: logql.RangeAgg, lines: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
        """The value of ``e`` from a window's lines and bytes; no value where there are no lines."""
        vals = nbytes if e.func.startswith("bytes") else lines
        if e.func in ("rate", "bytes_rate"):
            vals = vals / (e.range_ns / NS)
        return np.where(lines == 0, np.nan, vals)

    async def range_agg(self, e: logql.RangeAgg, group_keys: list[str]) -> Vector:
        extra = [k for k in group_keys if k not in COLUMN_LABELS]
        windows = await self._windows(e, extra, per_stream=True)
        return Vector([(lab, self._values(e, lines, nbytes)) for lab, lines, nbytes in windows])

    async def vector_agg(self, e: logql.VectorAgg) -> Vector:
        keys = e.labels if e.by else []

        def group(lab: dict[str, str]) -> dict[str, str]:
            if e.by:
                return {k: (lab.get("level", "") if k == "detected_level" else lab.get(k, "")) for k in e.labels
                        if (lab.get("level") if k == "detected_level" else lab.get(k))}
            return {k: v for k, v in lab.items() if k not in e.labels}

        if e.op == "sum" and e.by and isinstance(e.expr, logql.RangeAgg) and all(k in COLUMN_LABELS for k in keys):
            # A sum by service/severity labels: the lines (or bytes) of a group are the sum of its
            # streams', so ClickHouse adds them up without telling streams apart, and a rate is
            # that sum divided once (exact, where a sum of per-stream rates is off in the last bit).
            sums: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], np.ndarray, np.ndarray]] = {}
            for lab, lines, nbytes in await self._windows(e.expr, [], per_stream=False):
                g = group(lab)
                k = label_key(g)
                if k in sums:
                    sums[k][1][:] += lines
                    sums[k][2][:] += nbytes
                else:
                    sums[k] = (g, lines.copy(), nbytes.copy())
            return Vector([(g, self._values(e.expr, lines, nbytes)) for g, lines, nbytes in sums.values()])

        inner = await self.range_agg(e.expr, keys) if isinstance(e.expr, logql.RangeAgg) else await self.eval(e.expr)
        if not isinstance(inner, Vector):
            raise BadRequest(f"{e.op}() needs a vector")

        groups: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[np.ndarray]]] = {}
        for lab, vals in inner.series:
            g = group(lab)
            groups.setdefault(label_key(g), (g, []))[1].append(vals)
        out = []
        for g, members in groups.values():
            stacked = np.vstack(members)
            present = ~np.isnan(stacked)
            with np.errstate(all="ignore"):
                vals = AGGREGATIONS[e.op](stacked, present)
            out.append((g, np.where(present.any(axis=0), vals, np.nan)))
        return Vector(out)
