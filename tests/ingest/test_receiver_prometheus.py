"""Prometheus remote write 1.0 into a running daemon: a series reads back through the Prometheus API
under exactly the name and labels it was written with, job/instance become the resource the
OpenTelemetry Prometheus compatibility spec says, metadata is served, bad payloads are a 400 that
says why and refusals are retryable (503 + Retry-After, never a 4xx)."""

from __future__ import annotations

import asyncio
import http.client
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import httpx
import pytest

from daemon import Daemon
from otelingest.bench.promwrite import (HEADERS, HEADERS_V2, STALE_NAN, Series, compress, post, write_request,
                                         write_request_v2)

from otelingest.config import Config
from otelingest.ingest.receiver.http import HttpReceiver
from otelingest.ingest.receiver.intake import Intake

NOW_S = int(time.time()) // 60 * 60 - 600  # within raw retention, whole minutes
MS = 1000


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("promrw")) as d:
        yield d


def write(d: Daemon, series: list[Series], metadata: list[tuple[str, str, str, str]] = ()) -> tuple[int, bytes]:  # type: ignore[assignment]
    status, _, body = post("127.0.0.1", d.http_port, compress(write_request(series, metadata)))
    return status, body


def query(d: Daemon, path: str, **params: Any) -> Any:
    r = httpx.get(d.query_url + path, params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def wait_rows(d: Daemon, name: str, n: int) -> None:
    assert d.wait_count_where("otel_prom_samples", "MetricName = {n:String}", {"n": name}, n) == n


def test_series_read_back_under_exactly_its_name_and_labels(daemon: Daemon) -> None:
    # Names and labels OTel naming would rewrite: colons, a double underscore, `_total` on a name
    # with no metadata, unit-like suffixes, a label name that is not a valid OTel-to-Prometheus
    # label, a label named like a resource attribute.
    labels = {"__name__": "node:cpu__seconds:rate5m", "job": "node", "instance": "host-1:9100",
              "a__b": "x", "le_like": "0.5", "service_name": "not-the-job"}
    counter = {"__name__": "http_requests_total", "job": "api", "code": "200"}
    bytes_metric = {"__name__": "process_resident_memory_bytes", "job": "api"}
    t = NOW_S * MS
    status, body = write(daemon, [
        Series(labels, [(t, 1.5), (t + 15_000, 2.5)]),
        Series(counter, [(t, 10.0), (t + 15_000, 25.0)]),
        Series(bytes_metric, [(t + 15_000, 1024.0)]),
    ])
    assert (status, body) == (204, b"")
    wait_rows(daemon, "node:cpu__seconds:rate5m", 2)
    wait_rows(daemon, "http_requests_total", 2)
    wait_rows(daemon, "process_resident_memory_bytes", 1)

    data = query(daemon, "/api/v1/query", query='{__name__="node:cpu__seconds:rate5m"}', time=NOW_S + 20)
    assert data["result"] == [{"metric": labels, "value": [NOW_S + 20, "2.5"]}]
    data = query(daemon, "/api/v1/query", query='http_requests_total{code="200"}', time=NOW_S + 20)
    assert data["result"] == [{"metric": counter, "value": [NOW_S + 20, "25"]}]
    data = query(daemon, "/api/v1/query", query="process_resident_memory_bytes", time=NOW_S + 20)
    assert data["result"] == [{"metric": bytes_metric, "value": [NOW_S + 20, "1024"]}]
    # rate() over it as Prometheus: 15 s between the two samples, window (t-60s, t+20s].
    data = query(daemon, "/api/v1/query", query="rate(http_requests_total[1m])", time=NOW_S + 20)
    assert [s["metric"] for s in data["result"]] == [{"job": "api", "code": "200"}]
    series = query(daemon, "/api/v1/series", **{"match[]": "http_requests_total", "start": NOW_S - 60, "end": NOW_S + 60})
    assert series == [counter]
    label_names = query(daemon, "/api/v1/labels", start=NOW_S - 60, end=NOW_S + 60)
    assert {"a__b", "le_like", "instance", "job", "code", "service_name"} <= set(label_names)
    assert "a_b" not in label_names  # no OTel sanitizing of a written label name
    names = query(daemon, "/api/v1/label/__name__/values", start=NOW_S - 60, end=NOW_S + 60)
    assert {"node:cpu__seconds:rate5m", "http_requests_total", "process_resident_memory_bytes"} <= set(names)


def test_job_and_instance_are_the_resource(daemon: Daemon) -> None:
    t = NOW_S * MS
    assert write(daemon, [Series({"__name__": "rw_up", "job": "shop/cart", "instance": "10.0.0.7:8080"}, [(t, 1.0)]),
                          Series({"__name__": "rw_up"}, [(t, 0.0)])])[0] == 204
    wait_rows(daemon, "rw_up", 2)
    # The labels once per series (otel_prom_series), the samples narrow (otel_prom_samples), one
    # SeriesId: the otel_metrics formula, computed in Rust exactly as ClickHouse computes it.
    rows = daemon.client().query(
        "SELECT s.ServiceName, s.ResourceAttributes, s.Attributes, p.Value,"
        " s.SeriesId = cityHash64(s.MetricName, s.ServiceName, mapSort(s.ResourceAttributes), mapSort(s.Attributes))"
        " FROM otel.otel_prom_series AS s INNER JOIN otel.otel_prom_samples AS p USING (MetricName, SeriesId)"
        " WHERE MetricName = 'rw_up' ORDER BY s.ServiceName").result_rows
    assert rows == [
        ("shop/cart", {"service.name": "shop/cart", "service.instance.id": "10.0.0.7:8080",
                       "otelingest.source": "prometheus.remote_write"},
         {"job": "shop/cart", "instance": "10.0.0.7:8080"}, 1.0, True),
        ("unknown_service", {"otelingest.source": "prometheus.remote_write"}, {}, 0.0, True),
    ]
    assert daemon.count_where("otel_metrics", "MetricName = 'rw_up'", {}) == 0


def test_nan_and_inf_are_stored_as_values(daemon: Daemon) -> None:
    t = NOW_S * MS
    assert write(daemon, [Series({"__name__": "rw_special", "k": "nan"}, [(t, math.nan)]),
                          Series({"__name__": "rw_special", "k": "inf"}, [(t, math.inf)]),
                          Series({"__name__": "rw_special", "k": "stale"}, [(t, STALE_NAN)])])[0] == 204
    wait_rows(daemon, "rw_special", 3)
    rows = dict(daemon.client().query(
        "SELECT s.Attributes['k'], reinterpretAsUInt64(p.Value) FROM otel.otel_prom_samples AS p"
        " INNER JOIN otel.otel_prom_series AS s USING (MetricName, SeriesId) WHERE MetricName = 'rw_special'"
    ).result_rows)
    assert rows["inf"] == 0x7FF0000000000000
    assert rows["stale"] == 0x7FF0000000000002
    assert rows["nan"] >> 52 & 0x7FF == 0x7FF and rows["nan"] & (1 << 52) - 1 != 0  # a NaN


def test_metadata_is_kept_and_served(daemon: Daemon) -> None:
    t = NOW_S * MS
    status, _ = write(daemon, [Series({"__name__": "rw_jobs_total", "job": "x"}, [(t, 1.0)])],
                      [("rw_jobs_total", "counter", "Jobs run.", ""), ("rw_latency_seconds", "histogram", "Latency.", "seconds")])
    assert status == 204
    assert daemon.wait_count_where("otel_metrics_metadata", "MetricFamilyName LIKE 'rw_%'", {}, 2) == 2
    data = query(daemon, "/api/v1/metadata")
    assert data["rw_jobs_total"] == [{"type": "counter", "help": "Jobs run.", "unit": ""}]
    assert data["rw_latency_seconds"] == [{"type": "histogram", "help": "Latency.", "unit": "seconds"}]
    assert query(daemon, "/api/v1/metadata", metric="rw_latency_seconds") == {
        "rw_latency_seconds": [{"type": "histogram", "help": "Latency.", "unit": "seconds"}]}


def test_exemplars_are_stored(daemon: Daemon) -> None:
    ex = Series({"__name__": "rw_exemplified", "job": "x"},
                exemplars=[({"trace_id": "0102030405060708090a0b0c0d0e0f10"}, 0.25, NOW_S * MS)])
    assert write(daemon, [ex])[0] == 204
    assert daemon.wait_count_where("otel_metrics_exemplars", "MetricName = 'rw_exemplified'", {}, 1) == 1
    rows = daemon.client().query(
        "SELECT lower(hex(TraceId)), Value, Attributes, FilteredAttributes FROM otel.otel_metrics_exemplars"
        " WHERE MetricName = 'rw_exemplified'").result_rows
    assert rows == [("0102030405060708090a0b0c0d0e0f10", 0.25, {"job": "x"},
                     {"trace_id": "0102030405060708090a0b0c0d0e0f10"})]
    assert daemon.count_where("otel_prom_samples", "MetricName = 'rw_exemplified'", {}) == 0
    # Served by query_exemplars once the series has samples (Prometheus sends both).
    assert write(daemon, [Series({"__name__": "rw_exemplified", "job": "x"}, [(NOW_S * MS, 3.0)])])[0] == 204
    wait_rows(daemon, "rw_exemplified", 1)
    data = query(daemon, "/api/v1/query_exemplars", query="rw_exemplified", start=NOW_S - 60, end=NOW_S + 60)
    assert data == [{"seriesLabels": {"__name__": "rw_exemplified", "job": "x"}, "exemplars": [
        {"labels": {"trace_id": "0102030405060708090a0b0c0d0e0f10"}, "value": "0.25", "timestamp": NOW_S}]}]


@pytest.mark.parametrize("body, reason", [
    (b"\xff\xff\xff\xff", b"invalid snappy body"),
    (compress(b"\x0a\x05\x0a\x03"), b"truncated"),
    (compress(write_request([Series({"job": "x"}, [(1, 1.0)])])), b"series without a __name__ label"),
    (compress(write_request([Series({"__name__": "x", "": "v"}, [(1, 1.0)])])), b"empty label name"),
])
def test_bad_payloads_are_a_400_that_says_why(daemon: Daemon, body: bytes, reason: bytes) -> None:
    status, headers, text = post("127.0.0.1", daemon.http_port, body)
    assert status == 400 and headers["content-type"].startswith("text/plain")
    assert reason in text, text


def test_headers_not_remote_write_are_refused(daemon: Daemon) -> None:
    body = compress(write_request([Series({"__name__": "x"}, [(1, 1.0)])]))
    status, _, text = post("127.0.0.1", daemon.http_port, body, {**HEADERS, "Content-Encoding": "gzip"})
    assert status == 415 and b"snappy" in text
    status, _, text = post("127.0.0.1", daemon.http_port, body, {**HEADERS, "Content-Type": "application/json"})
    assert status == 415 and b"application/x-protobuf" in text
    conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=10)
    conn.request("GET", "/api/v1/write")
    assert conn.getresponse().status == 405
    conn.close()


