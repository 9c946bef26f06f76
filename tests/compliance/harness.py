"""PromQL compliance, side by side with a real Prometheus: the upstream query list
(promql-test-queries.yml, prometheus/compliance) expanded with its variants, each run as a range
query against Prometheus 2.42 and against otelingest holding the same samples, compared by the
upstream comparer's rules.

The samples: hours of deterministic data for the metric names the queries use (the PromLabs demo
service's: gauges, counters with resets, a classic histogram, a batch timestamp, an intermittent
series), three instances scraped every 5 s with jittered timestamps. Prometheus gets them by
backfill (``promtool tsdb create-blocks-from openmetrics``), otelingest through its remote-write
endpoint: both are real clients.

Rules (promql/comparer/comparer.go, re-implemented): both answer a range query; a query marked
``should_fail`` passes when both fail; values equal within a relative 1e-5, NaN equals NaN;
series compared as sets of label sets (a range query has no order). A query the reference fails
that is not marked should_fail is a harness error, not counted.

Run: ``make test-compliance`` (writes compliance-report.md and .json); the default suite runs a
fixed subset (tests/query/test_compliance.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "helpers")]

import promserver  # noqa: E402
from otelingest.bench.promwrite import Series, compress, post, write_request  # noqa: E402

QUERIES = HERE / "promql-test-queries.yml"
# The variant values of the upstream expansion (promql/testcases/expand.go), as data.
VARIANTS: dict[str, list[str]] = {
    "range": ["1s", "15s", "1m", "5m", "15m", "1h"],
    "offset": ["1m", "5m", "10m"],
    "simpleAggrOp": ["sum", "avg", "max", "min", "count", "stddev", "stdvar"],
    "simpleTimeAggrOp": ["sum", "avg", "max", "min", "count", "stddev", "stdvar", "absent", "last"],
    "topBottomOp": ["topk", "bottomk"],
    "quantile": ["-0.5", "0.1", "0.5", "0.75", "0.95", "0.90", "0.99", "1", "1.5"],
    "arithBinOp": ["+", "-", "*", "/", "%", "^"],
    "compBinOp": ["==", "!=", "<", ">", "<=", ">="],
    "binOp": ["+", "-", "*", "/", "%", "^", "==", "!=", "<", ">", "<=", ">="],
    "simpleMathFunc": ["abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "round"],
    "extrapolatedRateFunc": ["delta", "rate", "increase"],
    "clampFunc": ["clamp_min", "clamp_max"],
    "instantRateFunc": ["idelta", "irate"],
    "dateFunc": ["day_of_month", "day_of_week", "days_in_month", "hour", "minute", "month", "year"],
    "smoothingFactor": ["0.1", "0.5", "0.8"],
    "trendFactor": ["0.1", "0.5", "0.8"],
}
FRACTION = 1e-5
SCRAPE_S = 5
INSTANCES = ["demo.promlabs.com:10000", "demo.promlabs.com:10001", "demo.promlabs.com:10002"]
JOB = "demo"
PHASES_MS = [1234, 2917, 4321]
BUCKETS = [0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.001, 0.0015, 0.002, 0.005, 0.01, math.inf]
SEED = 17


@dataclass(frozen=True)
class Case:
    query: str
    should_fail: bool = False
    skip_comparison: bool = False


def expand(path: Path = QUERIES) -> list[Case]:
    """Every variant of every test case, in the upstream order (first variant arg outermost)."""
    out: list[Case] = []
    for tc in yaml.safe_load(path.read_text())["test_cases"]:
        combos: list[dict[str, str]] = [{}]
        for arg in tc.get("variant_args") or []:
            combos = [{**c, arg: v} for c in combos for v in VARIANTS[arg]]
        for c in combos:
            q = tc["query"]
            for k, v in c.items():
                q = q.replace("{{.%s}}" % k, v)
            out.append(Case(q, bool(tc.get("should_fail")), bool(tc.get("skip_comparison"))))
    return out


# --- the data --------------------------------------------------------------------------------------

def generate(end_s: int, hours: float, seed: int = SEED) -> list[Series]:
    """The demo service's series, scraped every 5 s per instance (each instance at its own phase,
    timestamps jittered by up to +-40 ms as real scrapes are), ending before ``end_s``."""
    assert all(50 < p % 1000 < 950 for p in PHASES_MS)
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / SCRAPE_S)
    start_ms = (end_s - int(hours * 3600)) * 1000
    out: list[Series] = []
    for i, inst in enumerate(INSTANCES):
        base = {"instance": inst, "job": JOB}
        # Each target's scrape phase is a fraction of a second off whole seconds (as Prometheus
        # spreads targets by a hash), so no sample sits exactly on a window's edge: there Prometheus
        # 2.x (closed windows) and 3.x (left-open, what otelingest does) would differ.
        ts = start_ms + PHASES_MS[i] + np.arange(n) * SCRAPE_S * 1000 + rng.integers(-40, 41, n)
        tsl = [int(t) for t in ts]

        def add(name: str, labels: dict[str, str], values: np.ndarray, mask: np.ndarray | None = None) -> None:
            pts = [(t, float(v)) for k, (t, v) in enumerate(zip(tsl, values)) if mask is None or mask[k]]
            out.append(Series({"__name__": name, **base, **labels}, pts))

        for j, kind in enumerate(["free", "used", "buffers", "cached"]):
            walk = np.cumsum(rng.normal(0, 2e6, n))
            add("demo_memory_usage_bytes", {"type": kind}, np.round(1e9 * (j + 1) + walk + 3e8 * i, 3))
        add("demo_num_cpus", {}, np.full(n, [4.0, 8.0, 2.0][i]))
        for j, mode in enumerate(["idle", "user", "system"]):
            inc = rng.uniform(0.01, 0.5 + j, n)
            total = np.cumsum(inc)
            reset_at = n // 3 + 97 * (i + j)  # one restart per series, at its own time
            total[reset_at:] -= total[reset_at - 1]
            add("demo_cpu_usage_seconds_total", {"mode": mode}, np.round(total, 6))
        add("demo_disk_usage_bytes", {}, np.round(2e10 + np.arange(n) * 1e4 * (i + 1) + rng.normal(0, 5e5, n)))
        add("demo_disk_total_bytes", {}, np.full(n, 1e11))
        # A batch job succeeds every 7 (8, 9) minutes: the value is the last success time.
        period = (7 + i) * 60
        add("demo_batch_last_success_timestamp_seconds", {}, (ts // 1000 // period * period).astype(float))
        # Present 5 minutes, gone 5 minutes.
        on = ((ts // 1000) // 300) % 2 == 0
        add("demo_intermittent_metric", {}, np.full(n, 1.0 + i), on)
        for path in ["/api/foo", "/api/bar"]:
            for method, status in [("GET", "200"), ("POST", "500")]:
                lab = {"method": method, "path": path, "status": status}
                durations = rng.lognormal(-7.5, 0.8, (n, 4))  # 4 requests per scrape
                counts = np.cumsum(np.stack([np.sum(durations <= b, axis=1) for b in BUCKETS], axis=1), axis=0)
                for k, b in enumerate(BUCKETS):
                    le = "+Inf" if math.isinf(b) else repr(b)
                    add("demo_api_request_duration_seconds_bucket", {**lab, "le": le}, counts[:, k].astype(float))
                add("demo_api_request_duration_seconds_count", lab, counts[:, -1].astype(float))
                add("demo_api_request_duration_seconds_sum", lab, np.round(np.cumsum(durations.sum(axis=1)), 9))
    return out


def write_openmetrics(series: list[Series], path: Path) -> None:
    """The samples as OpenMetrics text for promtool's backfill (no metadata: every series untyped)."""
    with open(path, "w") as f:
        for s in series:
            name = s.labels["__name__"]
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()) if k != "__name__")
            prefix = f"{name}{{{labels}}} "
            for ms, v in s.samples:
                f.write(f"{prefix}{_om_value(v)} {ms // 1000}.{ms % 1000:03d}\n")
        f.write("# EOF\n")


