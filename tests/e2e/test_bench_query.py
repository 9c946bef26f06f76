"""``bench query --with-ingest`` keeps working: a tiny dataset, two query types, a daemon storing a low
rate into the same ClickHouse meanwhile.

Not a speed test: it checks that the report says, per query type, what the queries took while the
daemon ingested, and what the daemon stored meanwhile, with every acknowledged item stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_query_with_ingest_reports_queries_and_the_ingest_beside_them(tmp_path: Path) -> None:
    out = tmp_path / "query.json"
    proc = subprocess.run(
        [sys.executable, "-m", "otelingest", "bench", "query", "--scale", "0.0005", "--duration", "0.3",
         "--only", "api_trace_by_id", "--only", "loki_line_filter", "--with-ingest", "1000", "--warmup", "1",
         "--json", str(out)],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    for name in ("api_trace_by_id", "loki_line_filter_24h"):
        assert r[name]["n"] >= 5 and r[name]["p95_ms"] > 0, r[name]
    assert set(r["_over_500ms_p95"]) <= {"api_trace_by_id", "loki_line_filter_24h"}
    ingest = r["_ingest"]
    assert ingest["spans_per_s_target"] == 1000 and ingest["points_per_s_target"] == 500
    assert ingest["seconds"] > 0 and ingest["daemon_exit_code"] == 0
    assert {"traces_stored_per_s", "logs_stored_per_s", "metrics_stored_per_s", "daemon_cpu_percent",
            "clickhouse_cpu_percent", "load_average_at_first_query"} <= ingest.keys()
    # Every signal was sent, and everything the daemon acknowledged is in the tables after its stop.
    assert all(ingest["acknowledged"][s] > 0 for s in ("traces", "logs", "metrics")), ingest
    assert ingest["stored"] == ingest["acknowledged"] and ingest["loss"] == 0
    assert ingest["errors"] == 0
    assert "while ingesting" in proc.stdout and "loss    0" in proc.stdout
