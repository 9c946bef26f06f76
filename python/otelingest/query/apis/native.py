"""The design's own API: JSON bodies decoded and results encoded with msgspec.

- ``POST /api/v1/traces``   {trace_id | service_name, start_time, end_time, min_duration, max_duration, limit}
- ``POST /api/v1/metrics``  {metric_name, service_name, start_time, end_time, aggregation, step}
- ``POST /api/v1/logs``     {service_name, start_time, end_time, severity, search_text, limit}
- ``GET  /api/v1/services/stats``  per service: spans, error rate, p50/p95/p99 duration, logs, metric points.

Times are RFC3339 or unix nanoseconds; durations ``250ms``-style or nanoseconds. Errors are
``{"error": {"field": ..., "message": ...}}`` with status 400 for invalid requests.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct
from starlette.requests import Request
from starlette.routing import Route

from ..common import JSONResponse, cache_of, check_limit, check_points, check_window, now_ns, store_of, trace_id_hex
from ..tenant import limits_of
from ..errors import BadRequest, NotFound
from ..spans import Span, fetch_trace, fetch_traces, search_newest
from ..storage.store import Timer
from ..storage.tables import BUCKET_S, choose_metrics_table
from ..timeparse import NS, duration_ns, time_ns

DEFAULT_WINDOW_NS = 3600 * NS
DEFAULT_TRACE_LIMIT = 20
DEFAULT_LOG_LIMIT = 100
MAX_BODY_BYTES = 1 << 20
TimeValue = str | int
Text = Annotated[str, Meta(max_length=1024)]

# OTel severity-number ranges per level name.
SEVERITY_RANGES = {
    "TRACE": (1, 4), "DEBUG": (5, 8), "INFO": (9, 12), "WARN": (13, 16), "WARNING": (13, 16),
    "ERROR": (17, 20), "FATAL": (21, 24), "CRITICAL": (21, 24),
}


# (rate?, raw table?) -> the query answering /api/v1/metrics.
METRICS_QUERIES = {(True, True): "api/metrics_rate_raw", (True, False): "api/metrics_rate_rollup",
                   (False, True): "api/metrics_agg_raw", (False, False): "api/metrics_agg_rollup"}


class TracesRequest(Struct, forbid_unknown_fields=True):
    trace_id: Text | None = None
    service_name: Text | None = None
    start_time: TimeValue | None = None
    end_time: TimeValue | None = None
    min_duration: TimeValue | None = None
    max_duration: TimeValue | None = None
    limit: int = DEFAULT_TRACE_LIMIT


class MetricsRequest(Struct, forbid_unknown_fields=True):
    metric_name: Text
    service_name: Text | None = None
    start_time: TimeValue | None = None
    end_time: TimeValue | None = None
    aggregation: Literal["avg", "sum", "min", "max", "count", "p50", "p95", "p99", "rate"] = "avg"
    step: TimeValue = "60s"


class LogsRequest(Struct, forbid_unknown_fields=True):
    service_name: Text | None = None
    start_time: TimeValue | None = None
    end_time: TimeValue | None = None
    severity: Text | None = None
    search_text: Text | None = None
    limit: int = DEFAULT_LOG_LIMIT


async def _decode(request: Request, typ: type[Any]) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest("request body too large")
    try:
        return msgspec.json.decode(body or b"{}", type=typ)
    except msgspec.ValidationError as e:
        msg = str(e)
        field = None
        if "at `$." in msg:
            msg, _, path = msg.partition(" - at `$.")
            field = path.rstrip("`")
        elif "required field" in msg:
            field = msg.split("`")[1] if "`" in msg else None
        raise BadRequest(msg, field=field) from None
    except msgspec.DecodeError as e:
        raise BadRequest(f"invalid JSON: {e}") from None


def _window(req: Any, request: Request) -> tuple[int, int]:
    end = time_ns(req.end_time, "end_time") if req.end_time is not None else now_ns()
    start = time_ns(req.start_time, "start_time") if req.start_time is not None else end - DEFAULT_WINDOW_NS
    check_window(start, end, limits_of(request), field="end_time")
    return start, end


def _duration(v: str | int | None, field: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, int):
        if v < 0:
            raise BadRequest("must not be negative", field=field)
        return v  # nanoseconds
    return duration_ns(v, field)


def span_json(s: Span) -> dict[str, Any]:
    return {
        "trace_id": s.trace_id.lower(),
        "span_id": s.span_id.lower(),
        "parent_span_id": s.parent.lower() if s.parent else None,
        "name": s.name,
        "kind": s.kind,
        "service_name": s.service,
        "start_time": s.start_ns,
        "duration_ns": s.duration_ns,
        "status_code": s.status_code,
        "status_message": s.status_message,
        "attributes": s.attributes,
        "resource_attributes": s.resource,
        "scope": {"name": s.scope_name, "version": s.scope_version},
        "events": [
            {"time": t, "name": n, "attributes": a}
            for t, n, a in zip(s.event_times, s.event_names, s.event_attributes)
        ],
        "links": [
            {"trace_id": t.lower(), "span_id": i.lower(), "trace_state": ts, "attributes": a}
            for t, i, ts, a in zip(s.link_trace_ids, s.link_span_ids, s.link_trace_states, s.link_attributes)
        ],
    }


def trace_json(trace_id: str, spans: list[Span]) -> dict[str, Any]:
    start = min(s.start_ns for s in spans)
    end = max(s.start_ns + s.duration_ns for s in spans)
    return {
        "trace_id": trace_id.lower(),
        "start_time": start,
        "duration_ns": end - start,
        "span_count": len(spans),
        "services": sorted({s.service for s in spans}),
        "spans": [span_json(s) for s in spans],
    }


async def traces(request: Request) -> JSONResponse:
    with Timer("api_traces"):
        req = await _decode(request, TracesRequest)
        cfg = request.app.state.cfg.query
        store = store_of(request)
        limit = check_limit(req.limit, cfg.max_limit)
        if req.trace_id is not None:
            tid = trace_id_hex(req.trace_id, "trace_id")
            spans = await fetch_trace(store, tid, request=request)
            if not spans:
                raise NotFound(f"trace {req.trace_id} not found")
            return JSONResponse({"traces": [trace_json(tid, spans)]})
        if not req.service_name:
            raise BadRequest("trace_id or service_name is required", field="service_name")
        start, end = _window(req, request)
        min_d = _duration(req.min_duration, "min_duration") or 0
        max_d = _duration(req.max_duration, "max_duration")
        max_d = (1 << 63) if max_d is None else max_d
        params = {
            "service": req.service_name, "operation": "", "span_kind": "", "start_ns": start, "end_ns": end,
            "min_duration": min_d, "max_duration": max_d, "limit": limit,
        }

        async def compute() -> dict[str, Any]:
            rows = await search_newest(store, "traces/search", params, request=request)
            ids = [r[0] for r in rows]
            found = await fetch_traces(store, ids, found_in=(start, end), request=request)
            return {"traces": [trace_json(t, found[t]) for t in ids if t in found]}

        key = ("api_traces", tuple(sorted(params.items())))
        return JSONResponse(await cache_of(request).get_or_compute(key, end, compute))


_AGG_INDEX = {"avg": 0, "sum": 1, "min": 2, "max": 3, "count": 4}
_Q_INDEX = {"p50": 0, "p95": 1, "p99": 2}


async def metrics(request: Request) -> JSONResponse:
    with Timer("api_metrics"):
        req = await _decode(request, MetricsRequest)
        start, end = _window(req, request)
        step_ns = duration_ns(req.step, "step") if isinstance(req.step, str) else req.step
        if step_ns < NS:
            raise BadRequest("must be at least 1s", field="step")
        step_s = step_ns // NS
        check_points((end - start) // step_ns, limits_of(request))
        table = choose_metrics_table(start, end, step_s, store_of(request).retention)
        step_s = max(step_s, BUCKET_S[table])
        params: dict[str, Any] = {
            "metric": req.metric_name, "service": req.service_name or "", "start_ns": start, "end_ns": end,
            "step_s": step_s,
        }
        if table != "otel_metrics":
            params["table"] = table
        rate = req.aggregation == "rate"
        name = METRICS_QUERIES[(rate, table == "otel_metrics")]
        store = store_of(request)

        async def compute() -> dict[str, Any]:
            rows = await store.named(name, params, request=request)
            series: dict[str, list[list[Any]]] = {}
            for r in rows:
                bucket, service = r[0], r[1]
                if rate:
                    v = r[2]
                elif req.aggregation in _AGG_INDEX:
                    v = r[2 + _AGG_INDEX[req.aggregation]]
                else:
                    v = r[7][_Q_INDEX[req.aggregation]]
                    # NaN: no quantile state in the bucket (remote-written series' rollups keep
                    # none since migration 0013), so no point rather than a made-up one.
                    if v != v:
                        continue
                series.setdefault(service, []).append([int(bucket) * NS, float(v)])
            return {
                "metric_name": req.metric_name, "aggregation": req.aggregation, "step_s": step_s, "table": table,
                "series": [{"service_name": s, "points": p} for s, p in series.items()],
            }

        key = ("api_metrics", req.aggregation, tuple(sorted(params.items())))
        return JSONResponse(await cache_of(request).get_or_compute(key, end, compute))


async def logs(request: Request) -> JSONResponse:
    with Timer("api_logs"):
        req = await _decode(request, LogsRequest)
        cfg = request.app.state.cfg.query
        start, end = _window(req, request)
        limit = check_limit(req.limit, cfg.max_limit)
        sev = (req.severity or "").strip()
        lo, hi = SEVERITY_RANGES.get(sev.upper(), (255, 0))  # unknown name: text match only
        params = {
            "service": req.service_name or "", "start_ns": start, "end_ns": end, "severity": sev,
            "severity_min": lo, "severity_max": hi, "search": req.search_text or "", "limit": limit,
        }
        store = store_of(request)

        async def compute() -> dict[str, Any]:
            rows = await store.named("api/logs_search", params, request=request)
            return {"logs": [
                {
                    "timestamp": int(r[0]), "trace_id": None if r[1] == "0" * 32 else r[1].lower(),
                    "span_id": None if r[2] == "0" * 16 else r[2].lower(), "severity_text": r[3],
                    "severity_number": r[4], "service_name": r[5], "body": r[6],
                    "resource_attributes": r[7], "attributes": r[8], "scope_name": r[9],
                }
                for r in rows
            ]}

        key = ("api_logs", tuple(sorted(params.items())))
        return JSONResponse(await cache_of(request).get_or_compute(key, end, compute))


async def services_stats(request: Request) -> JSONResponse:
    with Timer("api_services_stats"):
        q = request.query_params
        end = time_ns(q["end_time"], "end_time") if "end_time" in q else now_ns()
        start = time_ns(q["start_time"], "start_time") if "start_time" in q else end - 24 * 3600 * NS
        check_window(start, end, limits_of(request), field="end_time")
        params = {"start_ns": start, "end_ns": end}
        store = store_of(request)

        async def compute() -> dict[str, Any]:
            spans = await store.named("api/services_span_stats", params, request=request)
            log_counts = dict(await store.named("api/services_log_counts", params, request=request))
            metric_counts = dict(await store.named("api/services_metric_counts", params, request=request))
            out: dict[str, dict[str, Any]] = {}
            for service, n, errors, qs in spans:
                out[service] = {
                    "service_name": service, "span_count": int(n), "error_count": int(errors),
                    "error_rate": (errors / n) if n else 0.0,
                    "duration_ns": {"p50": qs[0], "p95": qs[1], "p99": qs[2]},
                }
            for service in set(log_counts) | set(metric_counts):
                out.setdefault(service, {
                    "service_name": service, "span_count": 0, "error_count": 0, "error_rate": 0.0,
                    "duration_ns": None,
                })
            for service, row in out.items():
                row["log_count"] = int(log_counts.get(service, 0))
                row["metric_point_count"] = int(metric_counts.get(service, 0))
            return {"services": [out[s] for s in sorted(out)]}

        key = ("api_services_stats", start // (60 * NS), end // (60 * NS))
        return JSONResponse(await cache_of(request).get_or_compute(key, end, compute))


routes = [
    Route("/api/v1/traces", traces, methods=["POST"]),
    Route("/api/v1/metrics", metrics, methods=["POST"]),
    Route("/api/v1/logs", logs, methods=["POST"]),
    Route("/api/v1/services/stats", services_stats, methods=["GET"]),
]
