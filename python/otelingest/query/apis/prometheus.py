"""Prometheus HTTP API (Grafana's Prometheus datasource, promtool, vmalert, prometheus-api-client).

Envelope ``{"status":"success","data":...}``; errors ``{"status":"error","errorType":...,"error":...}``
with 400 (bad_data), 422 (execution) or 503 (timeout), rendered by app.py. GET and POST form alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import promql_parser as pp
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ..promql.evaluator import evaluate
from ..promql.matchers import matchers_of
from ..promql.naming import MetricInfo, format_le, format_value, label_name
from ..promql.parse import parse
from ..promql.source import LOOKBACK_NS, Source, series_chunks
from ..promql.values import Matrix, Scalar, Vector, present, scalar_values
from ..common import JSONResponse, cache_of, first, form_params, now_ns, store_of
from ..tenant import limits_of, tenant_range_days
from ..errors import BadRequest, Unprocessable
from ..storage.store import Timer
from ..storage.tables import choose_metrics_table
from ..timeparse import NS, duration_ns, prom_time_ns

DEFAULT_SERIES_WINDOW_NS = 24 * 3600 * NS
BUILD_VERSION = "2.53.0"
_BOTH = ["GET", "POST"]


def _ok(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _time(params: dict[str, list[str]], name: str, default: int) -> int:
    v = first(params, name)
    return prom_time_ns(v, name) if v else default


def _step(v: str | None) -> int:
    if not v:
        raise BadRequest("missing parameter 'step'")
    step = duration_ns(v, "step")
    if step <= 0:
        raise BadRequest("zero or negative query resolution step widths are not accepted. Try a positive integer")
    return step


def _ts(t_ns: int) -> float:
    return t_ns / NS


def _vector_json(v: Vector, steps: np.ndarray) -> list[dict[str, Any]]:
    out = []
    for labels, vals in v.series:
        x = vals[-1]
        if present(vals[-1:])[0]:
            out.append({"metric": labels, "value": [_ts(int(steps[-1])), format_value(float(x))]})
    return out


def _matrix_json(v: Vector, steps: np.ndarray) -> list[dict[str, Any]]:
    out = []
    merged: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for labels, vals in v.series:
        pts = [[_ts(int(t)), format_value(float(x))] for t, x, p in zip(steps, vals, present(vals)) if p]
        if not pts:
            continue
        key = tuple(sorted(labels.items()))
        if key in merged:
            raise Unprocessable("vector cannot contain metrics with the same labelset")
        merged[key] = {"metric": labels, "values": pts}
        out.append(merged[key])
    out.sort(key=lambda s: sorted(s["metric"].items()))
    return out


def _check_duplicates(v: Vector, steps: np.ndarray) -> None:
    seen: set[tuple[tuple[str, str], ...]] = set()
    for labels, vals in v.series:
        if not present(vals).any():
            continue
        key = tuple(sorted(labels.items()))
        if key in seen:
            raise Unprocessable("vector cannot contain metrics with the same labelset")
        seen.add(key)


async def query(request: Request) -> JSONResponse:
    with Timer("prom_query"):
        params = await form_params(request)
        text = first(params, "query") or ""
        t = _time(params, "time", now_ns())
        expr = parse(text)

        async def compute() -> dict[str, Any]:
            value, steps, _ = await evaluate(store_of(request), expr, t, t, 0, request)
            if isinstance(value, Scalar):
                return {"resultType": "scalar", "result": [_ts(t), format_value(float(value.values[0]))]}
            if isinstance(value, Matrix):
                return {"resultType": "matrix", "result": [
                    {"metric": s.labels, "values": [[_ts(int(a)), format_value(float(b))]
                                                    for a, b in zip(s.times, s.values)]}
                    for s in value.series if len(s.times)
                ]}
            _check_duplicates(value, steps)
            return {"resultType": "vector", "result": _vector_json(value, steps)}

        return _ok(await cache_of(request).get_or_compute(("prom_query", text, t), t, compute))


async def query_range(request: Request) -> JSONResponse:
    with Timer("prom_query_range"):
        params = await form_params(request)
        text = first(params, "query") or ""
        if not first(params, "start") or not first(params, "end"):
            raise BadRequest("missing parameter 'start' or 'end'")
        start, end = _time(params, "start", 0), _time(params, "end", 0)
        step = _step(first(params, "step"))
        limits = limits_of(request)
        if end < start:
            raise BadRequest("end timestamp must not be before start time")
        if (end - start) // step > limits.points:
            raise BadRequest(f"exceeded maximum resolution of {limits.points} points per timeseries "
                             f"({limits.points_key}). Try decreasing the query resolution (?step=XX)")
        if end - start > limits.range_days * 86400 * NS:
            raise BadRequest(f"time range longer than {limits.range_days} days ({limits.range_key})")
        expr = parse(text)

        async def compute() -> dict[str, Any]:
            value, steps, _ = await evaluate(store_of(request), expr, start, end, step, request)
            if isinstance(value, Scalar):
                value = Vector([({}, scalar_values(value.values))])
            if isinstance(value, Matrix):
                raise BadRequest("invalid expression type \"range vector\" for range query, must be Scalar or instant Vector")
            return {"resultType": "matrix", "result": _matrix_json(value, steps)}

        return _ok(await cache_of(request).get_or_compute(("prom_range", text, start, end, step), end, compute))


async def _window(request: Request, params: dict[str, list[str]]) -> tuple[int, int]:
    end = _time(params, "end", now_ns())
    start = _time(params, "start", end - DEFAULT_SERIES_WINDOW_NS)
    if end < start:
        raise BadRequest("end timestamp must not be before start time")
    own = tenant_range_days(request)  # [query] sets none for listings; a tenant's limit holds
    if own is not None and end - start > own[0] * 86400 * NS:
        raise BadRequest(f"time range longer than {own[0]} days ({own[1]})")
    return start, end


def _source(request: Request, start: int, end: int) -> Source:
    store = store_of(request)
    return Source(store=store, table=choose_metrics_table(start, end, 0, store.retention),
                         lookback_ns=LOOKBACK_NS, request=request)


async def _matching_series(request: Request, params: dict[str, list[str]], *, with_buckets: bool
                           ) -> list[dict[str, str]]:
    """Label sets of the series the ``match[]`` selectors select (every metric name without one).

    ``with_buckets`` reads the histogram points to list each ``le`` bucket series (the series API);
    label listings skip that and report ``le`` as a name only.
    """
    start, end = await _window(request, params)
    source = _source(request, start, end)
    matches = params.get("match[]") or ['{__name__=~".+"}']
    out: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for m in matches:
        expr = parse(m)
        if not isinstance(expr, pp.VectorSelector):
            raise BadRequest(f"match[] {m[:100]!r}: expected a series selector")
        matchers = matchers_of(expr)
        if with_buckets:
            for s in await source.samples(matchers, start, end):
                out[tuple(sorted(s.labels.items()))] = s.labels
        else:
            for _, _, kind, lab in await source.series(matchers, start, end):
                lab = {**lab, "le": ""} if kind == "bucket" else lab
                out[tuple(sorted(lab.items()))] = lab
    return [out[k] for k in sorted(out)]


async def series(request: Request) -> JSONResponse:
    with Timer("prom_series"):
        params = await form_params(request)
        if not params.get("match[]"):
            raise BadRequest("no match[] parameter provided")
        return _ok(await _matching_series(request, params, with_buckets=True))


async def labels(request: Request) -> JSONResponse:
    with Timer("prom_labels"):
        params = await form_params(request)
        names: set[str] = set()
        if not params.get("match[]"):
            # Every label name in the window, from the attribute keys: no series needed.
            start, end = await _window(request, params)
            source = _source(request, start, end)
            entries = [e for e in await source.catalog_with_keys(start, end) if e[0].families()]
            exposed = [info for info, _, _ in entries]
            written = sorted({info.otel_name for info in exposed if info.verbatim})
            if exposed:
                names = {"__name__"}
            if any(not info.verbatim for info in exposed):
                names |= {"service_name", "job"}
                if any("bucket" in info.families().values() for info in exposed):
                    names.add("le")
            for info, keys, instance in entries:
                if not info.verbatim:
                    names.update(label_name(k) for k in keys)
                    if instance:
                        names.add("instance")
            if written:
                # Remote-written series: their labels are their attribute keys, as written.
                [(keys, _)] = await source.label_keys(written, start, end)
                names.update(keys)
            return _ok(sorted(names))
        for s in await _matching_series(request, params, with_buckets=False):
            names.update(s)
        return _ok(sorted(names))


async def label_values(request: Request) -> JSONResponse:
    with Timer("prom_label_values"):
        params = await form_params(request)
        name = request.path_params["name"]
        if name == "__name__" and not params.get("match[]"):
            # Every metric name with points in the window: the catalog has them, no series needed.
            start, end = await _window(request, params)
            names = {n for info in await _source(request, start, end).catalog(start, end, fresh=True)
                     for n in info.families()}
            return _ok(sorted(names))
        values = {s[name] for s in await _matching_series(request, params, with_buckets=name == "le") if s.get(name)}
        return _ok(sorted(values))


async def metadata(request: Request) -> JSONResponse:
    with Timer("prometheus/metadata"):
        params = await form_params(request)
        start, end = await _window(request, params)
        source = _source(request, start, end)
        wanted = first(params, "metric")
        out: dict[str, list[dict[str, str]]] = {}
        for info in await source.catalog(start, end):
            # A remote-written metric's metadata is what Prometheus sent for its family (below).
            if not info.families() or info.verbatim:
                continue
            name = info.base_name
            if wanted and name != wanted:
                continue
            out.setdefault(name, []).append({"type": info.prom_type, "help": info.description, "unit": info.unit})
        rows = await store_of(request).named("prometheus/metadata", {"start_ns": start, "end_ns": end, "family": wanted or ""},
                                             request=request)
        for family, kind, help_text, unit in rows:
            entry = {"type": kind, "help": help_text, "unit": unit}
            if entry not in out.setdefault(family, []):
                out[family].append(entry)
        return _ok(out)


async def buildinfo(request: Request) -> JSONResponse:
    # No "features" key: Grafana then treats this as Prometheus (not Mimir) and calls no ruler API.
    return _ok({"version": BUILD_VERSION, "revision": "otelingest", "branch": "otelingest",
                "buildUser": "otelingest", "buildDate": "", "goVersion": ""})


MAX_EXEMPLARS = 10_000


def _selectors(expr: Any) -> list[Any]:
    """Every vector selector in a PromQL expression."""
    out, stack = [], [expr]
    while stack:
        x = stack.pop()
        if isinstance(x, pp.VectorSelector):
            out.append(x)
            continue
        if isinstance(x, pp.MatrixSelector):
            out.append(x.vector_selector)
            continue
        for attr in ("expr", "lhs", "rhs", "param"):
            child = getattr(x, attr, None)
            if child is not None and not isinstance(child, (str, int, float)):
                stack.append(child)
        if isinstance(x, pp.Call):
            stack.extend(x.args)
    return out


async def exemplars(request: Request) -> JSONResponse:
    """Exemplars stored with the points of the query's series: Grafana links them to traces."""
    with Timer("prometheus/exemplars"):
        params = await form_params(request)
        expr = parse(first(params, "query") or "")
        start, end = await _window(request, params)
        source = Source(store=store_of(request), table="otel_metrics", lookback_ns=LOOKBACK_NS,
                               request=request)
        out: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for vs in _selectors(expr):
            series = await source.series(matchers_of(vs), start, end)
            if not series:
                continue
            rows: list[tuple[Any, ...]] = []
            for ids in series_chunks(sid for sid, _, _, _ in series):
                rows += await source.store.named("prometheus/exemplars", {
                    "names": sorted({info.otel_name for _, info, _, _ in series}), "series": ids,
                    "start_ns": start, "end_ns": end, "limit": MAX_EXEMPLARS - len(rows)}, request=request)
                if len(rows) >= MAX_EXEMPLARS:
                    break
            by_sid: dict[int, list[tuple[Any, ...]]] = {}
            for r in rows:
                by_sid.setdefault(int(r[0]), []).append(r)
            for sid, _, kind, labels in series:
                for _, ts, value, trace_id, span_id, attrs, bounds in by_sid.get(sid, []):
                    lab = dict(labels)
                    if kind == "bucket":  # the bucket the observation fell in
                        lab["le"] = format_le(next((float(b) for b in bounds if value <= b), float("inf")))
                    ex_labels = {label_name(k): v for k, v in attrs.items()}
                    if trace_id.strip("0"):
                        ex_labels["trace_id"] = trace_id.lower()
                    if span_id.strip("0"):
                        ex_labels["span_id"] = span_id.lower()
                    key = tuple(sorted(lab.items()))
                    entry = out.setdefault(key, {"seriesLabels": lab, "exemplars": []})
                    entry["exemplars"].append({"labels": ex_labels, "value": format_value(float(value)),
                                               "timestamp": ts / NS})
            await _written_exemplars(request, series, start, end, out)
        return _ok([out[k] for k in sorted(out)])