def _om_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def remote_write(series: list[Series], host: str, port: int, per_request: int = 2000) -> int:
    """Sends every sample as Prometheus does (one request per batch of at most ``per_request``
    samples, each series' samples in time order); returns the samples acknowledged."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=60)
    sent = 0
    try:
        batch: list[Series] = []
        size = 0
        for s in series:
            for k in range(0, len(s.samples), per_request):
                chunk = Series(s.labels, s.samples[k:k + per_request])
                if size + len(chunk.samples) > per_request and batch:
                    sent += _send(conn, host, port, batch)
                    batch, size = [], 0
                batch.append(chunk)
                size += len(chunk.samples)
        if batch:
            sent += _send(conn, host, port, batch)
    finally:
        conn.close()
    return sent


def _send(conn: Any, host: str, port: int, batch: list[Series]) -> int:
    body = compress(write_request(batch))
    for _ in range(600):
        status, headers, text = post(host, port, body, conn=conn)
        if status == 204:
            return sum(len(s.samples) for s in batch)
        if status == 503:  # retryable, as Prometheus does
            time.sleep(float(headers.get("retry-after", "1")))
            continue
        raise RuntimeError(f"remote write answered {status}: {text[:200]!r}")
    raise RuntimeError("remote write kept refusing")


# --- the reference Prometheus ----------------------------------------------------------------------

@contextlib.contextmanager
def prometheus(series: list[Series], workdir: Path) -> Iterator[str]:
    """A Prometheus 2.42 (Debian's) serving the samples, backfilled by promtool; yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    om = workdir / "data.om"
    tsdb = workdir / "tsdb"
    write_openmetrics(series, om)
    tsdb.mkdir(parents=True, exist_ok=True)
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(tsdb)],
                   check=True, capture_output=True, timeout=600)
    om.unlink()
    with promserver.prometheus("global:\n  scrape_interval: 1h\n", workdir, tsdb) as url:
        yield url


