"""The ingest benchmark harness itself keeps working: a short, low-rate run end to end, and its
results reach disk as JSON even when the PNG cannot be drawn.

Not a speed test: it checks what the harness reports is complete and consistent (every key, every
acknowledged span stored), at a rate any machine sustains.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

KEYS = {
    "accepted_spans_per_s", "stored_spans_per_s", "baseline_spans_per_s", "ratio", "loss", "p50_ms", "p99_ms",
    "daemon_rss_mb", "clickhouse_rss_mb", "bytes_per_span", "exporter_schema_bytes_per_span",
    "sender_max_items_per_s", "processes", "storage", "timeline",
    "spans_per_clickhouse_cpu_s", "spans_per_daemon_cpu_s", "all_tables_bytes_per_span",
}


def test_bench_ingest_smoke(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "otelingest", "bench", "ingest", "--duration", "3", "--rate", "2000", "--warmup", "1",
         "--connections", "2", "--baseline-seconds", "1", "--mix", "traces:2,logs:1,metrics:1", "--json", str(out)],
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
    every = r["all_tables_bytes_per_span"]
    assert every["ours"] >= same["ours_total_disk_bytes_per_span"] and every["exporter"] > 0
    assert r["spans_per_clickhouse_cpu_s"] > 0 and r["spans_per_daemon_cpu_s"] > 0
    # Each signal of the mix has its own figures: items stored per second and per CPU-second.
    assert r["loss_by_table"] == {"otel_traces": 0, "otel_logs": 0, "otel_metrics": 0}
    for item in ("records", "points"):
        assert r[f"stored_{item}_per_s"] > 0, item
        assert r[f"{item}_per_clickhouse_cpu_s"] > 0 and r[f"{item}_per_daemon_cpu_s"] > 0, item
    # The baseline stored every span it built.
    assert r["baseline_stored"] == r["baseline_sent"] > 0
    assert {"otelingest: receiver 0", "otelingest: writer 0"} <= r["processes"].keys()
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_bench_ingest_spreads_the_load_over_tenants(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "otelingest", "bench", "ingest", "--duration", "3", "--rate", "2000", "--warmup", "1",
         "--connections", "2", "--baseline-seconds", "1", "--sample-rows", "1000", "--tenants", "5",
         "--json", str(out)],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["spec"]["tenants"] == 5 and r["daemon_env"]["OTELINGEST_TENANCY_MODE"] == "header"
    assert r["loss"] == 0 and r["errors"] == 0 and r["refusals"] == 0
    assert r["stored"]["otel_traces"] == r["acknowledged"]["otel_traces"] > 0
    assert r["tenants_stored"] == {"otel_traces": 5}  # every request a tenant's, round robin


def _tiny_load() -> Any:
    from otelingest.bench import loadgen

    timeline = [{"t": 1.0, "items_per_s": 500, "p50_ms": 1.0, "p99_ms": 2.0, "refusals": 0, "errors": 0}]
    return loadgen.LoadResult(loadgen.LoadSpec(rate=500, duration=1, warmup=0), {"traces": 500}, {"traces": 500}, 1.0,
                              1, 0, 0, 0.0, [1.0], timeline)


def test_json_is_written_when_matplotlib_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from otelingest.bench import ingest

    # None in sys.modules makes `import matplotlib` raise ImportError, as on an install without the extra.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "r.json"
    note = ingest.write_results({"loss": 0}, out, out.with_suffix(".png"), _tiny_load(), [], 0.0, "t")
    assert json.loads(out.read_text()) == {"loss": 0}
    assert not out.with_suffix(".png").exists()
    assert note is not None and "PNG not written" in note and "matplotlib" in note and "\n" not in note


def test_json_is_written_when_plotting_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from otelingest.bench import ingest

    def broken(*_: object) -> None:
        raise ValueError("no room on the canvas")

    monkeypatch.setattr(ingest, "plot", broken)
    out = tmp_path / "r.json"
    note = ingest.write_results({"loss": 0}, out, out.with_suffix(".png"), _tiny_load(), [], 0.0, "t")
    assert json.loads(out.read_text()) == {"loss": 0}
    assert note == "[ingest] PNG not written: plotting failed: ValueError: no room on the canvas"


def test_png_is_written_with_matplotlib(tmp_path: Path) -> None:
    from otelingest.bench import ingest

    out = tmp_path / "r.json"
    assert ingest.write_results({"loss": 0}, out, out.with_suffix(".png"), _tiny_load(), [], 0.0, "t") is None
    assert out.with_suffix(".png").stat().st_size > 1000
