"""Loki HTTP API (Grafana's Loki datasource) over otel_logs, with the LogQL subset of logql.py.

A stream is (service, severity, resource attributes); its labels are ``service_name``,
``severity_text``, ``level`` (lower-case severity) and the resource attributes with Prometheus-style
names. Log queries answer ``streams`` newest first unless ``direction=forward``; metric queries answer
Prometheus-style vectors/matrices. Errors are plain text with the HTTP status, as Loki answers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.routing import Route

from ..clickhouse import sqlfiles
from . import logql, promql
from .common import JSONResponse, cache_of, check_limit, first, form_params, now_ns, store_of
from .errors import BadRequest, Unavailable
from .store import Timer
from .timeparse import NS, duration_ns, loki_time_ns

DEFAULT_LIMIT = 100
DEFAULT_WINDOW_NS = 3600 * NS
STREAMS_LIMIT = 10_000
# Stream labels that come from the service and severity columns, not from resource attributes.
COLUMN_LABELS = ("service_name", "severity_text", "level", "detected_level")


def _sql(*fragments: str) -> str:
    return "\n".join(sqlfiles.query(f) for f in fragments)


def stream_labels(service: str, severity: str, resource: dict[str, str]) -> dict[str, str]:
    labels = {promql.label_name(k): v for k, v in resource.items() if k != "service.name"}
    labels["service_name"] = service
    if severity:
        labels["severity_text"] = severity
        labels["level"] = severity.lower()
    return labels


def _ok(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _window(params: dict[str, list[str]], cfg: Any) -> tuple[int, int]:
    end_s, start_s, since = first(params, "end"), first(params, "start"), first(params, "since")
    end = loki_time_ns(end_s, "end") if end_s else now_ns()
    if start_s:
        start = loki_time_ns(start_s, "start")
    elif since:
        start = end - duration_ns(since, "since")
    else:
        start = end - DEFAULT_WINDOW_NS
    if end < start:
        raise BadRequest("end timestamp must not be before or equal to start time")
    if end - start > cfg.max_range_days * 86400 * NS:
        raise BadRequest(f"the query time range exceeds the limit ({cfg.max_range_days} days)")
    return start, end


async def _log_streams(request: Request, q: logql.LogQuery, start: int, end: int, limit: int, direction: str
                       ) -> list[dict[str, Any]]:
    f = logql.compile_filter(q)
    params = {**f.params, "start_ns": start, "end_ns": end, "limit": limit}
    sql = _sql("loki_logs_select", *f.fragments, f"loki_order_{direction}")
    rows = await store_of(request).rows(sql, params, request=request)
    streams: dict[tuple[Any, ...], dict[str, Any]] = {}
    for ts, service, severity, resource, body in rows:
        key = (service, severity, tuple(sorted(resource.items())))
        s = streams.get(key)
        if s is None:
            s = streams[key] = {"stream": stream_labels(service, severity, resource), "values": []}
        s["values"].append([str(ts), body])
    return list(streams.values())


def _keep_earliest(firsts: dict[int, tuple[str, int]], stream: int, service: str, time_ns: int) -> None:
    """Note a record of ``stream`` (service, time) for _resources, keeping the stream's earliest."""
    if stream not in firsts or time_ns < firsts[stream][1]:
        firsts[stream] = (service, time_ns)


async def _resources(request: Request, firsts: dict[int, tuple[str, int]]) -> dict[int, dict[str, str]]:
    """Resource attributes per ResourceHash, read at one record of each stream: ``firsts`` maps a
    hash to the service and time of a record that has it."""
    found: dict[int, dict[str, str]] = {}
    for hashes in promql.series_chunks(firsts):  # ids are a bound parameter: a chunk per query
        part = {h: firsts[h] for h in hashes}
        params = {"hashes": hashes, "services": sorted({s for s, _ in part.values()}),
                  "times": sorted({t for _, t in part.values()})}
        rows = await store_of(request).rows(sqlfiles.query("loki_stream_resources"), params, request=request)
        found |= {int(h): res for h, res in rows}
    if len(found) < len(firsts):
        # The record was there a moment ago: dropped by retention (or a DELETE) in between.
        raise Unavailable("log records were removed while the query ran; retry")
    return found