# --- running and comparing -------------------------------------------------------------------------

@dataclass
class Result:
    query: str
    outcome: str  # pass | wrong | unexpected_failure | unexpected_success | unsupported | reference_error
    expected: Any = None
    got: Any = None
    diff: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def query_range(client: httpx.Client, url: str, q: str, start: float, end: float, step: float) -> tuple[bool, Any]:
    try:
        r = client.post(url + "/api/v1/query_range", data={"query": q, "start": repr(start), "end": repr(end),
                                                          "step": repr(step)}, timeout=60)
    except httpx.HTTPError as e:  # a crashed query process must show in the report, not stop it
        time.sleep(2)
        return False, f"transport error: {e!r}"
    try:
        body = r.json()
    except ValueError:
        return False, f"HTTP {r.status_code}: {r.text[:300]}"
    if r.status_code != 200 or body.get("status") != "success":
        return False, f"HTTP {r.status_code} {body.get('errorType', '')}: {body.get('error', r.text[:300])}"
    return True, body["data"]


def _series(data: Any) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
    out = {}
    for s in data["result"]:
        out[tuple(sorted(s["metric"].items()))] = [(float(t), float(v)) for t, v in s["values"]]
    return out


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return abs(a - b) <= FRACTION * min(abs(a), abs(b))  # cmpopts.EquateApprox(fraction, 0)


def compare(expected: Any, got: Any) -> str:
    """'' when equal under the rules, else a short diff."""
    if expected["resultType"] != got["resultType"]:
        return f"result type {got['resultType']}, expected {expected['resultType']}"
    e, g = _series(expected), _series(got)
    lines = []
    for k in sorted(e.keys() - g.keys()):
        lines.append(f"missing series {dict(k)}")
    for k in sorted(g.keys() - e.keys()):
        lines.append(f"extra series {dict(k)}")
    for k in sorted(e.keys() & g.keys()):
        ev, gv = e[k], g[k]
        et, gt = [t for t, _ in ev], [t for t, _ in gv]
        if et != gt:
            lines.append(f"{dict(k)}: timestamps differ: missing {sorted(set(et) - set(gt))[:5]}, "
                         f"extra {sorted(set(gt) - set(et))[:5]}")
            continue
        bad = [(t, a, b) for (t, a), (_, b) in zip(ev, gv) if not _close(a, b)]
        if bad:
            t, a, b = bad[0]
            lines.append(f"{dict(k)}: {len(bad)} values differ, first at {t}: expected {a!r}, got {b!r}")
    return "\n".join(lines[:10]) + (f"\n... {len(lines) - 10} more" if len(lines) > 10 else "")


