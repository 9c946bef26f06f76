"""Tempo HTTP API and TraceQL: a table of queries over spans built with the OpenTelemetry SDK
(tests/helpers/tempodata.py) with the exact span ids each returns, Tempo's documented response shapes, the
protobuf trace (tempopb.Trace / TraceByIDResponse), tags, typed tag values and TraceQL metrics."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

import tempodata as td
from tempodata import ALL, S, T

NS = td.NS


@pytest.fixture(scope="module")
def tempo(clickhouse, tmp_path_factory):
    from querydata import Dataset, make_env

    def load(client: Any, db: str) -> Dataset:
        hour = 3600 * NS
        t0 = (time.time_ns() // hour) * hour - 2 * hour
        td.load(client, db, t0)
        return Dataset(db=db, t0=t0)

    with make_env(clickhouse, tmp_path_factory.mktemp("tempo"), load=load,
                  dependencies_rollup_interval_s=0) as env, \
            httpx.Client(base_url=env.url, timeout=60) as http:
        http.t0 = env.data.t0  # type: ignore[attr-defined]
        yield http


def window(http: Any) -> dict[str, int]:
    return {"start": http.t0 // NS, "end": http.t0 // NS + 3600}


def search(http: Any, q: str, **params: Any) -> dict[str, Any]:
    r = http.get("/api/search", params={"q": q, "limit": 50, "spss": 100, **window(http), **params})
    assert r.status_code == 200, (q, r.status_code, r.text)
    return r.json()


def matched(body: dict[str, Any]) -> set[str]:
    """Span names (s11...) of every span in every spanset."""
    by_id = {v: k for k, v in S.items()}
    return {by_id[s["spanID"]] for t in body["traces"] for ss in t["spanSets"] for s in ss["spans"]}


def sset(*names: str) -> set[str]:
    return set(names)


FRONT = sset("s11", "s21", "s31", "s61")
CHECK = sset("s12", "s13", "s22", "s24", "s41", "s42", "s43", "s62", "s63")
UNSET = sset("s11", "s13", "s23", "s31", "s41", "s42", "s43", "s51", "s61")
SERVER = sset("s11", "s12", "s21", "s22", "s23", "s31", "s51", "s61", "s62")
HAS_METHOD = sset("s11", "s21", "s31", "s51", "s61")

# (TraceQL, span names every spanset holds). Where Tempo's docs state the construct's behaviour it
# is quoted in docs/tempo.md; the typed cases follow "span.http.status_code >= 500 matches the int".
CASES: list[tuple[str, set[str]]] = [
    ("{}", ALL),
    ("{ true }", ALL),
    ("{ false }", set()),
    ('{ name = "GET /cart" }', sset("s11", "s61")),
    ('{ name != "GET /cart" }', ALL - sset("s11", "s61")),
    ('{ name =~ "GET .*" }', sset("s11", "s31", "s61")),
    ('{ name !~ "GET .*" }', ALL - sset("s11", "s31", "s61")),
    ('{ name =~ "GET" }', set()),  # regexes are fully anchored (Tempo docs)
    ('{ span:name = "charge" }', sset("s22")),
    ("{ status = error }", sset("s21", "s22", "s62", "s63")),
    ("{ status = ok }", sset("s12", "s24")),
    ("{ status = unset }", UNSET),
    ("{ status != unset }", ALL - UNSET),
    ("{ span:status = error && kind = client }", sset("s63")),
    ('{ statusMessage = "timeout" }', sset("s62", "s63")),
    ('{ statusMessage =~ "card.*" }', sset("s22")),
    ("{ kind = server }", SERVER),
    ("{ kind = client }", sset("s13", "s24", "s63")),
    ("{ kind = internal }", sset("s41", "s42")),
    ("{ kind = producer }", sset("s43")),
    ("{ kind != server }", ALL - SERVER),
    ("{ duration > 500ms }", sset("s21", "s22", "s41", "s42")),
    ("{ duration >= 500ms }", sset("s21", "s22", "s23", "s41", "s42")),
    ("{ duration < 20ms }", sset("s31")),
    ("{ duration <= 20ms }", sset("s31", "s24")),
    ("{ duration = 50ms }", sset("s51")),
    ("{ span:duration > 4s }", sset("s41")),
    ("{ duration > 0.5s && duration < 1s }", sset("s21", "s22")),
    ('{ rootName = "GET /cart" }', sset("s11", "s12", "s13", "s61", "s62", "s63")),
    ('{ rootServiceName = "checkout" }', sset("s41", "s42", "s43")),
    ('{ trace:rootService = "payments" }', sset("s51")),
    ("{ traceDuration > 1s }", sset("s41", "s42", "s43")),
    ("{ trace:duration < 10ms }", sset("s31")),
    ('{ rootName = "GET /cart" && status = error }', sset("s62", "s63")),
    ('{ !(rootServiceName = "frontend") }', sset("s41", "s42", "s43", "s51")),
    # Typed attributes: the int 503 is not the string "503".
    ("{ span.http.status_code = 200 }", sset("s11", "s31")),
    ("{ span.http.status_code >= 500 }", sset("s21", "s61")),
    ('{ span.http.status_code = "503" }', sset("s23")),
    ("{ .http.status_code = 503 }", sset("s21")),
    ("{ span.http.status_code != 200 }", sset("s21", "s51", "s61")),
    ("{ span.http.status_code > 400 && span.http.status_code < 500 }", sset("s51")),
    ('{ span.http.status_code =~ "5.*" }', sset("s23")),
    ("{ span.http.status_code >= 500.0 }", sset("s21", "s61")),
    ("{ 500 <= span.http.status_code }", sset("s21", "s61")),
    ("{ span.cart.items = 3 }", sset("s12")),
    ("{ span.cart.items > 0 }", sset("s12")),
    ("{ span.cart.items = 0 }", sset("s62")),
    ("{ span.cart.items >= -1 }", sset("s12", "s62")),
    ("{ span.cache.hit = true }", sset("s12")),
    ("{ span.cache.hit = false }", sset("s62")),
    ("{ span.cache.hit != true }", sset("s62")),
    ('{ span.cache.hit = "true" }', set()),
    ("{ span.retry = true }", sset("s23")),
    ("{ span.payment.amount > 10 }", sset("s22")),
    ("{ span.payment.amount = 19.99 }", sset("s22")),
    ("{ span.payment.amount < 19.5 }", set()),
    ("{ span.db.rows > 1 }", sset("s13")),
    ("{ span.db.rows = 0 }", sset("s63")),
    ("{ span.ratio = 0.5 }", sset("s43")),
    ("{ span.bytes.written >= 1024 }", sset("s43")),
    ('{ span.db.system = "postgresql" }', sset("s13", "s24", "s63")),
    ('{ .db.system = "postgresql" && status = error }', sset("s63")),
    ('{ .db.system = "postgresql" || kind = producer }', sset("s13", "s24", "s63", "s43")),
    ('{ span.http.method = "GET" }', sset("s11", "s31", "s61")),
    ('{ span.http.method =~ "G.*|P.*" }', sset("s11", "s21", "s31", "s61")),
    ('{ span.http.method != "GET" }', sset("s21", "s51")),
    ('{ (span.http.method = "GET" || span.http.method = "DELETE") && span.http.status_code >= 400 }',
     sset("s51", "s61")),
    ("{ span.missing = nil }", ALL),
    ("{ span.http.method != nil }", HAS_METHOD),
    ("{ span.http.method = nil }", ALL - HAS_METHOD),
    # Arrays: = matches any element, != when no element equals (Tempo docs).
    ('{ span.job.tags = "b" }', sset("s41")),
    ('{ span.job.tags != "b" }', set()),
    ('{ span.job.tags != "z" }', sset("s41")),
    ("{ span.job.ids = 2 }", sset("s41")),
    ("{ span.job.ids > 1 }", sset("s41")),
    ('{ span.job.tags =~ "[ab]" }', sset("s41")),
    ('{ resource.service.name = "checkout" }', CHECK),
    ('{ resource.service.name =~ "pay.*" }', sset("s23", "s51")),
    ('{ resource.service.name != "frontend" }', ALL - FRONT),
    ('{ resource.deployment.environment = "staging" }', sset("s23", "s51")),
    ("{ resource.host.cores = 8 }", FRONT),
    ('{ resource.host.cores = "8" }', set()),
    ('{ .service.name = "payments" }', sset("s23", "s51")),
    ("{ .host.cores > 4 }", FRONT),
    ('{ span.service.name = "payments" }', set()),
    ('{ event:name = "exception" }', sset("s22")),
    ('{ event:name = "audit" }', sset("s51")),
    ('{ event.exception.type = "CardDeclined" }', sset("s22")),
    ('{ event.audit.user =~ "ali.*" }', sset("s51")),
    (f'{{ link:traceID = "{T[1]}" }}', sset("s31")),
    (f'{{ link:spanID = "{S["s11"].upper()}" }}', sset("s31")),
    ('{ link.link.reason = "follow" }', sset("s31")),
    (f'{{ span:id = "{S["s22"]}" }}', sset("s22")),
    (f'{{ trace:id = "{T[5]}" }}', sset("s51")),
    (f'{{ span:parentID = "{S["s22"]}" }}', sset("s23", "s24")),
    ('{ instrumentation:name = "shop.payments" }', sset("s23", "s51")),
    ('{ instrumentation:version = "1.0.0" && name = "write" }', sset("s43")),
    # Structural operators: > child, >> descendant, < parent, << ancestor, ~ sibling.
    ('{ resource.service.name = "frontend" } > { resource.service.name = "checkout" }', sset("s12", "s22", "s62")),
    ('{ resource.service.name = "frontend" } >> { kind = client }', sset("s13", "s24", "s63")),
    ("{ kind = client } < { kind = server }", sset("s12", "s22", "s62")),
    ('{ kind = client } << { resource.service.name = "frontend" }', sset("s11", "s21", "s61")),
    ('{ name = "authorize" } ~ { name = "SELECT orders" }', sset("s24")),
    ('{ name = "nightly-report" } > { name = "write" }', set()),
    ('{ name = "nightly-report" } >> { name = "write" }', sset("s43")),
    ("{ status = error } > { status = error }", sset("s22", "s63")),
    ("({ kind = server } > { kind = server }) > { kind = client }", sset("s13", "s24", "s63")),
    # Spanset && and ||: both / either in the same trace.
    ("{ status = error } && { span.retry = true }", sset("s21", "s22", "s23")),
    ('{ span.cache.hit = true } || { event:name = "audit" }', sset("s12", "s51")),
    ('{ name = "charge" } && { name = "GET /cart" }', set()),
    # Pipelines.
    ('{ resource.service.name = "checkout" } | count() > 2', sset("s41", "s42", "s43")),
    ("{ } | count() = 1", sset("s31", "s51")),
    ("{ kind = server } | avg(duration) > 500ms", sset("s21", "s22", "s23")),
    ("{ } | max(duration) >= 5s", sset("s41", "s42", "s43")),
    ("{ } | min(duration) < 5ms", sset("s31")),
    ("{ span.http.status_code != nil } | sum(span.http.status_code) > 450", sset("s21", "s23", "s61")),
    ("{ } | by(resource.service.name) | count() > 2", sset("s41", "s42", "s43")),
    ("{ status = error } | by(resource.service.name)", sset("s21", "s22", "s62", "s63")),
    ("{ kind = server } | { status = error }", sset("s21", "s22", "s62")),
    ('{ kind = server } | select(span.http.route) | { name = "GET /health" }', sset("s31")),
    ("{ status = error } | coalesce()", sset("s21", "s22", "s62", "s63")),
    # Root spans as Grafana's Traces Drilldown asks for them; with(...) hints are read and ignored.
    ("{ nestedSetParent < 0 }", sset("s11", "s21", "s31", "s41", "s51", "s61")),
    ('{ nestedSetParent = -1 && resource.service.name = "checkout" }', sset("s41")),
    ("{ nestedSetParent >= 0 && kind = internal }", sset("s42")),
    ("{ status = error } with(exemplars=true, sample=0.1)", sset("s21", "s22", "s62", "s63")),
]


@pytest.mark.parametrize("q,want", CASES, ids=[c[0] for c in CASES])
def test_traceql_search(tempo, q, want):
    body = search(tempo, q)
    assert matched(body) == want
    assert {t["traceID"] for t in body["traces"]} == {T[td.SPANS[n][0]] for n in want}


def test_traceql_table_is_large_enough():
    assert len(CASES) >= 80


# --- response shapes (Tempo's API docs, tempopb) ---------------------------------------------------

def test_echo_and_buildinfo(tempo):
    r = tempo.get("/api/echo")
    assert (r.status_code, r.text) == (200, "echo")
    info = tempo.get("/api/status/buildinfo").json()
    assert set(info) == {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}


def test_search_response_shape(tempo):
    body = search(tempo, "{ span.http.status_code >= 500 } | select(resource.deployment.environment)", spss=3)
    assert set(body) == {"traces", "metrics"}
    assert [t["traceID"] for t in body["traces"]] == [T[6], T[2]]  # newest first
    t6 = body["traces"][0]
    start = td.trace_start(tempo.t0, 6)
    assert t6 == {
        "traceID": T[6], "rootServiceName": "frontend", "rootTraceName": "GET /cart",
        "startTimeUnixNano": str(start), "durationMs": 300,
        "spanSet": t6["spanSets"][0], "spanSets": [{"matched": 1, "spans": [{
            "spanID": S["s61"], "name": "GET /cart", "startTimeUnixNano": str(start), "durationNanos": "300000000",
            "attributes": [{"key": "service.name", "value": {"stringValue": "frontend"}},
                           {"key": "http.status_code", "value": {"intValue": "500"}},
                           {"key": "deployment.environment", "value": {"stringValue": "prod"}}]}]}],
    }


def test_search_spss_limit_and_by_attributes(tempo):
    body = search(tempo, "{ } | by(resource.service.name)", spss=1, limit=1)
    (t,) = body["traces"]
    assert t["traceID"] == T[6]
    sets = sorted(t["spanSets"], key=lambda ss: ss["attributes"][0]["value"]["stringValue"])
    assert [(ss["attributes"], ss["matched"], len(ss["spans"])) for ss in sets] == [
        ([{"key": "by(resource.service.name)", "value": {"stringValue": "checkout"}}], 2, 1),
        ([{"key": "by(resource.service.name)", "value": {"stringValue": "frontend"}}], 1, 1),
    ]


def test_tags_search_logfmt_and_durations(tempo):
    r = tempo.get("/api/search", params={"tags": "http.method=get", **window(tempo)})
    assert [t["traceID"] for t in r.json()["traces"]] == [T[6], T[3], T[1]]
    r = tempo.get("/api/search", params={"tags": "service.name=front", "minDuration": "250ms", **window(tempo)})
    assert [t["traceID"] for t in r.json()["traces"]] == [T[6], T[2]]
    r = tempo.get("/api/search", params={"tags": "service.name=front", "maxDuration": "250ms", **window(tempo)})
    assert [t["traceID"] for t in r.json()["traces"]] == [T[3], T[1]]
    # Values are matched as text, whatever their kind: the int 503 and the string "503".
    r = tempo.get("/api/search", params={"tags": "http.status_code=503", **window(tempo)})
    assert matched(r.json()) == {"s21", "s23"}
    r = tempo.get("/api/search", params={"tags": 'name="GET /" http.route=cart', **window(tempo)})
    assert [t["traceID"] for t in r.json()["traces"]] == [T[6], T[1]]


def _resource_spans(data) -> dict[str, Any]:
    out = {}
    for rs in data.resource_spans:
        res = {a.key: a.value for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out[s.span_id.hex()] = (res, ss.scope, s)
    return out


def test_trace_by_id_protobuf_v1_is_tempopb_trace(tempo):
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    r = tempo.get(f"/api/traces/{T[2]}", headers={"Accept": "application/protobuf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/protobuf"
    spans = _resource_spans(TracesData.FromString(r.content))  # tempopb.Trace: field 1, ResourceSpans
    assert set(spans) == {S["s21"], S["s22"], S["s23"], S["s24"]}
    res, scope, s23 = spans[S["s23"]]
    assert res["service.name"].string_value == "payments" and scope.name == "shop.payments"
    assert s23.parent_span_id.hex() == S["s22"] and s23.trace_id.hex() == T[2]
    attrs = {a.key: a.value for a in s23.attributes}
    assert attrs["http.status_code"].WhichOneof("value") == "string_value"  # the string "503" stays a string
    assert attrs["retry"].bool_value is True
    _, _, s21 = spans[S["s21"]]
    assert {a.key: a.value for a in s21.attributes}["http.status_code"].int_value == 503
    assert s21.status.code == 2 and s21.status.message == "upstream failed"
    assert s21.end_time_unix_nano - s21.start_time_unix_nano == 900 * td.MS
    _, _, s22 = spans[S["s22"]]
    assert [(e.name, e.attributes[0].key, e.attributes[0].value.string_value) for e in s22.events] == [
        ("exception", "exception.type", "CardDeclined")]
    assert {a.key: a.value for a in s22.attributes}["payment.amount"].double_value == 19.99


def test_trace_by_id_every_attribute_kind(tempo):
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    r = tempo.get(f"/api/traces/{T[4]}", headers={"Accept": "application/protobuf"})
    spans = _resource_spans(TracesData.FromString(r.content))
    a41 = {a.key: a.value for a in spans[S["s41"]][2].attributes}
    assert [v.string_value for v in a41["job.tags"].array_value.values] == ["a", "b"]
    assert [v.int_value for v in a41["job.ids"].array_value.values] == [1, 2]
    a42 = {a.key: a.value for a in spans[S["s42"]][2].attributes}
    assert a42["payload"].bytes_value == b"\x00\x01"
    a43 = {a.key: a.value for a in spans[S["s43"]][2].attributes}
    assert a43["ratio"].double_value == 0.5 and a43["bytes.written"].int_value == 1024
    assert spans[S["s43"]][2].kind == 4  # PRODUCER
    res = spans[S["s41"]][0]
    assert res["service.name"].string_value == "checkout"


def test_trace_by_id_v2_json_and_protobuf(tempo):
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    r = tempo.get(f"/api/v2/traces/{T[3]}")
    assert r.status_code == 200
    body = r.json()
    (rs,) = body["trace"]["resourceSpans"]
    (span,) = rs["scopeSpans"][0]["spans"]
    import base64
    assert base64.b64decode(span["traceId"]).hex() == T[3] and base64.b64decode(span["spanId"]).hex() == S["s31"]
    assert span["kind"] == "SPAN_KIND_SERVER" and span["name"] == "GET /health"
    assert {a["key"]: a["value"] for a in span["attributes"]}["http.status_code"] == {"intValue": "200"}
    (link,) = span["links"]
    assert base64.b64decode(link["spanId"]).hex() == S["s11"]
    # Protobuf: tempopb.TraceByIDResponse, whose field 1 is the trace.
    r = tempo.get(f"/api/v2/traces/{T[3]}", headers={"Accept": "application/protobuf"})
    body = r.content
    assert body[0] == 0x0A
    length, i, shift = 0, 1, 0
    while True:
        length |= (body[i] & 0x7F) << shift
        shift += 7
        i += 1
        if body[i - 1] < 0x80:
            break
    assert len(body) == i + length
    assert set(_resource_spans(TracesData.FromString(body[i:]))) == {S["s31"]}


def test_trace_by_id_range_missing_and_jaeger_json_kept(tempo):
    start = td.trace_start(tempo.t0, 3) // NS
    r = tempo.get(f"/api/v2/traces/{T[3]}", params={"start": start + 100, "end": start + 200})
    assert r.status_code == 404 and r.text == "trace not found"
    assert tempo.get(f"/api/v2/traces/{'f' * 32}").status_code == 404
    r = tempo.get(f"/api/traces/{T[3]}")  # no protobuf Accept: the Jaeger API's trace
    assert r.status_code == 200 and r.json()["data"][0]["traceID"] == T[3]
    assert tempo.get("/api/v2/traces/xyz").status_code == 400
    assert tempo.get(f"/api/v2/traces/{T[3]}", params={"q": "{}"}).status_code == 200
    r = tempo.get(f"/api/v2/traces/{T[3]}", params={"q": "{ status = error }"})
    assert r.status_code == 400 and "selecting spans of a trace" in r.text


def test_search_tags_v1_and_v2(tempo):
    r = tempo.get("/api/search/tags", params=window(tempo))
    names = r.json()["tagNames"]
    assert {"http.status_code", "service.name", "host.cores", "cart.items"} <= set(names)
    assert "duration" not in names
    assert tempo.get("/api/search/tags", params={"scope": "resource", **window(tempo)}).json()["tagNames"] == [
        "deployment.environment", "host.cores", "service.name"]
    body = tempo.get("/api/v2/search/tags", params=window(tempo)).json()
    scopes = {s["name"]: s["tags"] for s in body["scopes"]}
    assert scopes["resource"] == ["deployment.environment", "host.cores", "service.name"]
    assert scopes["event"] == ["audit.user", "exception.type"] and scopes["link"] == ["link.reason"]
    assert {"duration", "rootServiceName", "status", "kind", "name", "traceDuration"} <= set(scopes["intrinsic"])
    body = tempo.get("/api/v2/search/tags", params={"q": '{ resource.service.name = "payments" }', "scope": "span",
                                                   **window(tempo)}).json()
    assert body["scopes"] == [{"name": "span", "tags": ["http.method", "http.status_code", "retry"]}]
    # An incomplete filter (typed while autocompleting) lists everything, as Tempo does.
    body = tempo.get("/api/v2/search/tags", params={"q": "{ span.x = }", "scope": "resource", **window(tempo)}).json()
    assert body["scopes"][0]["tags"] == ["deployment.environment", "host.cores", "service.name"]
    assert tempo.get("/api/v2/search/tags", params={"scope": "nope"}).status_code == 400


def test_tag_values_v1_and_typed_v2(tempo):
    w = window(tempo)
    assert tempo.get("/api/search/tag/service.name/values", params=w).json()["tagValues"] == [
        "checkout", "frontend", "payments"]
    values = tempo.get("/api/v2/search/tag/span.http.status_code/values", params=w).json()["tagValues"]
    assert sorted((v["type"], v["value"]) for v in values) == [
        ("int", "200"), ("int", "404"), ("int", "500"), ("int", "503"), ("string", "503")]
    assert tempo.get("/api/v2/search/tag/status/values", params=w).json()["tagValues"] == [
        {"type": "keyword", "value": v} for v in ("error", "ok", "unset")]
    got = tempo.get("/api/v2/search/tag/.cart.items/values", params={"q": "{ status = error }", **w}).json()
    assert got["tagValues"] == [{"type": "int", "value": "0"}]
    got = tempo.get("/api/v2/search/tag/span.cache.hit/values", params=w).json()["tagValues"]
    assert sorted((v["type"], v["value"]) for v in got) == [("bool", "false"), ("bool", "true")]
    got = tempo.get("/api/v2/search/tag/span.payment.amount/values", params=w).json()["tagValues"]
    assert got == [{"type": "float", "value": "19.99"}]
    got = tempo.get("/api/v2/search/tag/rootServiceName/values", params=w).json()["tagValues"]
    assert sorted(v["value"] for v in got) == ["checkout", "frontend", "payments"]
    got = tempo.get("/api/v2/search/tag/name/values", params={"q": '{ resource.service.name = "payments" }', **w})
    assert sorted(v["value"] for v in got.json()["tagValues"]) == ["authorize", "refund"]
    assert tempo.get("/api/v2/search/tag/span.a%20b%20c/values", params=w).status_code == 400


# --- TraceQL metrics ---------------------------------------------------------------------------

def metrics(http: Any, q: str, path: str = "query_range", **params: Any) -> dict[str, Any]:
    r = http.get(f"/api/metrics/{path}", params={"q": q, **params})
    assert r.status_code == 200, (q, r.text)
    return r.json()


def series(body: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    return {s["promLabels"]: [(int(p["timestampMs"]), p["value"]) for p in s["samples"]] for s in body["series"]}


def test_metrics_rate_by_service_raw(tempo):
    t0 = tempo.t0 // NS
    body = metrics(tempo, "{ } | rate() by (resource.service.name)", start=t0, end=t0 + 120, step="30s")
    ms = t0 * 1000
    assert series(body) == {
        '{resource.service.name="checkout"}': [(ms, 4 / 30), (ms + 30_000, 3 / 30), (ms + 60_000, 2 / 30),
                                               (ms + 90_000, 0.0)],
        '{resource.service.name="frontend"}': [(ms, 2 / 30), (ms + 30_000, 1 / 30), (ms + 60_000, 1 / 30),
                                               (ms + 90_000, 0.0)],
        '{resource.service.name="payments"}': [(ms, 1 / 30), (ms + 30_000, 1 / 30), (ms + 60_000, 0.0),
                                               (ms + 90_000, 0.0)],
    }
    s = body["series"][0]
    assert s["labels"] == [{"key": "resource.service.name", "value": {"stringValue": "checkout"}}]


def test_metrics_rollup_and_raw_agree(tempo):
    from otelingest.query.traceql import metrics as m
    from otelingest.query.traceql.parser import parse

    t0 = tempo.t0 // NS
    for q in ('{ } | count_over_time() by (resource.service.name)',
              '{ status = error } | rate() by (name)',
              '{ resource.service.name = "checkout" && kind = server } | max_over_time(duration) by (name)',
              '{ kind = server } | avg_over_time(duration) by (resource.service.name)',
              '{ name =~ "GET.*" } | min_over_time(duration)'):
        parsed = parse(q)
        assert m.rollup_plan(parsed.metrics, parsed.spansets.expr) is not None, q
        raw_q = q.replace("{ ", "{ true && ", 1) if q.startswith("{ }") is False else q.replace("{ }", "{ true }", 1)
        parsed_raw = parse(raw_q)
        assert m.rollup_plan(parsed_raw.metrics, parsed_raw.spansets.expr) is None, raw_q
        rolled = metrics(tempo, q, start=t0, end=t0 + 7200, step="1h")
        raw = metrics(tempo, raw_q, start=t0, end=t0 + 7200, step="1h")
        a, b = series(rolled), series(raw)
        assert a.keys() == b.keys() and a, q
        for k in a:
            assert [t for t, _ in a[k]] == [t for t, _ in b[k]], q
            assert [v for _, v in a[k]] == pytest.approx([v for _, v in b[k]], rel=1e-9), q
    body = metrics(tempo, "{ } | count_over_time() by (resource.service.name)", start=t0, end=t0 + 7200, step="1h")
    assert series(body)['{resource.service.name="checkout"}'] == [(t0 * 1000, 9.0), (t0 * 1000 + 3_600_000, 0.0)]


def test_metrics_quantiles_histogram_and_instant(tempo):
    t0 = tempo.t0 // NS
    w = {"start": t0, "end": t0 + 3600, "step": "1h"}
    body = metrics(tempo, "{ kind = server } | quantile_over_time(duration, .5, 0.99)", **w)
    got = {s["promLabels"]: s["samples"][0]["value"] for s in body["series"]}
    # Tempo's log2 buckets: nine server spans (2 ms ... 900 ms), interpolated within the bucket.
    assert set(got) == {'{__name__="quantile_over_time", p="0.5"}', '{__name__="quantile_over_time", p="0.99"}'}
    assert 0.134 < got['{__name__="quantile_over_time", p="0.5"}'] <= 0.269
    assert 0.537 < got['{__name__="quantile_over_time", p="0.99"}'] <= 1.074
    body = metrics(tempo, "{ kind = server } | histogram_over_time(duration)", **w)
    counts = {s["labels"][1]["value"]["doubleValue"]: s["samples"][0]["value"] for s in body["series"]}
    assert sum(counts.values()) == 9.0
    assert counts[2 ** 21 / 1e9] == 1.0  # the 2 ms span: bucket (2^20, 2^21] ns
    body = metrics(tempo, "{ status = error } | count_over_time() by (resource.service.name)", path="query",
                   start=t0, end=t0 + 3600)
    assert {s["promLabels"]: s["value"] for s in body["series"]} == {
        '{resource.service.name="checkout"}': 3.0, '{resource.service.name="frontend"}': 1.0}
    body = metrics(tempo, "{ span.cart.items != nil } | sum_over_time(span.cart.items)", path="query",
                   start=t0, end=t0 + 3600)
    assert [s["value"] for s in body["series"]] == [3.0]


def test_metrics_rollup_long_range_is_hourly(tempo):
    t0 = tempo.t0 // NS
    body = metrics(tempo, "{ } | rate() by (resource.service.name)", start=t0 - 6 * 86400, end=t0 + 3600, step="5m")
    pts = series(body)['{resource.service.name="frontend"}']
    assert len(pts) == 6 * 24 + 1 and pts[-1] == (t0 * 1000, 4 / 3600)


# --- what is refused ---------------------------------------------------------------------------

REFUSED = [
    ("{ span.a = 1 } !> { }", "negated structural"),
    ("{ .a + 1 = 2 }", "arithmetic"),
    ("{ parent.a = 1 }", "parent."),
    ("{ nestedSetParent = 1 }", "nestedSetParent is supported only as a root test"),
    ("{ nestedSetLeft > 1 }", "nestedSetLeft"),
    ("{ } | rate() | topk(3)", "'topk'"),
    ("{ } | topk(3)", "'topk'"),
    ("{ span.a = 1s }", "duration literal"),
    ("{ duration = \"x\" }", "duration"),
    ("{ status = 1 }", "status"),
    ("{ span.a =~ 1 }", "regex"),
    ("{ span.a > true }", "booleans"),
    ("{ a = 1 }", "unknown identifier"),
    ("{ span.a = 1", "expected '}'"),
    ("{ } | rate()", "metrics functions"),
    ("{ " + "(" * 40 + "true" + ")" * 40 + " }", "nesting deeper"),
    ("{ " + " && ".join(f"span.a{i} = 1" for i in range(70)) + " }", "more than 64 comparisons"),
    ('{ span.a =~ "' + "x" * 2000 + '" }', "regex longer"),
    ("{ } && " * 20 + "{ }", "more than 16 spanset filters"),
    ("x" * 9000, "longer than"),
]


@pytest.mark.parametrize("q,says", REFUSED, ids=[r[1] for r in REFUSED])
def test_search_refuses_with_400_naming_the_construct(tempo, q, says):
    r = tempo.get("/api/search", params={"q": q, **window(tempo)})
    assert r.status_code == 400, r.text
    assert says in r.text


def test_metrics_refusals(tempo):
    t0 = tempo.t0 // NS
    for q, says in [("{ } > { } | rate()", "spanset operators"), ("{ } | count() > 1 | rate()", "pipeline stages"),
                    ('{ rootName = "x" } | rate()', "trace-level"), ("{ }", "not a metrics query"),
                    ("{ } | avg_over_time(name)", "not supported")]:
        r = tempo.get("/api/metrics/query_range", params={"q": q, "start": t0, "end": t0 + 60})
        assert r.status_code == 400 and says in r.text, (q, r.text)
    r = tempo.get("/api/metrics/query_range", params={"q": "{ } | rate()", "start": t0 - 86400, "end": t0,
                                                      "step": "1s"})
    assert r.status_code == 400 and "max_points" in r.text
    r = tempo.get("/api/search", params={"q": "{ }", "start": t0 - 401 * 86400, "end": t0})
    assert r.status_code == 400 and "max_range_days" in r.text


def test_regex_errors_are_400(tempo):
    r = tempo.get("/api/search", params={"q": '{ span.a =~ "(" }', **window(tempo)})
    assert r.status_code == 400, r.text


def test_structural_operators_are_linear_on_deep_traces():
    """A 20,000-span chain: descendants and ancestors are found in one pass (a walk per span would
    take 2e8 steps and run into the test's timeout)."""
    from otelingest.query.traceql.parser import parse
    from otelingest.query.traceql.spansets import Search, SpanRow

    n = 20_000
    for q, picked in (('{ span:id = "x" } >> { }', 0), ('{ span:id = "x" } << { }', n - 1)):
        spans = [SpanRow("T", f"{i + 1:016x}", f"{i:016x}", i, 1, "op", "svc", "svc", "op", n, 0,
                         (i == picked, True), ()) for i in range(n)]
        (ss,) = Search(parse(q)).spansets(spans)
        assert len(ss.spans) == n - 1
        assert spans[picked] not in ss.spans


def test_metrics_by_typed_attribute(tempo):
    t0 = tempo.t0 // NS
    body = metrics(tempo, "{ span.http.status_code != nil } | count_over_time() by (span.http.status_code)",
                   path="query", start=t0, end=t0 + 3600)
    got = [(s["labels"][0]["value"], s["value"]) for s in body["series"]]
    # The int 503 and the string "503" are two series, as in Tempo.
    assert sorted(got, key=str) == sorted([({"intValue": "200"}, 2.0), ({"intValue": "404"}, 1.0),
                                          ({"intValue": "500"}, 1.0), ({"intValue": "503"}, 1.0),
                                          ({"stringValue": "503"}, 1.0)], key=str)


def test_metrics_root_spans_by_service_with_hints(tempo):
    t0 = tempo.t0 // NS
    body = metrics(tempo, "{ nestedSetParent < 0 } | count_over_time() by (resource.service.name) with(exemplars=true)",
                   path="query", start=t0, end=t0 + 3600)
    assert {s["promLabels"]: s["value"] for s in body["series"]} == {
        '{resource.service.name="frontend"}': 4.0, '{resource.service.name="checkout"}': 1.0,
        '{resource.service.name="payments"}': 1.0}


def test_spans_stored_before_the_kinds_infer_them_from_the_text(migrated, clickhouse):
    """A row written before migration 0008 has no kinds: TraceQL reads its values' kinds from their
    text (docs/tempo.md), so there the string "503" compares as the int 503."""
    from otelingest.clickhouse.client import connect
    from otelingest.config import ClickHouseConfig
    from otelingest.query.traceql.parser import parse
    from otelingest.query.traceql.spansets import Search

    db = migrated.clickhouse.database
    client = connect(ClickHouseConfig(url=clickhouse.url, database=db))
    try:
        client.command(
            "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ServiceName, SpanName, SpanAttributes) VALUES "
            "(now64(9), unhex('0102030405060708090a0b0c0d0e0f10'), unhex('0102030405060708'), 'svc', 'op', "
            "map('code', '503', 'ratio', '1.5', 'ok', 'true', 'name', 'abc', 'tags', '[\"a\",1]'))")
        now = time.time_ns()
        for q, found in [("{ span.code >= 500 }", True), ('{ span.code = "503" }', False),
                         ("{ span.ratio > 1 }", True), ("{ span.ok = true }", True), ('{ span.ok = "true" }', False),
                         ('{ span.name = "abc" }', True), ("{ span.name > 1 }", False), ("{ span.tags = 1 }", False)]:
            sql, params = Search(parse(q)).candidates_sql()
            rows = client.query(sql, parameters={**params, "start_ns": now - 3600 * NS, "end_ns": now + NS,
                                                 "limit": 10, "tenant": "default"}).result_rows
            assert bool(rows) is found, q
    finally:
        client.close()


def test_search_finds_a_trace_not_yet_in_the_trace_times_lookup(migrated, clickhouse):
    """A view's part becomes visible after its source's: a search right after an INSERT can find a
    trace in otel_traces that otel_trace_times does not hold yet. It is still answered, read
    within the slice of the window it was found in (not dropped: the newest traces all came in
    that INSERT)."""
    import asyncio

    from otelingest.clickhouse.client import connect
    from otelingest.config import ClickHouseConfig, QueryConfig
    from otelingest.query.storage.pool import ClientPool
    from otelingest.query.storage.store import Store
    from otelingest.query.traceql.parser import parse
    from otelingest.query.traceql.spansets import Search

    ch = ClickHouseConfig(url=clickhouse.url, database=migrated.clickhouse.database)
    client = connect(ch)
    pool = ClientPool(ch)
    try:
        client.command(
            "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ServiceName, SpanName, Duration) VALUES "
            "(now64(9) - 60, unhex('0102030405060708090a0b0c0d0e0f10'), unhex('0102030405060708'), 'svc', 'op', 1000)")
        client.command("TRUNCATE TABLE otel_trace_times")
        now = time.time_ns()
        store = Store(pool, QueryConfig()).for_tenant("default")
        hits = asyncio.run(Search(parse('{ resource.service.name = "svc" }')).run(store, now - 3600 * NS, now, 20))
        assert [(h.spans[0].trace_id, h.spans[0].name) for h in hits] == [
            ("0102030405060708090A0B0C0D0E0F10", "op")]
    finally:
        pool.close()
        client.close()
