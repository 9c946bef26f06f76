"""The ingest benchmark harness itself keeps working: a short, low-rate run end to end.

Not a speed test: it checks what the harness reports is complete and consistent (every key, every
acknowledged span stored), at a rate any machine sustains.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

KEYS = {
    "accepted_spans_per_s", "stored_spans_per_s", "baseline_spans_per_s", "ratio", "loss", "p50_ms", "p99_ms",
    "daemon_rss_mb", "clickhouse_rss_mb", "bytes_per_span", "exporter_schema_bytes_per_span",
    "sender_max_items_per_s", "processes", "storage", "timeline",
}


def test_bench_ingest_smoke(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "otelingest", "bench", "ingest", "--duration", "3", "--rate", "2000", "--warmup", "1",
         "--connections", "2", "--baseline-seconds", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert KEYS <= r.keys(), KEYS - r.keys()
    assert r["loss"] == 0
    assert r["stored"]["otel_traces"] == r["acknowledged"]["otel_traces"] > 0
    assert r["errors"] == 0
    # The storage comparison ran on the same spans in both schemas.
    same = r["storage"]["same_spans_optimized"]
    assert same["rows"] == r["stored"]["otel_traces"]
    assert same["ours_bytes_per_span"] > 0 and same["exporter_bytes_per_span"] > 0
    # The baseline stored every span it built.
    assert r["baseline_stored"] == r["baseline_sent"] > 0
    assert {"otelingest: receiver 0", "otelingest: writer 0"} <= r["processes"].keys()
    assert out.with_suffix(".png").stat().st_size > 10_000
