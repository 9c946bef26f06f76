"""`otelingest status` against a running `otelingest serve`."""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
from conftest import free_port
from ops_daemon import clean_env, get, send_spans, serve, wait_for

from otelingest.selfmon import status as overview
from otelingest.clickhouse.client import connect
from otelingest.config import MIB, ClickHouseConfig, Config


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otelingest", "status", *args], capture_output=True, text=True, env=clean_env(), timeout=120
    )


def test_status_of_a_running_daemon(tmp_path):
    env = clean_env(OTELINGEST_WRITER_BATCH_TIMEOUT_S="0.2")
    with serve(tmp_path, env=env, extra_args=("--receivers", "2", "--writers", "1")) as daemon:
        client = connect(ClickHouseConfig(url=f"http://127.0.0.1:{daemon.ports['ch_http']}"), with_database=False)
        client.command("INSERT INTO otel.otel_logs (Timestamp, ServiceName, Body) SELECT now64(9), 'svc', toString(number) FROM numbers(7)")
        send_spans(daemon, 5)
        assert wait_for(lambda: client.query("SELECT count() FROM otel.otel_traces").result_rows == [(5,)], 30)
        client.close()
        # The INSERT is counted once the writer has its answer.
        assert wait_for(lambda: b'otel_storage_writes_total{status="ok",table="otel_traces"}' in get(daemon.metrics_url + "/metrics")[1], 10)

        r = status(*daemon.args, "--json")
        assert r.returncode == overview.EXIT_READY, r.stderr
        s = overview.status_from_dict(json.loads(r.stdout))
        assert s.reachable and s.ready and s.reason == "ok"
        roles = {p.role: p for p in s.processes}
        assert set(roles) == {"supervisor", "receiver 0", "receiver 1", "writer 0", "query", "clickhouse"}
        assert [p.role for p in s.processes] == ["supervisor", "receiver 0", "receiver 1", "writer 0", "query", "clickhouse"]
        assert s.received_total["spans"] == {"http": 5.0}
        assert s.writes_total.get("ok", 0) >= 1 and "retry" not in s.writes_total
        # The daemon's own supervisor (not another daemon on this host) and its ClickHouse child.
        assert roles["supervisor"].pid == daemon.proc.pid
        ch_pid = roles["clickhouse"].pid
        assert ch_pid in {c.pid for c in psutil.Process(daemon.proc.pid).children(recursive=True)}
        assert all(p.rss_bytes > 10 * MIB and p.cpu_percent >= 0 for p in s.processes)
        assert s.processes[0].role == "supervisor"
        assert s.interval_s >= 1.0  # two /metrics samples a second apart
        defaults = Config()
        assert s.memory_limits == {
            "hard": defaults.memory.hard_limit_mib * MIB, "soft": defaults.memory.effective_soft_limit_mib * MIB}
        assert s.spill_budget_bytes == defaults.spill.disk_budget_mib * MIB and s.spill_bytes == 0
        assert s.clickhouse_ok and s.clickhouse_version.startswith("26.")
        tables = {t.table: t for t in s.tables}
        assert tables["otel_logs"].rows == 7 and tables["otel_logs"].parts == 1
        assert tables["otel_logs"].bytes_on_disk > 0
        assert tables["otel_traces"].rows == 5
        assert set(s.received) == {"spans", "logs", "metric points"}

        r = status(*daemon.args)
        assert r.returncode == 0, r.stderr
        screen = r.stdout
        assert screen.splitlines()[0] == f"otelingest  http://127.0.0.1:{daemon.ports['metrics']}  READY"
        process_lines = [line.split() for line in screen.splitlines() if line.startswith(("supervisor", "clickhouse"))]
        assert [(p[0], int(p[1])) for p in process_lines] == [("supervisor", daemon.proc.pid), ("clickhouse", ch_pid)]
        spans_line = next(line for line in screen.splitlines() if line.strip().startswith("spans"))
        assert spans_line.rstrip().endswith("(total 5)"), spans_line
        logs_line = next(line for line in screen.splitlines() if line.split()[:1] == ["otel_logs"])
        assert logs_line.split()[1] == "7"
        assert "soft limit 1.6 GiB  hard limit 2.0 GiB" in screen
        assert "spill 0 B of 4.0 GiB (0.0%)" in screen


def test_status_when_nothing_runs(tmp_path):
    r = status("--data-dir", str(tmp_path), "--metrics-port", str(free_port()),
               "--clickhouse-url", f"http://127.0.0.1:{free_port()}", "--interval", "0.1")
    assert r.returncode == overview.EXIT_UNREACHABLE
    lines = r.stdout.splitlines()
    assert lines[0].startswith("otelingest  http://127.0.0.1:") and "UNREACHABLE" in lines[0]
    assert any(line.startswith("CLICKHOUSE  http://127.0.0.1:") and "UNREACHABLE" in line for line in lines)


EXPOSITION = """# TYPE otel_received_spans_total counter
otel_received_spans_total{{transport="grpc"}} {grpc}
otel_received_spans_total{{transport="http"}} {http}
# TYPE otel_queue_size gauge
otel_queue_size 4096
"""


def test_rates_from_two_samples():
    before = overview.parse_metrics(EXPOSITION.format(grpc=1000, http=10))
    after = overview.parse_metrics(EXPOSITION.format(grpc=3000, http=4))  # http restarted from 0
    assert overview.rates(before, after, "otel_received_spans_total", "transport", 2.0) == {"grpc": 1000.0, "http": 2.0}
    assert overview.single(after, "otel_queue_size") == 4096