async def _written_exemplars(request: Request, series: list[tuple[int, MetricInfo, str, dict[str, str]]],
                             start: int, end: int, out: dict[tuple[tuple[str, str], ...], dict[str, Any]]) -> None:
    """Exemplars of remote-written series (their own table): labels as Prometheus sent them."""
    wanted = {(labels["__name__"], tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))): labels
              for _, info, _, labels in series if info.verbatim}
    if not wanted:
        return
    rows = await store_of(request).named("prometheus/exemplars_written", {
        "names": sorted({name for name, _ in wanted}), "start_ns": start, "end_ns": end, "limit": MAX_EXEMPLARS},
        request=request)
    for name, attrs, ts, value, ex_labels in rows:
        labels = wanted.get((name, tuple(sorted(attrs.items()))))
        if labels is None:
            continue
        entry = out.setdefault(tuple(sorted(labels.items())), {"seriesLabels": labels, "exemplars": []})
        entry["exemplars"].append({"labels": dict(ex_labels), "value": format_value(float(value)),
                                   "timestamp": ts / NS})


async def rules(request: Request) -> JSONResponse:
    return _ok({"groups": []})


async def alerts(request: Request) -> JSONResponse:
    return _ok({"alerts": []})


async def root(request: Request) -> PlainTextResponse:
    return PlainTextResponse("otelingest query service: Prometheus, Loki and Jaeger APIs\n")


routes = [
    Route("/", root, methods=["GET"]),
    Route("/api/v1/query", query, methods=_BOTH),
    Route("/api/v1/query_range", query_range, methods=_BOTH),
    Route("/api/v1/labels", labels, methods=_BOTH),
    Route("/api/v1/label/{name:str}/values", label_values, methods=["GET"]),
    Route("/api/v1/series", series, methods=_BOTH),
    Route("/api/v1/metadata", metadata, methods=["GET"]),
    Route("/api/v1/status/buildinfo", buildinfo, methods=["GET"]),
    Route("/api/v1/query_exemplars", exemplars, methods=_BOTH),
    Route("/api/v1/rules", rules, methods=["GET"]),
    Route("/api/v1/alerts", alerts, methods=["GET"]),
]
