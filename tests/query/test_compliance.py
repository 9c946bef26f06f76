"""The PromQL compliance harness, short: a fixed subset of the upstream queries (tests/compliance)
over one hour of the demo data, against a real Prometheus 2.42 holding the same samples. The whole
list runs with `make test-compliance`."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from compliance import harness
from daemon import Daemon

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                reason="needs Debian's prometheus (make system-deps)")

# One query per feature the long run checks, each answered as Prometheus does.
SUBSET = [
    "42", "-Inf", "demo_memory_usage_bytes", 'demo_memory_usage_bytes{type!="free"}',
    'demo_memory_usage_bytes{instance=~"demo.promlabs.com:.*"}', "demo_memory_usage_bytes offset 5m",
    "demo_intermittent_metric", "sum by(instance) (demo_memory_usage_bytes)",
    "count without(instance, type) (demo_memory_usage_bytes)", "topk (3, demo_memory_usage_bytes)",
    "bottomk by(instance) (2, demo_memory_usage_bytes)", "avg(max by(type) (demo_memory_usage_bytes))",
    "1 * 2 + 4 / 6 - 10 % 2 ^ 2", "demo_num_cpus + (1 >= bool 2)", "demo_memory_usage_bytes % 1.2345",
    "demo_memory_usage_bytes / on(instance, job, type, __name__) demo_memory_usage_bytes",
    "demo_memory_usage_bytes < bool on(instance, job, type) demo_memory_usage_bytes",
    "time() - demo_memory_usage_bytes", "max_over_time(demo_memory_usage_bytes[5m])",
    "last_over_time(demo_memory_usage_bytes[15m])", "round(demo_memory_usage_bytes)",
    "rate(demo_cpu_usage_seconds_total[5m])", "increase(demo_cpu_usage_seconds_total[1h])",
    "irate(demo_cpu_usage_seconds_total[1m])", "clamp_max(demo_memory_usage_bytes, 2)",
    "histogram_quantile(0.90, rate(demo_api_request_duration_seconds_bucket[1m]))",
    "absent(nonexistent_metric_name)", "vector(time())", '{__name__=~".*"}',
    # Evaluated in the process (query/promql_functions.py).
    "quantile_over_time(0.75, demo_memory_usage_bytes[5m])", "stddev by(instance) (demo_memory_usage_bytes)",
    "quantile(0.95, demo_memory_usage_bytes)", "stdvar_over_time(demo_memory_usage_bytes[15m])",
    "sum by(instance, type) (demo_memory_usage_bytes) / on(instance, type) group_left(job) demo_memory_usage_bytes",
    "demo_memory_usage_bytes / on(instance, job) group_left demo_num_cpus",
    'label_replace(demo_num_cpus, "job", "destination-value-$1", "instance", "demo.promlabs.com:(.*)")',
    'label_join(demo_num_cpus, "new_label", "-", "instance", "job")',
    'label_replace(demo_num_cpus, "instance", "", "", "")',
    "day_of_week(demo_batch_last_success_timestamp_seconds offset 5m)", "days_in_month()",
    "deriv(demo_disk_usage_bytes[5m])", "predict_linear(demo_disk_usage_bytes[15m], 600)",
    "idelta(demo_cpu_usage_seconds_total[1m])", "resets(demo_cpu_usage_seconds_total[1h])",
    "changes(demo_batch_last_success_timestamp_seconds[15m])", "timestamp(demo_num_cpus)",
    "timestamp(-demo_memory_usage_bytes)", 'count_values("value", demo_api_request_duration_seconds_bucket)',
    'absent_over_time(demo_memory_usage_bytes[1s])', 'clamp(demo_memory_usage_bytes, 0, 1000000000000)',
    '{type="free", instance!="demo.promlabs.com:10000"}',
]


def test_subset_answers_as_prometheus(tmp_path: Path) -> None:
    cases = [c for c in harness.expand() if c.query in SUBSET]
    assert len(cases) == len(SUBSET)
    data_end = int(time.time()) // 60 * 60 - 120
    series = harness.generate(data_end, hours=1.25)
    end = data_end - 12 * 60
    with Daemon(tmp_path / "daemon") as d, harness.prometheus(series, tmp_path / "prometheus") as ref:
        total = sum(len(s.samples) for s in series)
        assert harness.remote_write(series, "127.0.0.1", d.http_port) == total
        d.wait_count("otel_prom_samples", total, timeout=300)
        results = harness.run_cases(cases, ref, d.query_url, float(end - 3600), float(end), 60.0)
    failed = [(r.query, r.outcome, r.diff) for r in results if not r.passed]
    assert failed == []