def run_cases(cases: list[Case], ref_url: str, test_url: str, start: float, end: float, step: float) -> list[Result]:
    out = []
    with httpx.Client() as client:
        for c in cases:
            ref_ok, ref = query_range(client, ref_url, c.query, start, end, step)
            ok, got = query_range(client, test_url, c.query, start, end, step)
            if ref_ok == c.should_fail:
                out.append(Result(c.query, "reference_error", ref, got))
            elif ok != ref_ok:
                if ok:
                    out.append(Result(c.query, "unexpected_success", ref, got))
                else:
                    unsupported = "unsupported" in str(got)
                    out.append(Result(c.query, "unsupported" if unsupported else "unexpected_failure", ref, got,
                                      str(got)))
            elif c.should_fail or c.skip_comparison:
                out.append(Result(c.query, "pass", ref, got))
            else:
                diff = compare(ref, got)
                out.append(Result(c.query, "pass" if not diff else "wrong", ref, got, diff))
    return out


# --- beyond the upstream list: instant queries (ordered under sort), @, value NaN --------------------

# A gauge whose samples are sometimes NaN (a value, not an absent sample): instance 0 NaN for one
# scrape in six, instance 1 NaN for whole 10-minute spans, instance 2 never.
NAN_METRIC = "demo_nan_gauge"


