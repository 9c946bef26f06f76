"""A real Prometheus 2.42 scraping and remote-writing to the daemon: every series Prometheus holds
is queryable from the daemon with the same labels and values, metadata included.

The default suite scrapes a deterministic target and the daemon's own /metrics for a few seconds.
``make test-prometheus-live`` (marker ``live``) scrapes prometheus-node-exporter and the daemon for
minutes and restarts the daemon mid-way: Prometheus retries what was refused, and nothing is lost.
"""

from __future__ import annotations

import http.server
import math
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

import promserver
from daemon import Daemon

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus (make system-deps)")


class Target(http.server.BaseHTTPRequestHandler):
    """A deterministic exposition: names and labels OTel naming would rewrite, a counter, a
    histogram, NaN and +Inf values."""

    scrapes = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        Target.scrapes += 1
        n = Target.scrapes
        body = "\n".join([
            "# HELP live_requests_total Requests served.", "# TYPE live_requests_total counter",
            f'live_requests_total{{code="200",a__b="x"}} {10 * n}',
            "# HELP live_temperature_celsius A gauge.", "# TYPE live_temperature_celsius gauge",
            f"live_temperature_celsius {20 + n % 7 / 4}",
            "# TYPE node:cpu:ratio gauge", f'node:cpu:ratio{{cpu="0"}} {n % 3 / 3}',
            "# TYPE live_latency_seconds histogram",
            f'live_latency_seconds_bucket{{le="0.1"}} {n}', f'live_latency_seconds_bucket{{le="1"}} {2 * n}',
            f'live_latency_seconds_bucket{{le="+Inf"}} {3 * n}', f"live_latency_seconds_sum {1.5 * n}",
            f"live_latency_seconds_count {3 * n}",
            "# TYPE live_special gauge", 'live_special{v="inf"} +Inf', 'live_special{v="one"} 1',
        ]) + "\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def config(targets: dict[str, str], write_port: int, interval: str = "1s") -> str:
    jobs = "".join(f"  - job_name: {job}\n    static_configs: [{{targets: ['{t}']}}]\n" for job, t in targets.items())
    return (f"global:\n  scrape_interval: {interval}\n  evaluation_interval: 1m\nscrape_configs:\n{jobs}"
            f"remote_write:\n  - url: http://127.0.0.1:{write_port}/api/v1/write\n"
            "    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 2s}\n"
            "    metadata_config: {send: true, send_interval: 2s}\n")


@pytest.fixture
def target() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def matrix(url: str, start: float, end: float, step: float) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
    r = httpx.post(url + "/api/v1/query_range", data={"query": '{__name__=~".+"}', "start": start, "end": end,
                                                      "step": step}, timeout=120)
    assert r.status_code == 200, r.text
    return {tuple(sorted(s["metric"].items())): [(float(t), float(v)) for t, v in s["values"]]
            for s in r.json()["data"]["result"]}


def differences(ref: dict[Any, list[tuple[float, float]]], got: dict[Any, list[tuple[float, float]]]) -> list[str]:
    out = [f"missing {dict(k)}" for k in ref.keys() - got.keys()]
    out += [f"extra {dict(k)}" for k in got.keys() - ref.keys()]
    for k in ref.keys() & got.keys():
        same = len(ref[k]) == len(got[k]) and all(
            ta == tb and (va == vb or (math.isnan(va) and math.isnan(vb))) for (ta, va), (tb, vb) in zip(ref[k], got[k]))
        if not same:
            out.append(f"{dict(k)}: {ref[k][:3]}... vs {got[k][:3]}...")
    return sorted(out)


def wait_same(ref_url: str, d: Daemon, start: float, end: float, step: float, timeout: float = 60) -> list[str]:
    """Until the daemon answers the range as Prometheus does (remote write lags a little)."""
    deadline = time.monotonic() + timeout
    while True:
        diff = differences(matrix(ref_url, start, end, step), matrix(d.query_url, start, end, step))
        if not diff or time.monotonic() > deadline:
            return diff
        time.sleep(2)


def test_prometheus_scrapes_and_remote_writes(tmp_path: Path, target: str) -> None:
    with Daemon(tmp_path / "daemon") as d, \
            promserver.prometheus(config({"target": target, "otelingest": f"127.0.0.1:{d.metrics_port}"}, d.http_port),
                                  tmp_path / "prometheus") as ref:
        start = time.time()
        time.sleep(12)
        end = int(time.time()) - 3
        diff = wait_same(ref, d, float(int(start) + 2), float(end), 1.0)
        assert diff == [], "\n".join(diff[:20])
        held = matrix(ref, float(int(start) + 2), float(end), 1.0)
        assert len(held) > 50  # the target's, the daemon's own and Prometheus' up/scrape_* series
        inf = held[(("__name__", "live_special"), ("instance", target), ("job", "target"), ("v", "inf"))]
        assert len(inf) >= 2 and all(v == math.inf for _, v in inf)
        labels = httpx.get(d.query_url + "/api/v1/series", params={"match[]": "live_requests_total"}).json()["data"]
        assert labels == [{"__name__": "live_requests_total", "a__b": "x", "code": "200", "instance": target,
                           "job": "target"}]
        deadline = time.monotonic() + 30
        while True:
            meta = httpx.get(d.query_url + "/api/v1/metadata").json()["data"]
            if "live_latency_seconds" in meta or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert meta["live_requests_total"] == [{"type": "counter", "help": "Requests served.", "unit": ""}]
        assert meta["live_latency_seconds"] == [{"type": "histogram", "help": "", "unit": ""}]


@pytest.mark.live
def test_node_exporter_for_minutes_with_a_daemon_restart(tmp_path: Path) -> None:
    exporter_port = promserver.free_port()
    exporter = subprocess.Popen(["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{exporter_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        d = Daemon(tmp_path / "daemon")
        with d, promserver.prometheus(config({"node": f"127.0.0.1:{exporter_port}",
                                              "otelingest": f"127.0.0.1:{d.metrics_port}"}, d.http_port, "5s"),
                                      tmp_path / "prometheus") as ref:
            start = time.time()
            time.sleep(60)
            d.stop()  # Prometheus keeps scraping node-exporter and retries its writes
            time.sleep(20)
            d.start()
            time.sleep(60)
            end = int(time.time()) - 10
            diff = wait_same(ref, d, float(int(start) + 10), float(end), 5.0, timeout=120)
            assert diff == [], "\n".join(diff[:20])
            held = matrix(ref, float(int(start) + 10), float(end), 5.0)
            assert sum(k[0] == ("__name__", "node_cpu_seconds_total") for k in held) > 0 and len(held) > 300
    finally:
        exporter.terminate()
        exporter.wait(10)