def _gcd_bucket(step: int, rng: int) -> int:
    return math.gcd(step, rng) or rng


class _Eval:
    def __init__(self, request: Request, steps: np.ndarray, step: int) -> None:
        self.request = request
        self.steps = steps
        self.step = step

    async def eval(self, e: Any) -> promql.Vector | promql.Scalar:
        if isinstance(e, logql.Number):
            return promql.Scalar(np.full(len(self.steps), e.value))
        if isinstance(e, logql.VectorLit):
            return promql.Vector([({}, np.full(len(self.steps), e.value))])
        if isinstance(e, logql.RangeAgg):
            return await self.range_agg(e, [])
        if isinstance(e, logql.VectorAgg):
            return await self.vector_agg(e)
        if isinstance(e, logql.BinOp):
            lhs, rhs = await self.eval(e.lhs), await self.eval(e.rhs)
            if isinstance(lhs, promql.Scalar) and isinstance(rhs, promql.Scalar):
                return promql.Scalar(promql._apply(e.op, lhs.values, rhs.values, True))
            if isinstance(lhs, promql.Vector) and isinstance(rhs, promql.Scalar):
                return promql.Vector([(lab, promql._apply(e.op, v, rhs.values, True)) for lab, v in lhs.series])
            if isinstance(lhs, promql.Scalar) and isinstance(rhs, promql.Vector):
                return promql.Vector([(lab, promql._apply(e.op, lhs.values, v, True)) for lab, v in rhs.series])
            assert isinstance(lhs, promql.Vector) and isinstance(rhs, promql.Vector)
            right = {promql._key(lab): v for lab, v in rhs.series}
            out = []
            for lab, v in lhs.series:
                other = right.get(promql._key(lab))
                if other is not None:
                    out.append((lab, promql._apply(e.op, v, other, True)))
            return promql.Vector(out)
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
        select = ["loki_counts_select"] + (["loki_bytes"] if with_bytes else []) + \
            (["loki_counts_extracted"] if extra else [])
        rows = await store_of(self.request).rows(_sql(*select, *f.fragments, "loki_counts_group"), params,
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
                _keep_earliest(firsts, stream, service, first)
        resources = await _resources(self.request, firsts)
        # Streams whose labels come out the same (e.g. attributes differing only in service.name
        # or in '.' vs '_') are one series, as in Loki.
        per: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], np.ndarray, np.ndarray]] = {}
        for (service, severity, stream, extracted), (buckets, lines, sizes) in acc.items():
            lab = stream_labels(service, severity, resources[stream] if per_stream else {})
            lab.update({k: v for k, v in zip(extra, extracted) if v})
            key = promql._key(lab)
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

    async def range_agg(self, e: logql.RangeAgg, group_keys: list[str]) -> promql.Vector:
        extra = [k for k in group_keys if k not in COLUMN_LABELS]
        windows = await self._windows(e, extra, per_stream=True)
        return promql.Vector([(lab, self._values(e, lines, nbytes)) for lab, lines, nbytes in windows])

    async def vector_agg(self, e: logql.VectorAgg) -> promql.Vector:
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
                k = promql._key(g)
                if k in sums:
                    sums[k][1][:] += lines
                    sums[k][2][:] += nbytes
                else:
                    sums[k] = (g, lines.copy(), nbytes.copy())
            return promql.Vector([(g, self._values(e.expr, lines, nbytes)) for g, lines, nbytes in sums.values()])

        inner = await self.range_agg(e.expr, keys) if isinstance(e.expr, logql.RangeAgg) else await self.eval(e.expr)
        if not isinstance(inner, promql.Vector):
            raise BadRequest(f"{e.op}() needs a vector")

        groups: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[np.ndarray]]] = {}
        for lab, vals in inner.series:
            g = group(lab)
            groups.setdefault(promql._key(g), (g, []))[1].append(vals)
        out = []
        for g, members in groups.values():
            stacked = np.vstack(members)
            present = ~np.isnan(stacked)
            with np.errstate(all="ignore"):
                vals = promql._AGGS[e.op](stacked, present)
            out.append((g, np.where(present.any(axis=0), vals, np.nan)))
        return promql.Vector(out)