def nan_series(end_s: int, hours: float) -> list[Series]:
    n = int(hours * 3600 / SCRAPE_S)
    start_ms = (end_s - int(hours * 3600)) * 1000
    out = []
    for i, inst in enumerate(INSTANCES):
        ts = start_ms + PHASES_MS[i] + np.arange(n) * SCRAPE_S * 1000
        vals = 10.0 * (i + 1) + np.sin(np.arange(n) / 17.0)
        if i == 0:
            vals[np.arange(n) % 6 == 3] = math.nan
        elif i == 1:
            vals[((ts // 1000) // 600) % 3 == 1] = math.nan
        out.append(Series({"__name__": NAN_METRIC, "instance": inst, "job": JOB},
                          [(int(t), float(v)) for t, v in zip(ts, vals)]))
    return out


# Range queries (compared as sets of series) and instant queries (compared in order under sort).
EXTRA_RANGE = [
    *[f"{op}({NAN_METRIC})" for op in ["sum", "avg", "min", "max", "count", "stddev", "stdvar", "group"]],
    f"quantile(0.5, {NAN_METRIC})", f"topk(2, {NAN_METRIC})", f"bottomk(1, {NAN_METRIC})",
    f"max by(job) ({NAN_METRIC} offset 1m)",
    *[f"{fn}_over_time({NAN_METRIC}[1m])" for fn in ["sum", "avg", "min", "max", "count", "stddev", "stdvar",
                                                     "last"]],
    f"quantile_over_time(0.5, {NAN_METRIC}[2m])", f"sum(sum_over_time({NAN_METRIC}[1m]))",
    f"max(max_over_time({NAN_METRIC}[30s]))", f"min_over_time({NAN_METRIC}[10m])",
    f"sum(rate({NAN_METRIC}[1m]))", f"max by(job) (increase({NAN_METRIC}[5m]))", f"rate({NAN_METRIC}[1m])",
    f"avg(avg_over_time({NAN_METRIC}[2m]))", f"count_values(\"v\", {NAN_METRIC} > 100 or {NAN_METRIC})",
    "sort(demo_memory_usage_bytes)", "sort_desc(rate(demo_cpu_usage_seconds_total[5m]))",
    "demo_memory_usage_bytes @ {at}", "rate(demo_cpu_usage_seconds_total[5m] @ {at})",
    "demo_memory_usage_bytes @ start()", "demo_memory_usage_bytes @ end() offset 5m",
    "sum by(type) (demo_memory_usage_bytes @ {at})",
    # Offset 30 s: with the window's start on a subquery step, 2.42's closed window holds one point more.
    "max_over_time(demo_memory_usage_bytes[10m:1m] @ end() offset 30s)", "deriv(demo_disk_usage_bytes[15m] @ {at})",
    "demo_memory_usage_bytes - demo_memory_usage_bytes @ start()",
    "avg_over_time(demo_memory_usage_bytes[5m] @ start() offset -5m)",
    "timestamp(demo_num_cpus @ {at})", "stddev_over_time(demo_memory_usage_bytes[5m] @ {at})",
    # Prometheus 2's name; answered by double_exponential_smoothing.
    "holt_winters(demo_memory_usage_bytes[10m], 0.5, 0.1)", f"holt_winters({NAN_METRIC}[5m], 0.3, 0.6)",
    "holt_winters(rate(demo_cpu_usage_seconds_total[5m])[10m:1m] offset 30s, 0.1, 0.9)",
]
# Answered as Prometheus 3 does, where 2.42 differs (the reason).
EXTRA_KNOWN_DIFFERENCES = {
    "predict_linear(demo_disk_usage_bytes[15m] @ {at}, 600)":
        "2.42 narrows an @ range at each later step of a range query (prometheus/prometheus#11708, fixed "
        "by #13559 in 2.50): its answer has no points from some step on",
}
EXTRA_INSTANT = [
    "sort(demo_memory_usage_bytes)", "sort_desc(demo_memory_usage_bytes)",
    "sort(rate(demo_cpu_usage_seconds_total[5m]))", "sort_desc(sum by(type) (demo_memory_usage_bytes))",
    f"sort({NAN_METRIC})", f"sort_desc({NAN_METRIC})", f"sort(-{NAN_METRIC})",
    f"sum({NAN_METRIC})", f"max({NAN_METRIC})", f"min({NAN_METRIC})", f"count({NAN_METRIC})",
    "demo_memory_usage_bytes @ {at}", "demo_memory_usage_bytes @ start()", "demo_memory_usage_bytes[1m] @ {at}",
    "max_over_time(demo_memory_usage_bytes[10m:1m] @ {at} offset 2m)",
    "predict_linear(demo_disk_usage_bytes[15m] @ {at}, 600)",
    "holt_winters(demo_disk_usage_bytes[15m], 0.5, 0.5)",
]


def query_instant(client: httpx.Client, url: str, q: str, t: float) -> tuple[bool, Any]:
    try:
        r = client.post(url + "/api/v1/query", data={"query": q, "time": repr(t)}, timeout=60)
        body = r.json()
    except (httpx.HTTPError, ValueError) as e:
        return False, f"error: {e!r}"
    if r.status_code != 200 or body.get("status") != "success":
        return False, f"HTTP {r.status_code} {body.get('errorType', '')}: {body.get('error', r.text[:300])}"
    return True, body["data"]


def compare_instant(expected: Any, got: Any, ordered: bool) -> str:
    """'' when equal: a vector's series in the same order when ``ordered`` (sort), else as sets."""
    if expected["resultType"] != got["resultType"]:
        return f"result type {got['resultType']}, expected {expected['resultType']}"
    if expected["resultType"] != "vector":
        return compare({**expected, "resultType": "matrix"}, {**got, "resultType": "matrix"})
    e = [(tuple(sorted(s["metric"].items())), float(s["value"][1])) for s in expected["result"]]
    g = [(tuple(sorted(s["metric"].items())), float(s["value"][1])) for s in got["result"]]
    if not ordered:
        e, g = sorted(e), sorted(g)
    if [k for k, _ in e] != [k for k, _ in g]:
        return f"series (in order) differ: expected {[dict(k) for k, _ in e]}, got {[dict(k) for k, _ in g]}"
    bad = [(dict(k), a, b) for (k, a), (_, b) in zip(e, g) if not _close(a, b)]
    return f"{len(bad)} values differ, first {bad[0]}" if bad else ""


def run_extra(ref_url: str, test_url: str, start: float, end: float, step: float) -> list[Result]:
    """The extra queries, range and instant, with ``{at}`` a time inside the range."""
    at = repr(start + 1234.5)
    out = run_cases([Case(q.replace("{at}", at)) for q in EXTRA_RANGE + list(EXTRA_KNOWN_DIFFERENCES)], ref_url,
                    test_url, start, end, step)
    with httpx.Client() as client:
        for q in (q.replace("{at}", at) for q in EXTRA_INSTANT):
            for t in (end, end - 333.0):
                ref_ok, ref = query_instant(client, ref_url, q, t)
                ok, got = query_instant(client, test_url, q, t)
                name = f"instant@{t:g}: {q}"
                if not ref_ok:
                    out.append(Result(name, "reference_error", ref, got))
                elif not ok:
                    out.append(Result(name, "unexpected_failure", ref, got, str(got)))
                else:
                    diff = compare_instant(ref, got, ordered=q.startswith("sort"))
                    out.append(Result(name, "pass" if not diff else "wrong", ref, got, diff))
    return out


def summary(results: list[Result]) -> dict[str, Any]:
    counted = [r for r in results if r.outcome != "reference_error"]
    by: dict[str, int] = {}
    for r in results:
        by[r.outcome] = by.get(r.outcome, 0) + 1
    passed = sum(r.passed for r in counted)
    return {"queries": len(counted), "passed": passed, "pass_rate": round(passed / max(1, len(counted)), 4),
            "outcomes": dict(sorted(by.items()))}


def write_report(results: list[Result], meta: dict[str, Any], path: Path) -> None:
    s = summary(results)
    path.with_suffix(".json").write_text(json.dumps({"summary": s, "meta": meta,
                                                     "results": [asdict(r) for r in results]}, indent=1))
    lines = [f"# PromQL compliance: {s['passed']} / {s['queries']} ({100 * s['pass_rate']:.1f}%)", "",
             f"Reference: Prometheus {meta.get('reference_version', '?')}; window {meta['start']} .. {meta['end']}, "
             f"step {meta['step']} s; outcomes {s['outcomes']}.", "", "| query | outcome | diff |", "|---|---|---|"]
    for r in results:
        if r.passed:
            continue
        diff = (r.diff or "").replace("|", "\\|").replace("\n", "<br>")[:400]
        query = r.query.replace("|", "\\|")
        lines.append(f"| `{query}` | {r.outcome} | {diff} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=float, default=3.0, help="hours of samples (default 3)")
    p.add_argument("--range-s", type=int, default=3600, help="query range in seconds (default 1 h)")
    p.add_argument("--step-s", type=int, default=60, help="query step in seconds (default 60)")
    p.add_argument("--report", type=Path, default=Path("compliance-report.md"))
    p.add_argument("--match", help="only queries containing this text")
    p.add_argument("--keep", action="store_true", help="keep the working directory")
    args = p.parse_args(argv)

    from daemon import Daemon

    cases = expand()
    if args.match:
        cases = [c for c in cases if args.match in c.query]
    now = int(time.time())
    data_end = now // 60 * 60 - 120
    series = generate(data_end, args.hours)
    end = data_end - 12 * 60  # as the upstream tester: end 12 minutes before now
    start = end - args.range_s
    work = Path(tempfile.mkdtemp(prefix="otelingest-compliance-"))
    try:
        with Daemon(work / "daemon") as d, prometheus(series, work / "prometheus") as ref:
            t0 = time.monotonic()
            n = remote_write(series, "127.0.0.1", d.http_port)
            total = sum(len(s.samples) for s in series)
            assert n == total
            d.wait_count("otel_prom_samples", total, timeout=600)
            print(f"{total} samples remote-written and stored in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            version = httpx.get(ref + "/api/v1/status/buildinfo").json()["data"]["version"]
            t0 = time.monotonic()
            results = run_cases(cases, ref, d.query_url, float(start), float(end), float(args.step_s))
            meta = {"start": start, "end": end, "step": args.step_s, "samples": total, "reference_version": version,
                    "seconds": round(time.monotonic() - t0, 1)}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    write_report(results, meta, args.report)
    s = summary(results)
    print(f"PromQL compliance: {s['passed']} / {s['queries']} passed ({100 * s['pass_rate']:.1f}%), "
          f"outcomes {s['outcomes']}; report {args.report}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