class _FullRing:
    """A ring that never has room (the writers far behind)."""

    max_record = 1 << 20
    used_bytes = 0

    def try_push_parts(self, parts: list[bytes]) -> bool:
        return False


@pytest.mark.parametrize("refuse, ring", [(True, None), (False, _FullRing())])
def test_refusals_are_retryable_503_with_retry_after(refuse: bool, ring: Any) -> None:
    """Memory limit reached or every ring full: 503 + Retry-After (Prometheus 2.x drops a 429)."""
    intake = Intake(Config(), [ring] if ring else [], refuse=lambda: refuse)
    body = compress(write_request([Series({"__name__": "x"}, [(1, 1.0)])]))

    async def run() -> tuple[int, dict[str, str], bytes]:
        with ThreadPoolExecutor(1) as pool:
            rx = HttpReceiver(intake, pool, host="127.0.0.1", port=0, max_body=1 << 20, timeout_s=5, retry_after_s=3)
            await rx.start()
            assert rx.server is not None
            port = rx.server.sockets[0].getsockname()[1]
            try:
                return await asyncio.get_running_loop().run_in_executor(None, post, "127.0.0.1", port, body)
            finally:
                await rx.stop(1)

    status, headers, text = asyncio.run(run())
    assert status == 503 and headers["retry-after"] == "3", text


