"""Loki HTTP API (Grafana's Loki datasource) over otel_logs, with the LogQL subset of query/logql/.

A stream is (service, severity, resource attributes); its labels are ``service_name``,
``severity_text``, ``level`` (lower-case severity) and the resource attributes with Prometheus-style
names. Log queries answer ``streams`` newest first unless ``direction=forward``; metric queries answer
Prometheus-style vectors/matrices. Errors are plain text with the HTTP status, as Loki answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.routing import Route

from ..logql import parser as logql
from ..logql.evaluator import Evaluator, keep_earliest, sql_of, stream_labels, stream_resources
from ..promql.naming import format_value
from ..promql.values import Scalar, Vector, label_key
from ..common import JSONResponse, cache_of, check_limit, first, form_params, now_ns, store_of
from ..tenant import QueryLimits, limits_of
from ..errors import BadRequest
from ..storage.store import Timer
from ..timeparse import NS, duration_ns, loki_time_ns

DEFAULT_LIMIT = 100
DEFAULT_WINDOW_NS = 3600 * NS
STREAMS_LIMIT = 10_000


ORDER_BY = {"forward": "loki/order_forward", "backward": "loki/order_backward"}


def _ok(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _window(params: dict[str, list[str]], limits: QueryLimits) -> tuple[int, int]:
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
    if end - start > limits.range_days * 86400 * NS:
        raise BadRequest(f"the query time range exceeds the limit ({limits.range_days} days, {limits.range_key})")
    return start, end


async def _log_streams(request: Request, q: logql.LogQuery, start: int, end: int, limit: int, direction: str
                       ) -> list[dict[str, Any]]:
    f = logql.compile_filter(q)
    params = {**f.params, "start_ns": start, "end_ns": end, "limit": limit}
    sql = sql_of("loki/logs_select", *f.fragments, ORDER_BY[direction])
    rows = await store_of(request).rows(sql, params, request=request)
    streams: dict[tuple[Any, ...], dict[str, Any]] = {}
    for ts, service, severity, resource, body in rows:
        key = (service, severity, tuple(sorted(resource.items())))
        s = streams.get(key)
        if s is None:
            s = streams[key] = {"stream": stream_labels(service, severity, resource), "values": []}
        s["values"].append([str(ts), body])
    return list(streams.values())


def _matrix(v: Vector, steps: np.ndarray) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for lab, vals in v.series:
        pts = [[int(t) / NS, format_value(float(x))] for t, x in zip(steps, vals) if not np.isnan(x)]
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
        limits = limits_of(request)
        start, end = _window(params, limits)
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
        if (end - start) // step > limits.points:
            raise BadRequest(f"exceeded maximum resolution of {limits.points} points per time series "
                             f"({limits.points_key})")
        steps = np.arange(start, end + 1, step, dtype=np.int64)
        mkey = ("loki_metric", first(params, "query"), start, end, step)

        async def metric() -> dict[str, Any]:
            v = await Evaluator(store_of(request), request, steps, step).eval(expr)
            if isinstance(v, Scalar):
                v = Vector([({}, v.values)])
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
        v = await Evaluator(store_of(request), request, steps, 0).eval(expr)
        if isinstance(v, Scalar):
            return _ok({"resultType": "scalar", "result": [t / NS, format_value(float(v.values[0]))],
                        "stats": {}})
        result = [{"metric": lab, "value": [t / NS, format_value(float(vals[0]))]}
                  for lab, vals in v.series if not np.isnan(vals[0])]
        return _ok({"resultType": "vector", "result": result, "stats": {}})


async def _streams(request: Request, params: dict[str, list[str]], selector: str | None, with_bytes: bool = False
                   ) -> list[tuple[dict[str, str], int, int]]:
    """(labels, entries, bytes) of the streams in the window; bytes only ``with_bytes`` (else 0)."""
    start, end = _window(params, limits_of(request))
    q = None
    if selector:
        e = logql.parse(selector)
        if not isinstance(e, logql.LogQuery):
            raise BadRequest("expected a stream selector")
        q = e
    f = logql.compile_filter(q)
    select = ["loki/streams_select"] + (["loki/bytes"] if with_bytes else [])
    rows = await store_of(request).rows(
        sql_of(*select, *f.fragments, "loki/streams_group"),
        {**f.params, "start_ns": start, "end_ns": end, "limit": STREAMS_LIMIT}, request=request)
    firsts: dict[int, tuple[str, int]] = {}
    for s, _, h, first, *_ in rows:
        keep_earliest(firsts, h, s, first)
    resources = await stream_resources(store_of(request), request, firsts)
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
                out[label_key(lab)] = lab
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
