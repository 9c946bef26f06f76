"""Tempo HTTP API (Grafana's Tempo datasource, tempo-cli) over otel_traces; design in docs/tempo.md.

Routes: ``/api/echo``, ``/api/status/buildinfo``, ``/api/traces/{id}`` (protobuf with
``Accept: application/protobuf``, as Grafana's backend asks; without it the path stays Jaeger's
JSON trace), ``/api/v2/traces/{id}`` (JSON or protobuf), ``/api/search`` (TraceQL ``q`` or
logfmt ``tags``), ``/api/search/tags``, ``/api/v2/search/tags``, ``/api/search/tag/{tag}/values``,
``/api/v2/search/tag/{tag}/values``, ``/api/metrics/query_range``, ``/api/metrics/query``.
Times are unix seconds (metrics also nanoseconds or RFC3339); errors are plain text with the
status, as Tempo answers.
"""

from __future__ import annotations

import shlex
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ... import __version__
from . import jaeger
from ..common import JSONResponse, check_limit, check_window, now_ns, store_of, trace_id_hex
from ..tenant import limits_of
from ..errors import BadRequest, NotFound
from .otlp_trace import json_value, resource_spans_json, trace_by_id_response, traces_data
from ..spans import Span, fetch_trace
from ..storage.store import Timer
from ..timeparse import NS, duration_ns, parse_time
from ..traceql import metrics as tql_metrics
from ..traceql.parser import Attr, Intrinsic, Operand, parse, parse_filter, parse_operand
from ..traceql.planner import Planner
from ..traceql.spansets import Search, SpanRow, Spanset, TraceHit, tags_query

PROTOBUF = "application/protobuf"
DEFAULT_LIMIT = 20
DEFAULT_SPSS = 3
DEFAULT_WINDOW_NS = 3600 * NS
# Tag names and values are read from at most this much of the requested window, newest first
# (Tempo reads recent data for them unless asked otherwise): autocompletion stays cheap.
TAGS_WINDOW_NS = 3600 * NS
DEFAULT_TAG_LIMIT = 1000
TEMPO_VERSION = "2.7.0"  # the Tempo API level served (Grafana enables features by it)
NO_ROOT = "<root span not yet received>"
INTRINSIC_TAGS = sorted([
    "duration", "event:name", "instrumentation:name", "instrumentation:version", "kind", "link:spanID",
    "link:traceID", "name", "rootName", "rootServiceName", "span:duration", "span:id", "span:kind",
    "span:name", "span:parentID", "span:status", "span:statusMessage", "status", "statusMessage",
    "trace:duration", "trace:id", "trace:rootName", "trace:rootService", "traceDuration",
])
SCOPES = ("resource", "span", "event", "link", "instrumentation")
_KEYWORDS = {"status": ("error", "ok", "unset"),
             "kind": ("unspecified", "internal", "server", "client", "producer", "consumer")}
_VALUE_TYPES = {"s": "string", "i": "int", "d": "float", "b": "bool"}


def _seconds(q: Any, name: str) -> int | None:
    raw = q.get(name)
    return parse_time(raw, name, numeric_unit_ns=NS) if raw else None


def _window(request: Request, default_ns: int = DEFAULT_WINDOW_NS) -> tuple[int, int]:
    q = request.query_params
    end = _seconds(q, "end") or now_ns()
    start = _seconds(q, "start") or end - default_ns
    check_window(start, end, limits_of(request))
    return start, end


def _int_param(q: Any, name: str, default: int) -> int:
    raw = q.get(name)
    if not raw:
        return default
    if not raw.isdigit():
        raise BadRequest(f"{name} {raw[:50]!r}: expected a non-negative integer")
    return int(raw)


async def echo(request: Request) -> Response:
    return PlainTextResponse("echo")


async def buildinfo(request: Request) -> JSONResponse:
    return JSONResponse({"version": TEMPO_VERSION, "revision": f"otelingest-{__version__}", "branch": "otelingest",
                         "buildUser": "otelingest", "buildDate": "", "goVersion": ""})


async def _trace_spans(request: Request) -> list[Span]:
    tid = trace_id_hex(request.path_params["trace_id"], "traceID")
    spans = await fetch_trace(store_of(request), tid, request=request)
    q = request.query_params
    lo, hi = _seconds(q, "start"), _seconds(q, "end")
    if lo is not None and hi is not None:  # Tempo reads only the given range
        spans = [s for s in spans if lo <= s.start_ns <= hi]
    if not spans:
        raise NotFound("trace not found")
    return spans


def _wants_protobuf(request: Request) -> bool:
    return PROTOBUF in request.headers.get("accept", "")


async def trace_v1(request: Request) -> Response:
    if not _wants_protobuf(request):  # Jaeger clients: the path is shared
        return await jaeger.trace(request)
    with Timer("tempo_trace"):
        data = traces_data(await _trace_spans(request))
        return Response(data.SerializeToString(), media_type=PROTOBUF)


