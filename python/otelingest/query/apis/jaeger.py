"""Jaeger query HTTP API (what Grafana's Jaeger datasource and Jaeger clients call).

Mapping from OTel spans: the parent becomes a CHILD_OF reference and links FOLLOWS_FROM
references; events become logs (``event`` field = name); span kind, status and scope travel as tags
(``span.kind``, ``otel.status_code``, ``otel.status_description``, ``error=true``,
``otel.scope.name``/``otel.scope.version``); resource attributes are the process tags. Times and
durations are microseconds.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from ..common import JSONResponse, cache_of, check_limit, check_window, now_ns, store_of, trace_id_hex
from ..tenant import limits_of
from ..dependencies import dependencies as compute_dependencies
from ..errors import BadRequest, NotFound
from ..spans import Span, fetch_trace, fetch_traces, search_newest
from ..storage.store import Timer
from ..timeparse import NS, duration_ns, parse_time

US = 1_000
DEFAULT_LOOKBACK_NS = 3600 * NS
SERVICES_LOOKBACK_NS = 30 * 86400 * NS
DEFAULT_LIMIT = 20
MAX_DURATION = (1 << 63) - 1


def _envelope(data: Any) -> JSONResponse:
    return JSONResponse({"data": data, "total": len(data) if isinstance(data, list) else 0, "limit": 0, "offset": 0,
                         "errors": None})


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    return {"key": key, "type": "string", "value": value}


def _span_tags(s: Span) -> list[dict[str, Any]]:
    tags = [_tag(k, v) for k, v in sorted(s.attributes.items())]
    if s.kind not in ("UNSPECIFIED", ""):
        tags.append(_tag("span.kind", s.kind.lower()))
    if s.status_code != "UNSET":
        tags.append(_tag("otel.status_code", s.status_code))
    if s.status_message:
        tags.append(_tag("otel.status_description", s.status_message))
    if s.status_code == "ERROR":
        tags.append(_tag("error", True))
    if s.scope_name:
        tags.append(_tag("otel.scope.name", s.scope_name))
    if s.scope_version:
        tags.append(_tag("otel.scope.version", s.scope_version))
    if s.trace_state:
        tags.append(_tag("w3c.tracestate", s.trace_state))
    return tags


def trace_json(trace_id: str, spans: list[Span]) -> dict[str, Any]:
    processes: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
    out_spans = []
    for s in spans:
        res = tuple(sorted((k, v) for k, v in s.resource.items() if k != "service.name"))
        pid = processes.setdefault((s.service, res), f"p{len(processes) + 1}")
        refs = []
        if s.parent:
            refs.append({"refType": "CHILD_OF", "traceID": s.trace_id.lower(), "spanID": s.parent.lower()})
        for lt, ls in zip(s.link_trace_ids, s.link_span_ids):
            refs.append({"refType": "FOLLOWS_FROM", "traceID": lt.lower(), "spanID": ls.lower()})
        out_spans.append({
            "traceID": s.trace_id.lower(),
            "spanID": s.span_id.lower(),
            "flags": s.flags,
            "operationName": s.name,
            "references": refs,
            "startTime": s.start_ns // US,
            "duration": s.duration_ns // US,
            "tags": _span_tags(s),
            "logs": [
                {"timestamp": t // US,
                 "fields": [_tag("event", n), *(_tag(k, v) for k, v in sorted(a.items()))]}
                for t, n, a in zip(s.event_times, s.event_names, s.event_attributes)
            ],
            "processID": pid,
            "warnings": None,
        })
    return {
        "traceID": trace_id.lower(),
        "spans": out_spans,
        "processes": {
            pid: {"serviceName": service, "tags": [_tag(k, v) for k, v in res]}
            for (service, res), pid in processes.items()
        },
        "warnings": None,
    }


async def services(request: Request) -> JSONResponse:
    with Timer("jaeger/services"):
        rows = await store_of(request).named("jaeger/services", {"start_ns": now_ns() - SERVICES_LOOKBACK_NS},
                                             request=request)
        return _envelope([r[0] for r in rows])


async def _operations(request: Request, service: str, span_kind: str) -> list[tuple[str, str]]:
    params = {"start_ns": now_ns() - SERVICES_LOOKBACK_NS, "service": service, "span_kind": span_kind}
    return [(r[0], r[1]) for r in await store_of(request).named("jaeger/operations", params, request=request)]


async def service_operations(request: Request) -> JSONResponse:
    with Timer("jaeger/operations"):
        ops = await _operations(request, request.path_params["service"], "")
        return _envelope(sorted({name for name, _ in ops}))


async def operations(request: Request) -> JSONResponse:
    with Timer("jaeger/operations"):
        q = request.query_params
        ops = await _operations(request, q.get("service", ""), q.get("spanKind", ""))
        return _envelope([{"name": n, "spanKind": k.lower() if k != "UNSPECIFIED" else ""} for n, k in ops])


def _us_time(value: str, field: str) -> int:
    return parse_time(value, field, numeric_unit_ns=US)


def _tags(request: Request) -> dict[str, str]:
    tags: dict[str, str] = {}
    raw = request.query_params.get("tags")
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise BadRequest("tags: expected a JSON object of strings") from None
        if not isinstance(parsed, dict):
            raise BadRequest("tags: expected a JSON object of strings")
        for k, v in parsed.items():
            tags[str(k)] = v if isinstance(v, str) else json.dumps(v)
    for item in request.query_params.getlist("tag"):  # legacy tag=key:value
        k, sep, v = item.partition(":")
        if not sep:
            raise BadRequest(f"tag {item[:100]!r}: expected key:value")
        tags[k] = v
    return tags


async def search(request: Request) -> JSONResponse:
    with Timer("jaeger_search"):
        q = request.query_params
        cfg = request.app.state.cfg.query
        service = q.get("service", "")
        if not service:
            raise BadRequest("parameter 'service' is required")
        end = _us_time(q["end"], "end") if q.get("end") else now_ns()
        lookback = duration_ns(q["lookback"], "lookback") if q.get("lookback") and q["lookback"] != "custom" else DEFAULT_LOOKBACK_NS
        start = _us_time(q["start"], "start") if q.get("start") else end - lookback
        check_window(start, end, limits_of(request))
        raw_limit = q.get("limit") or str(DEFAULT_LIMIT)
        if not raw_limit.isdigit():
            raise BadRequest(f"limit {raw_limit[:50]!r}: expected a non-negative integer")
        limit = check_limit(int(raw_limit), cfg.max_limit) or DEFAULT_LIMIT
        tags = _tags(request)
        params = {
            "service": service, "operation": q.get("operation", ""), "span_kind": "",
            "start_ns": start, "end_ns": end,
            "min_duration": duration_ns(q["minDuration"], "minDuration") if q.get("minDuration") else 0,
            "max_duration": duration_ns(q["maxDuration"], "maxDuration") if q.get("maxDuration") else MAX_DURATION,
            "limit": limit,
        }
        if tags:
            params["tag_keys"], params["tag_values"] = list(tags), list(tags.values())
        store = store_of(request)

        async def compute() -> list[dict[str, Any]]:
            rows = await search_newest(store, "traces/search_tags" if tags else "traces/search", params, request=request)
            ids = [r[0] for r in rows]
            found = await fetch_traces(store, ids, found_in=(start, end), request=request)
            return [trace_json(t, found[t]) for t in ids if t in found]

        key = ("jaeger_search", tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items())))
        return _envelope(await cache_of(request).get_or_compute(key, end, compute))


async def trace(request: Request) -> JSONResponse:
    with Timer("jaeger_trace"):
        raw = request.path_params["trace_id"]
        tid = trace_id_hex(raw, "traceID")
        spans = await fetch_trace(store_of(request), tid, request=request)
        if not spans:
            raise NotFound("trace not found")
        return _envelope([trace_json(tid, spans)])


async def dependencies(request: Request) -> JSONResponse:
    with Timer("jaeger_dependencies"):
        q = request.query_params
        end = parse_time(q["endTs"], "endTs", numeric_unit_ns=1_000_000) if q.get("endTs") else now_ns()
        lookback = int(q["lookback"]) * 1_000_000 if q.get("lookback", "").isdigit() else 24 * 3600 * NS
        start = end - lookback
        check_window(start, end, limits_of(request), field="lookback")
        rows = await compute_dependencies(store_of(request), start, end, request=request)
        return _envelope([{"parent": p, "child": c, "callCount": n} for p, c, n, _ in rows])


routes = [
    Route("/api/services", services, methods=["GET"]),
    Route("/api/services/{service:str}/operations", service_operations, methods=["GET"]),
    Route("/api/operations", operations, methods=["GET"]),
    Route("/api/traces", search, methods=["GET"]),
    Route("/api/traces/{trace_id:str}", trace, methods=["GET"]),
    Route("/api/dependencies", dependencies, methods=["GET"]),
]