def test_stale_marker_ends_a_series_but_is_no_sample_of_a_window(daemon: Daemon) -> None:
    """Prometheus writes a stale marker when a series stops: instant selection ends there, range
    functions skip it (rate over the samples before it), on the raw and the pre-aggregated paths."""
    t = NOW_S * MS
    samples = [(t + k * 15_000, 100.0 + 30 * k) for k in range(8)] + [(t + 8 * 15_000, STALE_NAN)]
    assert write(daemon, [Series({"__name__": "rw_stopping_total", "job": "x"}, samples)])[0] == 204
    wait_rows(daemon, "rw_stopping_total", 9)
    before, after = NOW_S + 7 * 15 + 5, NOW_S + 8 * 15 + 5
    assert [s["value"][1] for s in query(daemon, "/api/v1/query", query="rw_stopping_total", time=before)["result"]] == ["310"]
    assert query(daemon, "/api/v1/query", query="rw_stopping_total", time=after)["result"] == []
    data = query(daemon, "/api/v1/query", query="count_over_time(rw_stopping_total[5m])", time=after)
    assert [s["value"][1] for s in data["result"]] == ["8"]
    # Samples 0..105 s grow by 210; extrapolated half an interval (7.5 s) at each end: 240.
    data = query(daemon, "/api/v1/query", query="increase(rw_stopping_total[200s])", time=after)
    assert [float(s["value"][1]) for s in data["result"]] == [pytest.approx(240.0, rel=1e-12)]
    # A range query at a one-minute step reads pre-aggregated buckets: a value, not NaN (the same
    # 240 over the 300 s window).
    r = httpx.get(daemon.query_url + "/api/v1/query_range", params={
        "query": "sum(rate(rw_stopping_total[5m]))", "start": NOW_S + 180, "end": NOW_S + 180, "step": 60}, timeout=60)
    (series,) = r.json()["data"]["result"]
    assert series["values"][0][1] != "NaN" and float(series["values"][0][1]) == pytest.approx(0.8, rel=1e-12)