async def trace_v2(request: Request) -> Response:
    with Timer("tempo_trace"):
        q = request.query_params.get("q", "").strip()
        if q not in ("", "{}", "{ }", "{ true }", "{true}"):
            # Tempo's span selection inside one trace (q, keep_hierarchy): not served, and a full
            # trace would be a different answer.
            raise BadRequest("q: selecting spans of a trace by TraceQL is not supported; omit q for the whole trace")
        data = traces_data(await _trace_spans(request))
        if _wants_protobuf(request):
            return Response(trace_by_id_response(data), media_type=PROTOBUF)
        return JSONResponse({"trace": {"resourceSpans": resource_spans_json(data)}})


def _logfmt(raw: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    try:
        parts = shlex.split(raw)
    except ValueError:
        raise BadRequest("tags: expected logfmt key=value pairs") from None
    for part in parts:
        k, sep, v = part.partition("=")
        if not sep or not k:
            raise BadRequest(f"tags: {part[:100]!r} is not key=value")
        tags[k] = v
    return tags


def _span_json(search: Search, s: SpanRow, extra: list[Operand]) -> dict[str, Any]:
    attrs = [{"key": "service.name", "value": {"stringValue": s.service}}]
    for o in [*search.shown, *extra]:
        if isinstance(o, Intrinsic) and o.name in ("name", "duration"):
            continue
        exists, text, kind = search.value(o, s)
        if exists and not (isinstance(o, Attr) and o.name == "service.name"):
            attrs.append({"key": o.name, "value": json_value(text, kind)})
    return {"spanID": s.span_id.lower(), "name": s.name, "startTimeUnixNano": str(s.start),
            "durationNanos": str(s.duration), "attributes": attrs}


def _spanset_json(search: Search, ss: Spanset, spss: int) -> dict[str, Any]:
    out: dict[str, Any] = {"spans": [_span_json(search, s, []) for s in ss.spans[:spss]], "matched": len(ss.spans)}
    if ss.by:
        out["attributes"] = [{"key": f"by({o.label()})", "value": json_value(v[1], v[2])} for o, v in ss.by]
    return out


def _trace_json(search: Search, hit: TraceHit, spss: int) -> dict[str, Any]:
    first = hit.spans[0]
    sets = [_spanset_json(search, ss, spss) for ss in hit.spansets]
    return {
        "traceID": first.trace_id.lower().lstrip("0") or "0",  # as Tempo writes ids
        "rootServiceName": first.root_service or NO_ROOT,
        "rootTraceName": first.root_name or NO_ROOT,
        "startTimeUnixNano": str(first.trace_start),
        "durationMs": first.trace_duration // 1_000_000,
        "spanSet": sets[0],
        "spanSets": sets,
    }


async def search(request: Request) -> JSONResponse:
    with Timer("tempo_search"):
        q = request.query_params
        cfg = request.app.state.cfg.query
        start, end = _window(request)
        limit = check_limit(_int_param(q, "limit", DEFAULT_LIMIT), cfg.max_limit) or DEFAULT_LIMIT
        spss = _int_param(q, "spss", DEFAULT_SPSS) or DEFAULT_SPSS
        if q.get("q"):
            query = parse(q["q"])
        else:
            query = tags_query(_logfmt(q.get("tags", "")))
        min_d = duration_ns(q["minDuration"], "minDuration") if q.get("minDuration") else 0
        max_d = duration_ns(q["maxDuration"], "maxDuration") if q.get("maxDuration") else None
        s = Search(query)
        hits = await s.run(store_of(request), start, end, limit, min_duration=min_d, max_duration=max_d,
                           request=request)
        traces = sorted((_trace_json(s, h, spss) for h in hits), key=lambda t: int(t["startTimeUnixNano"]),
                        reverse=True)
        return JSONResponse({"traces": traces, "metrics": {"inspectedTraces": len(hits), "completedJobs": 1,
                                                            "totalJobs": 1}})


def _filter_sql(p: Planner, raw: str | None) -> str:
    """The span condition of a tag search's ``q`` (a single spanset filter), or true."""
    if not raw:
        return p.frag("true")
    try:
        f = parse_filter(raw)
    except BadRequest:
        # Tempo: an incomplete filter (e.g. `{ .a = }` while typing) lists everything.
        return p.frag("true")
    return p.cond(f.expr, True, True)


def _tags_window(request: Request) -> tuple[int, int]:
    start, end = _window(request, TAGS_WINDOW_NS)
    return max(start, end - TAGS_WINDOW_NS), end


async def _tag_names(request: Request) -> dict[str, list[str]]:
    q = request.query_params
    scope = q.get("scope", "") or "all"
    if scope not in ("all", "intrinsic", *SCOPES):
        raise BadRequest(f"scope {scope[:50]!r}: expected resource, span, intrinsic, event, link, instrumentation")
    out: dict[str, list[str]] = {}
    if scope != "intrinsic":
        start, end = _tags_window(request)
        p = Planner()
        sql = p.query("tempo/tag_names", FILTER=_filter_sql(p, q.get("q")))
        limit = _int_param(q, "limit", DEFAULT_TAG_LIMIT) or DEFAULT_TAG_LIMIT
        params = {**p.params, "start_ns": start, "end_ns": end, "limit": limit, "scope": "" if scope == "all" else scope}
        rows = await store_of(request).rows(sql, params, request=request)
        for sc, name in rows:
            if scope in ("all", sc):
                out.setdefault(sc, []).append(name)
    if scope in ("all", "intrinsic"):
        out["intrinsic"] = list(INTRINSIC_TAGS)
    return out


async def search_tags(request: Request) -> JSONResponse:
    with Timer("tempo_tags"):
        names = await _tag_names(request)
        # v1 lists span and resource names together (intrinsics only when asked for).
        scope = request.query_params.get("scope", "")
        keep = [v for k, v in names.items() if k != "intrinsic" or scope == "intrinsic"]
        return JSONResponse({"tagNames": sorted({n for v in keep for n in v}), "metrics": {}})


async def search_tags_v2(request: Request) -> JSONResponse:
    with Timer("tempo_tags"):
        names = await _tag_names(request)
        return JSONResponse({"scopes": [{"name": k, "tags": v} for k, v in names.items()], "metrics": {}})


def _tag_operand(tag: str, v2: bool) -> Operand:
    if v2:
        return parse_operand(tag)
    # v1 names are plain attribute names, span or resource (or the intrinsics Tempo lists).
    return Intrinsic(tag) if tag in ("name", "status", "kind", "statusMessage") else Attr("", tag)


async def _tag_values(request: Request, v2: bool) -> list[tuple[str, str]]:
    tag = request.path_params["tag"]
    o = _tag_operand(tag, v2)
    if isinstance(o, Intrinsic) and o.name in _KEYWORDS:
        return [(v, "keyword") for v in _KEYWORDS[o.name]]
    if isinstance(o, Intrinsic) and o.name in ("duration", "traceDuration"):
        return []  # Tempo offers no values for durations either
    if isinstance(o, Attr) and o.scope in ("event", "link"):
        raise BadRequest(f"values of {o.label()} are not supported")
    q = request.query_params
    start, end = _tags_window(request)
    p = Planner()
    if isinstance(o, Intrinsic) and o.name in ("rootName", "rootServiceName"):
        col = p.frag("col_service" if o.name == "rootServiceName" else "col_name")
        exists, text, kind = p.frag("is_root"), col, p.frag("kind_string")
    else:
        exists, text, kind = p.source(o)
    sql = p.query("tempo/tag_values", EXISTS=exists, TEXT=text, KIND=kind, FILTER=_filter_sql(p, q.get("q")))
    limit = _int_param(q, "limit", DEFAULT_TAG_LIMIT) or DEFAULT_TAG_LIMIT
    rows = await store_of(request).rows(sql, {**p.params, "start_ns": start, "end_ns": end, "limit": limit},
                                        request=request)
    return [(str(v), str(k)) for v, k in rows]


async def tag_values(request: Request) -> JSONResponse:
    with Timer("tempo/tag_values"):
        values = await _tag_values(request, v2=False)
        return JSONResponse({"tagValues": sorted({v for v, _ in values}), "metrics": {}})


async def tag_values_v2(request: Request) -> JSONResponse:
    with Timer("tempo/tag_values"):
        values = await _tag_values(request, v2=True)
        out = [{"type": k if k == "keyword" else _VALUE_TYPES.get(k, "string"), "value": v} for v, k in values]
        return JSONResponse({"tagValues": out, "metrics": {}})


async def metrics_query_range(request: Request) -> JSONResponse:
    with Timer("tempo_metrics"):
        return JSONResponse(await tql_metrics.query_range(request, instant=False))


async def metrics_query(request: Request) -> JSONResponse:
    with Timer("tempo_metrics"):
        return JSONResponse(await tql_metrics.query_range(request, instant=True))


routes = [
    Route("/api/echo", echo, methods=["GET"]),
    Route("/api/status/buildinfo", buildinfo, methods=["GET"]),
    Route("/api/traces/{trace_id:str}", trace_v1, methods=["GET"]),
    Route("/api/v2/traces/{trace_id:str}", trace_v2, methods=["GET"]),
    Route("/api/search", search, methods=["GET"]),
    Route("/api/search/tags", search_tags, methods=["GET"]),
    Route("/api/v2/search/tags", search_tags_v2, methods=["GET"]),
    Route("/api/search/tag/{tag:str}/values", tag_values, methods=["GET"]),
    Route("/api/v2/search/tag/{tag:str}/values", tag_values_v2, methods=["GET"]),
    Route("/api/metrics/query_range", metrics_query_range, methods=["GET"]),
    Route("/api/metrics/query", metrics_query, methods=["GET"]),
]