def _matrix(v: promql.Vector, steps: np.ndarray) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for lab, vals in v.series:
        pts = [[int(t) / NS, promql.format_value(float(x))] for t, x in zip(steps, vals) if not np.isnan(x)]
        if pts:
            out.append({"metric": lab, "values": pts})
    out.sort(key=lambda s: sorted(s["metric"].items()))
    return out


def _limit(params: dict[str, list[str]], cfg: Any) -> int:
    raw = first(params, "limit") or str(DEFAULT_LIMIT)
    if not raw.isdigit():
        raise BadRequest(f"invalid limit {raw[:50]!r}")
    return check_limit(int(raw), cfg.max_limit) or DEFAULT_LIMIT


def _direction(params: dict[str, list[str]]) -> str:
    d = (first(params, "direction") or "backward").lower()
    if d not in ("backward", "forward"):
        raise BadRequest(f"invalid direction {d[:20]!r}: backward or forward")
    return d


async def query_range(request: Request) -> JSONResponse:
    with Timer("loki_query_range"):
        params = await form_params(request)
        cfg = request.app.state.cfg.query
        expr = logql.parse(first(params, "query") or "")
        start, end = _window(params, cfg)
        limit, direction = _limit(params, cfg), _direction(params)
        if isinstance(expr, logql.LogQuery):
            key = ("loki_logs", first(params, "query"), start, end, limit, direction)

            async def logs() -> dict[str, Any]:
                streams = await _log_streams(request, expr, start, end, limit, direction)
                return {"resultType": "streams", "result": streams, "stats": {}}

            return _ok(await cache_of(request).get_or_compute(key, end, logs))
        step_raw = first(params, "step")
        step = duration_ns(step_raw, "step") if step_raw else max(NS, ((end - start) // 250 // NS) * NS)
        if step <= 0:
            raise BadRequest("zero or negative query resolution step widths are not accepted")
        if (end - start) // step > cfg.max_points:
            raise BadRequest(f"exceeded maximum resolution of {cfg.max_points} points per time series")
        steps = np.arange(start, end + 1, step, dtype=np.int64)
        mkey = ("loki_metric", first(params, "query"), start, end, step)

        async def metric() -> dict[str, Any]:
            v = await _Eval(request, steps, step).eval(expr)
            if isinstance(v, promql.Scalar):
                v = promql.Vector([({}, v.values)])
            return {"resultType": "matrix", "result": _matrix(v, steps), "stats": {}}

        return _ok(await cache_of(request).get_or_compute(mkey, end, metric))


async def query(request: Request) -> JSONResponse:
    with Timer("loki_query"):
        params = await form_params(request)
        cfg = request.app.state.cfg.query
        expr = logql.parse(first(params, "query") or "")
        t_s = first(params, "time")
        t = loki_time_ns(t_s, "time") if t_s else now_ns()
        if isinstance(expr, logql.LogQuery):
            limit, direction = _limit(params, cfg), _direction(params)
            streams = await _log_streams(request, expr, t - DEFAULT_WINDOW_NS, t, limit, direction)
            return _ok({"resultType": "streams", "result": streams, "stats": {}})
        steps = np.array([t], dtype=np.int64)
        v = await _Eval(request, steps, 0).eval(expr)
        if isinstance(v, promql.Scalar):
            return _ok({"resultType": "scalar", "result": [t / NS, promql.format_value(float(v.values[0]))],
                        "stats": {}})
        result = [{"metric": lab, "value": [t / NS, promql.format_value(float(vals[0]))]}
                  for lab, vals in v.series if not np.isnan(vals[0])]
        return _ok({"resultType": "vector", "result": result, "stats": {}})


async def _streams(request: Request, params: dict[str, list[str]], selector: str | None, with_bytes: bool = False
                   ) -> list[tuple[dict[str, str], int, int]]:
    """(labels, entries, bytes) of the streams in the window; bytes only ``with_bytes`` (else 0)."""
    cfg = request.app.state.cfg.query
    start, end = _window(params, cfg)
    q = None
    if selector:
        e = logql.parse(selector)
        if not isinstance(e, logql.LogQuery):
            raise BadRequest("expected a stream selector")
        q = e
    f = logql.compile_filter(q)
    select = ["loki_streams_select"] + (["loki_bytes"] if with_bytes else [])
    rows = await store_of(request).rows(
        _sql(*select, *f.fragments, "loki_streams_group"),
        {**f.params, "start_ns": start, "end_ns": end, "limit": STREAMS_LIMIT}, request=request)
    firsts: dict[int, tuple[str, int]] = {}
    for s, _, h, first, *_ in rows:
        _keep_earliest(firsts, h, s, first)
    resources = await _resources(request, firsts)
    return [(stream_labels(s, sev, resources[h]), int(n), int(rest[0]) if rest else 0)
            for s, sev, h, _, n, *rest in rows]


async def labels(request: Request) -> JSONResponse:
    with Timer("loki_labels"):
        params = await form_params(request)
        names: set[str] = set()
        for lab, _, _ in await _streams(request, params, first(params, "query")):
            names.update(lab)
        return _ok(sorted(names))


async def label_values(request: Request) -> JSONResponse:
    with Timer("loki_label_values"):
        params = await form_params(request)
        name = request.path_params["name"]
        values = {lab[name] for lab, _, _ in await _streams(request, params, first(params, "query")) if name in lab}
        return _ok(sorted(values))


async def series(request: Request) -> JSONResponse:
    with Timer("loki_series"):
        params = await form_params(request)
        given = params.get("match[]") or params.get("match") or []
        matches: list[str | None] = list(given) if given else [None]
        out: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        for m in matches:
            for lab, _, _ in await _streams(request, params, m):
                out[promql._key(lab)] = lab
        return _ok([out[k] for k in sorted(out)])


async def index_stats(request: Request) -> JSONResponse:
    with Timer("loki_index_stats"):
        params = await form_params(request)
        streams = await _streams(request, params, first(params, "query"), with_bytes=True)
        return JSONResponse({"streams": len(streams), "chunks": len(streams),
                             "entries": sum(n for _, n, _ in streams), "bytes": sum(b for _, _, b in streams)})


async def buildinfo(request: Request) -> JSONResponse:
    return JSONResponse({"version": "3.0.0", "revision": "otelingest", "branch": "otelingest", "buildUser": "",
                         "buildDate": "", "goVersion": ""})


routes = [
    Route("/loki/api/v1/query_range", query_range, methods=["GET", "POST"]),
    Route("/loki/api/v1/query", query, methods=["GET", "POST"]),
    Route("/loki/api/v1/labels", labels, methods=["GET", "POST"]),
    Route("/loki/api/v1/label", labels, methods=["GET"]),
    Route("/loki/api/v1/label/{name:str}/values", label_values, methods=["GET", "POST"]),
    Route("/loki/api/v1/series", series, methods=["GET", "POST"]),
    Route("/loki/api/v1/index/stats", index_stats, methods=["GET", "POST"]),
    Route("/loki/api/v1/status/buildinfo", buildinfo, methods=["GET"]),
]