def test_nan_and_inf_read_back_as_values(daemon: Daemon) -> None:
    """NaN and ±Inf are values end to end: a NaN sample is served as "NaN", as is what an
    operation computes from present samples (sqrt of a negative, x * NaN)."""
    t = NOW_S * MS
    assert write(daemon, [Series({"__name__": "rw_values", "k": "nan"}, [(t, math.nan)]),
                          Series({"__name__": "rw_values", "k": "inf"}, [(t, -math.inf)]),
                          Series({"__name__": "rw_values", "k": "four"}, [(t, 4.0)])])[0] == 204
    wait_rows(daemon, "rw_values", 3)

    def values(q: str) -> dict[str, str]:
        data = query(daemon, "/api/v1/query", query=q, time=NOW_S + 10)
        return {s["metric"].get("k", ""): s["value"][1] for s in data["result"]}

    assert values("rw_values") == {"nan": "NaN", "inf": "-Inf", "four": "4"}
    assert values("sqrt(-rw_values)") == {"nan": "NaN", "inf": "+Inf", "four": "NaN"}
    assert values('rw_values{k="four"} * NaN') == {"four": "NaN"}
    assert values("rw_values > 0") == {"four": "4"}  # NaN compares false
    assert query(daemon, "/api/v1/query", query="NaN", time=NOW_S)["result"] == [NOW_S, "NaN"]


def test_subqueries_step_on_absolute_multiples(daemon: Daemon) -> None:
    """A subquery evaluates at multiples of its step (1m when it has none, Prometheus' default
    evaluation interval) in its left-open window."""
    t = NOW_S * MS
    assert write(daemon, [Series({"__name__": "rw_sub"}, [(t + k * 15_000, 100.0 + 30 * k) for k in range(8)])])[0] == 204
    wait_rows(daemon, "rw_sub", 8)

    def value(q: str) -> str:
        (s,) = query(daemon, "/api/v1/query", query=q, time=NOW_S + 120)["result"]
        return str(s["value"][1])

    assert value("min_over_time(rw_sub[1m:15s])") == "250"  # steps 75, 90, 105, 120 s
    assert value("min_over_time(rw_sub[2m:])") == "220"  # steps 60, 120 s
    data = query(daemon, "/api/v1/query", query="rw_sub[1m:30s]", time=NOW_S + 120)
    assert data["result"] == [{"metric": {"__name__": "rw_sub"}, "values": [[NOW_S + 90, "280"], [NOW_S + 120, "310"]]}]


def test_remote_write_2_reads_back_as_1_0_does(daemon: Daemon) -> None:
    """A 2.0 request (interned symbols, metadata per series, exemplars) stores what the same series
    sent in 1.0 store; the reply says what was written, as 2.0 senders expect. Prometheus 2.42 (the
    reference here) cannot send 2.0, so the request is encoded by hand from the 2.0 spec's proto."""
    t = NOW_S * MS
    def series(job: str) -> list[Series]:
        return [Series({"__name__": "rw2_requests_total", "job": job, "code": "200"}, [(t, 3.0), (t + 15_000, 7.0)],
                       exemplars=[({"trace_id": "0102030405060708090a0b0c0d0e0f10"}, 7.0, t + 15_000)]),
                Series({"__name__": "rw2_temperature", "job": job, "room": "a"}, [(t, math.nan), (t + 15_000, -1.5)])]
    meta = {"rw2_requests_total": ("counter", "Requests served.", ""), "rw2_temperature": ("gauge", "Temp.", "celsius")}
    status, headers, body = post("127.0.0.1", daemon.http_port, compress(write_request_v2(series("v2"), meta)),
                                 HEADERS_V2)
    assert (status, body) == (204, b"")
    assert headers["x-prometheus-remote-write-samples-written"] == "4"
    assert headers["x-prometheus-remote-write-histograms-written"] == "0"
    assert headers["x-prometheus-remote-write-exemplars-written"] == "1"
    assert write(daemon, series("v1"), [(n, *m) for n, m in meta.items()])[0] == 204
    wait_rows(daemon, "rw2_requests_total", 4)
    wait_rows(daemon, "rw2_temperature", 4)

    def answer(job: str, q: str) -> Any:
        r = query(daemon, "/api/v1/query_range", query=q.replace("JOB", job), start=NOW_S, end=NOW_S + 30, step=15)
        for s in r["result"]:
            s["metric"].pop("job", None)
        return r["result"]
    for q in ('rw2_requests_total{job="JOB"}', 'rw2_temperature{job="JOB"}', 'rate(rw2_requests_total{job="JOB"}[1m])'):
        assert answer("v2", q) == answer("v1", q) != [], q
    assert answer("v2", 'rw2_temperature{job="JOB"}')[0]["values"][0][1] == "NaN"
    md = query(daemon, "/api/v1/metadata", metric="rw2_temperature")
    assert {"type": "gauge", "help": "Temp.", "unit": "celsius"} in md["rw2_temperature"]
    assert daemon.wait_count_where("otel_metrics_exemplars", "MetricName = 'rw2_requests_total'", {}, 2) == 2


@pytest.mark.parametrize("headers, reason", [
    ({**HEADERS_V2, "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request"},
     b"unsupported remote write message 'io.prometheus.write.v3.Request'"),
    ({**HEADERS_V2, "X-Prometheus-Remote-Write-Version": "0.1.0"}, b"unsupported remote write version '0.1.0'"),
])
def test_remote_write_2_headers_that_do_not_fit_are_415(daemon: Daemon, headers: dict[str, str], reason: bytes) -> None:
    body = compress(write_request_v2([Series({"__name__": "x"}, [(1, 1.0)])]))
    status, _, text = post("127.0.0.1", daemon.http_port, body, headers)
    assert status == 415 and reason in text, text


def test_remote_write_2_bad_symbols_are_a_400(daemon: Daemon) -> None:
    # Series {__name__="x"} pointing at symbol 5 of 2.
    raw = b"\x22\x00\x22\x08__name__" + b"\x2a\x04\x0a\x02\x01\x05"
    status, _, text = post("127.0.0.1", daemon.http_port, compress(raw), HEADERS_V2)
    assert status == 400 and b"symbol reference 5 outside the 2 symbols" in text, text
