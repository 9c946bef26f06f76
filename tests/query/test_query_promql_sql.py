"""PromQL aggregations evaluated in ClickHouse (query/promql/pushdown/) answer exactly what the Python
evaluator answers from raw samples, over raw points and over the 5-minute and hourly rollups.

The data set has what makes the evaluation hard: several groups, gaps, counter resets, delta
temporality (running totals), cumulative and delta histograms, a histogram whose bounds change
(which must fall back to Python), points not aligned to the steps.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import anyio
import numpy as np
import pytest

import querydata as qd
from otelingest import config as config_mod
from otelingest.clickhouse import migrations as schema
from otelingest.clickhouse.client import connect
from otelingest.config import ClickHouseConfig
from otelingest.query.promql import evaluator, source as source_mod, values
from otelingest.query.promql.parse import parse
from otelingest.query.promql.pushdown import executor as pushdown
from otelingest.query.promql.pushdown import planner
from otelingest.query.storage.tables import BUCKET_S
from otelingest.query.storage.pool import ClientPool
from otelingest.query.storage.store import Store

NS = qd.NS
HOURS = 3
EVERY_S = 37  # not a divisor of any step
HOSTS = ["h1", "h2", "h3", "h4"]
BOUNDS = [1.0, 5.0, 10.0]


def _rows(t0: int) -> list[list]:
    rnd = random.Random(7)
    rows = []
    counters = {h: 0.0 for h in HOSTS}
    hist = {h: [0] * (len(BOUNDS) + 1) for h in HOSTS}
    fresh = {h: [0] * (len(BOUNDS) + 1) for h in HOSTS}
    for i in range(HOURS * 3600 // EVERY_S):
        ts = t0 + i * EVERY_S * NS + rnd.randrange(1000) * 1_000_000
        for n, h in enumerate(HOSTS):
            if (i + n) % 11 == 0:
                continue  # a gap
            zone = "a" if n < 2 else "b"
            attrs = {"host": h, "zone": zone}
            rows.append(qd.metric_row(ts, t0, "temp", "Cel", "Gauge", "Unspecified", False, attrs,
                                      value=round(rnd.uniform(-5, 40), 3)))
            counters[h] += rnd.randrange(0, 50)
            if i % 97 == 96 and n == 1:
                counters[h] = rnd.randrange(0, 5)  # a reset
            rows.append(qd.metric_row(ts, t0, "reqs", "{request}", "Sum", "Cumulative", True, attrs,
                                      value=counters[h]))
            for _ in range(2 if i % 5 == 0 else 1):  # the same, some points sent twice (a retried export)
                rows.append(qd.metric_row(ts, t0, "retried", "{request}", "Sum", "Cumulative", True, attrs,
                                          value=counters[h]))
            rows.append(qd.metric_row(ts, t0, "jobs", "1", "Sum", "Delta", True, attrs, value=rnd.randrange(0, 9)))
            step = [rnd.randrange(0, 6) for _ in range(len(BOUNDS) + 1)]
            hist[h] = [a + b for a, b in zip(hist[h], step)]
            if i % 131 == 130 and n == 2:
                hist[h] = step[:]  # a histogram reset
            rows.append(qd.metric_row(ts, t0, "lat", "ms", "Histogram", "Cumulative", False, attrs,
                                      count=sum(hist[h]), total=float(sum(hist[h])) * 2.5,
                                      buckets=hist[h], bounds=BOUNDS))
            # The same under another name, some points sent twice (a retried export).
            for _ in range(2 if i % 5 == 0 else 1):
                rows.append(qd.metric_row(ts, t0, "again", "ms", "Histogram", "Cumulative", False, attrs,
                                          count=sum(hist[h]), total=float(sum(hist[h])) * 2.5,
                                          buckets=hist[h], bounds=BOUNDS))
            if i >= 150:  # a histogram that starts inside the windows, its lowest bucket empty at first:
                # Prometheus stops the extrapolation at the zero point, per bucket (windows evaluated whole)
                fresh[h] = [a + (b if j or i >= 170 else 0) for j, (a, b) in enumerate(zip(fresh[h], step))]
                rows.append(qd.metric_row(ts, t0, "fresh", "ms", "Histogram", "Cumulative", False, attrs,
                                          count=sum(fresh[h]), total=1.0, buckets=fresh[h], bounds=BOUNDS))
            rows.append(qd.metric_row(ts, t0, "size", "By", "Histogram", "Delta", False, attrs,
                                      count=sum(step), total=float(sum(step)), buckets=step, bounds=BOUNDS))
            for _ in range(2 if i % 5 == 0 else 1):  # the same, some points sent twice
                rows.append(qd.metric_row(ts, t0, "resent", "By", "Histogram", "Delta", False, attrs,
                                          count=sum(step), total=float(sum(step)), buckets=step, bounds=BOUNDS))
            bounds = BOUNDS if i < HOURS * 3600 // EVERY_S // 2 else [2.0, 5.0, 10.0]
            rows.append(qd.metric_row(ts, t0, "moved", "ms", "Histogram", "Cumulative", False, attrs,
                                      count=sum(hist[h]), total=1.0, buckets=hist[h], bounds=bounds))
    return rows


@pytest.fixture(scope="module")
def metrics_db(clickhouse, tmp_path_factory):
    db = f"p_{uuid.uuid4().hex[:12]}"
    cfg = config_mod.load(None, overrides={
        "data_dir": str(tmp_path_factory.mktemp("p") / "data"),
        "clickhouse": {"url": clickhouse.url, "database": db, "pool_min": 1, "pool_max": 4},
    }, environ={})
    schema.migrate(cfg)
    client = connect(ClickHouseConfig(url=clickhouse.url), with_database=False)
    hour = 3600 * NS
    t0 = (time.time_ns() // hour) * hour - (HOURS + 1) * hour
    qd.insert_rows(client, db, "otel_metrics", qd.METRIC_COLUMNS, _rows(t0))
    pool = ClientPool(cfg.clickhouse)
    try:
        yield Store(pool, cfg.query).for_tenant("default"), t0, db
    finally:
        pool.close()
        client.close()


# histogram_quantile at quantiles whose rank is unlikely to equal a bucket count exactly: there a
# last-bit difference between two summation orders picks the neighbouring bucket.
QUERIES = [
    "sum(temp_celsius)", "avg by (zone) (temp_celsius)", "min by (zone) (temp_celsius)",
    "max without (host) (temp_celsius)", "count(temp_celsius)", "sum by (host) (temp_celsius offset 3m)",
    "sum(rate(reqs_total[{r}]))", "sum by (zone) (increase(reqs_total[{r}]))",
    "avg without (zone) (rate(reqs_total[{r}]))", "max(delta(temp_celsius[{r}]))",
    "sum by (zone) (rate(jobs_total[{r}]))", "count by (zone) (rate(reqs_total[{r}] offset 2m))",
    "sum(avg_over_time(temp_celsius[{r}]))", "min by (zone) (min_over_time(temp_celsius[{r}]))",
    "max(max_over_time(temp_celsius[{r}]))", "sum(sum_over_time(jobs_total[{r}]))",
    "sum(count_over_time(temp_celsius[{r}]))", "avg by (host) (last_over_time(reqs_total[{r}]))",
    "sum by (le) (rate(lat_milliseconds_bucket[{r}]))", "sum by (le, zone) (increase(lat_milliseconds_bucket[{r}]))",
    "histogram_quantile(0.83, sum by (le) (rate(lat_milliseconds_bucket[{r}])))",
    "histogram_quantile(0.37, sum by (le, zone) (rate(size_bytes_bucket[{r}])))",
    "sum(rate(lat_milliseconds_bucket[{r}]))", "avg by (le) (delta(size_bytes_bucket[{r}]))",
    "count without (host) (rate(lat_milliseconds_bucket[{r}]))", "sum by (le) (lat_milliseconds_bucket)",
    "sum by (le) (rate(moved_milliseconds_bucket[{r}]))", "sum(rate(lat_milliseconds_count[{r}]))",
    "sum by (le) (increase(fresh_milliseconds_bucket[{r}]))",
    "sum by (zone) (lat_milliseconds_sum)", "sum(rate(size_bytes_sum[{r}]))",
]


def _fragments_used(monkeypatch) -> set[str]:
    """The names of the sql/ fragments the PromQL pushdown reads from now on."""
    used: set[str] = set()
    real_query = pushdown.sqlfiles.query

    def recording(name: str) -> str:
        used.add(name)
        return real_query(name)

    monkeypatch.setattr(pushdown.sqlfiles, "query", recording)
    return used


def _nonempty(v: values.Vector) -> dict[tuple, np.ndarray]:
    return {values.label_key(lab): vals for lab, vals in v.series if not np.all(np.isnan(vals))}


@pytest.mark.parametrize("table", ["otel_metrics", "otel_metrics_5m", "otel_metrics_1h"])
def test_pushdown_equals_python_evaluation(metrics_db, table, monkeypatch):
    store, t0, _ = metrics_db
    bucket_ns = BUCKET_S[table] * NS
    # Raw points 37 s apart: 3m windows hold at most 5 (the lagged paths), 7m up to 12 (too many for them).
    ranges = {"otel_metrics": ["1m", "3m", "7m"], "otel_metrics_5m": ["10m", "15m"], "otel_metrics_1h": ["2h"]}[table]
    steps = {"otel_metrics": [60, 150, 0], "otel_metrics_5m": [300, 600, 0], "otel_metrics_1h": [3600, 0]}[table]
    pushed: list[str] = []
    declined: list[str] = []
    real = pushdown.aggregate

    async def counting(ev, a):
        out = await real(ev, a)
        (pushed if out is not None else declined).append(str(a))
        return out

    monkeypatch.setattr(pushdown, "aggregate", counting)
    monkeypatch.setattr(planner, "LAGGED_MIN_WINDOWS", 0)  # a few series here: the lagged paths too
    used = _fragments_used(monkeypatch)

    async def both(q: str, start: int, end: int, step: int) -> tuple[values.Vector, values.Vector]:
        expr = parse(q)
        out = []
        for pushdown in (True, False):
            steps_ = np.arange(start, end + 1, step, dtype=np.int64) if step else np.array([start], dtype=np.int64)
            source = source_mod.Source(store=store, table=table, lookback_ns=max(source_mod.LOOKBACK_NS, 2 * bucket_ns),
                                   use_buckets=False, pushdown=pushdown)
            v = await evaluator.Evaluator(source, steps_, step).eval(expr)
            assert isinstance(v, values.Vector)
            out.append(v)
        return out[0], out[1]

    checked = 0
    # Windows inside the data, starting at odd offsets, plus one reaching past its end.
    windows = [(t0 + 1800 * NS + 13 * NS, t0 + (HOURS * 3600 - 600) * NS), (t0 + 7000 * NS, t0 + (HOURS + 1) * 3600 * NS)]
    for q in QUERIES:
        for r in ranges:
            for step_s in steps:
                for start, end in windows:
                    if not step_s:
                        end = start
                    text = q.format(r=r)
                    fast, slow = anyio.run(both, text, start, end, step_s * NS)
                    f, s = _nonempty(fast), _nonempty(slow)
                    assert f.keys() == s.keys(), (table, text, step_s)
                    for k in f:
                        # The Python evaluator takes time differences of float64 nanosecond stamps
                        # (256 ns apart at today's epoch); ClickHouse subtracts Int64s exactly.
                        assert np.allclose(f[k], s[k], rtol=1e-6, atol=1e-9, equal_nan=True), (
                            table, text, step_s, k, [(i, a, b) for i, (a, b) in enumerate(zip(f[k], s[k]))
                                                     if not np.isclose(a, b, rtol=1e-6, equal_nan=True)])
                        checked += int(np.sum(~np.isnan(s[k])))
    assert checked > 200
    # The histogram whose bounds changed inside a window went to Python; the other shapes to ClickHouse.
    assert any("moved" in d for d in declined)
    assert not [d for d in declined if "moved" not in d and "_over_time" not in d]
    assert any("lat_milliseconds_bucket" in p for p in pushed) and any("temp_celsius" in p for p in pushed)
    if table != "otel_metrics":  # two-bucket windows over a rollup take the previous-row path
        assert {"promql/pushdown/windows_pairs", "promql/pushdown/windows_buckets_pairs"} <= used
    if table == "otel_metrics":  # windows of many samples: their two ends paired
        assert {"promql/pushdown/prefix_windows_buckets", "promql/pushdown/prefix_windows"} <= used
    if table != "otel_metrics_1h":  # windows of several steps but few samples: the first read with a lag
        assert {"promql/pushdown/lagged_firsts_delta_buckets", "promql/pushdown/lagged_firsts_buckets",
                "promql/pushdown/lagged_windows_buckets", "promql/pushdown/lagged_windows"} <= used


@pytest.mark.parametrize("pushdown", [True, False])
def test_delta_rate_does_not_depend_on_where_the_query_starts(metrics_db, pushdown):
    """A delta counter's running total starts at the window's edge, not at zero: rate() must not
    extrapolate to that edge, or an instant query and a range query disagree at the same time."""
    store, t0, _ = metrics_db
    at = t0 + 5400 * NS + 7 * NS

    async def value(q: str, start: int, end: int, step: int) -> dict[tuple, float]:
        v, steps, _ = await evaluator.evaluate(store, parse(q), start, end, step, pushdown=pushdown)
        assert isinstance(v, values.Vector)
        i = int(np.searchsorted(steps, at))
        return {values.label_key(lab): float(vals[i]) for lab, vals in v.series}

    for q in ("sum by (host) (rate(jobs_total[5m]))", "sum by (le) (increase(size_bytes_bucket[5m]))"):
        instant = anyio.run(value, q, at, at, 0)
        ranged = anyio.run(value, q, at - 1800 * NS, at, 60 * NS)
        assert instant and instant.keys() == ranged.keys()
        for k in instant:
            assert instant[k] == pytest.approx(ranged[k], rel=1e-9), (q, k)


def test_windows_of_many_steps(metrics_db, monkeypatch):
    """The increments path's frames are ordered by microseconds, whose RANGE offsets ClickHouse takes
    up to 2^31 (35.8 minutes): a 40-minute window switches to milliseconds, with the same answers.
    (Delta points stored twice take that path; the others pair each window's two ends.)"""
    store, t0, _ = metrics_db
    monkeypatch.setattr(planner, "LAGGED_MIN_WINDOWS", 0)
    used = _fragments_used(monkeypatch)

    async def run(q: str, pushdown: bool) -> dict[tuple, np.ndarray]:
        v, _, _ = await evaluator.evaluate(store, parse(q), t0 + 3600 * NS, t0 + 9000 * NS, 60 * NS,
                                        use_buckets=False, pushdown=pushdown)
        assert isinstance(v, values.Vector)
        return _nonempty(v)

    declined: list[str] = []
    real = pushdown.aggregate

    async def counting(ev, a):
        out = await real(ev, a)
        if out is None:
            declined.append(str(a))
        return out

    monkeypatch.setattr(pushdown, "aggregate", counting)
    # 4m: six or seven samples, more than a histogram's lags read but not a counter's; 40m: frames in
    # milliseconds; 70m: more copies than the copying paths take (the paths that pair windows' ends
    # copy nothing, so they answer in ClickHouse all the same).
    for q in ("sum by (le) (rate(lat_milliseconds_bucket[4m]))", "sum by (le) (increase(size_bytes_bucket[4m]))",
              "sum by (zone) (rate(reqs_total[4m]))",
              "sum by (le) (rate(resent_bytes_bucket[40m]))", "sum by (le) (rate(lat_milliseconds_bucket[40m]))",
              "sum by (zone) (increase(reqs_total[40m]))", "sum by (le) (rate(lat_milliseconds_bucket[70m]))",
              "sum by (zone) (increase(reqs_total[70m]))"):
        fast, slow = anyio.run(run, q, True), anyio.run(run, q, False)
        assert fast.keys() == slow.keys() and fast, q
        for k in fast:
            assert np.allclose(fast[k], slow[k], rtol=1e-6, atol=1e-9, equal_nan=True), (q, k)
    assert not declined
    assert {"promql/pushdown/neighbours_buckets", "promql/pushdown/prefix_windows_buckets", "promql/pushdown/prefix_windows"} <= used


def test_points_sent_twice_change_no_histogram_rate(metrics_db, monkeypatch):
    """A retried export stores a histogram point twice: a window's growth and counts must not double
    (a duplicated delta point adds half from each copy; a cumulative copy's increment is zero)."""
    store, t0, _ = metrics_db
    monkeypatch.setattr(planner, "LAGGED_MIN_WINDOWS", 0)
    used = _fragments_used(monkeypatch)

    async def run(q: str, step_s: int, pushdown: bool) -> dict[tuple, np.ndarray]:
        v, _, _ = await evaluator.evaluate(store, parse(q), t0 + 1800 * NS, t0 + 9000 * NS, step_s * NS,
                                        use_buckets=False, pushdown=pushdown)
        assert isinstance(v, values.Vector)
        return {values.label_key({k: x for k, x in lab.items() if k != "__name__"}): vals for lab, vals in v.series}

    # Windows of a step or two copy each sample (1m), of several steps read lags (3m), of many samples
    # pair their ends (7m); delta copies take the increments path from the last two.
    cases = [(shape.format(fn=fn, m="{m}", r=r), m1, m2)
             for m1, m2, windows in [("lat_milliseconds_bucket", "again_milliseconds_bucket",
                                      [("rate", "7m"), ("increase", "7m"), ("rate", "1m"), ("rate", "3m"), ("delta", "7m")]),
                                     ("size_bytes_bucket", "resent_bytes_bucket", [("rate", "3m"), ("increase", "7m")])]
             for fn, r in windows
             for shape in ("sum by (le) ({fn}({m}[{r}]))", "count by (le, zone) ({fn}({m}[{r}]))")]
    cases += [(f"sum by (zone) ({fn}({{m}}[{r}]))", "reqs_total", "retried_total")
              for fn in ("rate", "increase") for r in ("1m", "3m", "7m")]
    for shape, m1, m2 in cases:
        for pushdown in (True, False):
            once = anyio.run(run, shape.format(m=m1), 60, pushdown)
            twice = anyio.run(run, shape.format(m=m2), 60, pushdown)
            assert once.keys() == twice.keys() and once
            for k in once:
                assert np.allclose(once[k], twice[k], rtol=1e-9, equal_nan=True), (shape, k, pushdown)
    # Cumulative copies pair windows' ends; delta copies (added twice to a running total) are shared
    # between them by the increments path.
    assert {"promql/pushdown/prefix_windows_buckets", "promql/pushdown/range_increments_buckets", "promql/pushdown/windows_buckets"} <= used


def test_reused_catalog_never_hides_a_new_metric(metrics_db, clickhouse, monkeypatch):
    """Evaluations share a metric catalog read moments ago for the same window; a metric that
    appears after it is read afresh instead of answering empty."""
    store, t0, db = metrics_db
    store._store._memo.clear()  # no catalog another test shared
    start, end = t0 + 3600 * NS, t0 + 7200 * NS
    catalog_reads = []
    real = store.named

    async def counting(name, params=None, **kw):
        if name.startswith("promql/catalog"):
            catalog_reads.append(name)
        return await real(name, params, **kw)

    monkeypatch.setattr(store, "named", counting)

    async def run(q: str) -> values.Vector:
        v, _, _ = await evaluator.evaluate(store, parse(q), start, end, 60 * NS)
        assert isinstance(v, values.Vector)
        return v

    anyio.run(run, "sum(temp_celsius)")
    anyio.run(run, "max(temp_celsius)")
    assert len(catalog_reads) == 1  # the second evaluation reused the catalog
    client = connect(ClickHouseConfig(url=clickhouse.url), with_database=False)
    qd.insert_rows(client, db, "otel_metrics", qd.METRIC_COLUMNS,
                   [qd.metric_row(start + 600 * NS, t0, "fresh.gauge", "", "Gauge", "Unspecified", False, {}, value=7.0)])
    client.close()
    v = anyio.run(run, "sum(fresh_gauge)")
    assert len(catalog_reads) == 2
    assert [float(x) for x in v.series[0][1] if not np.isnan(x)][:1] == [7.0]


def test_series_labels_are_read_once_and_stay_right_when_evicted(metrics_db, monkeypatch):
    """A series id is a hash of its labels: they are read the first time the series is seen, not on
    every evaluation; a full cache drops its oldest half and answers stay the same."""
    store, t0, _ = metrics_db
    from otelingest.query.storage import store as store_mod

    store._store.series_labels.clear()
    label_reads = []
    real = store.named

    async def counting(name, params=None, **kw):
        if name.startswith("promql/series_labels"):
            label_reads.append(len(params["series"]))
        return await real(name, params, **kw)

    monkeypatch.setattr(store, "named", counting)

    async def run(q: str) -> dict[tuple, np.ndarray]:
        v, _, _ = await evaluator.evaluate(store, parse(q), t0 + 3600 * NS, t0 + 7200 * NS, 60 * NS)
        assert isinstance(v, values.Vector)
        return {values.label_key(lab): vals for lab, vals in v.series}

    monkeypatch.setattr(source_mod, "MAX_BOUND_SERIES", 3)  # ids are a bound parameter: read in chunks
    first = anyio.run(run, "sum by (host, zone) (temp_celsius)")
    assert label_reads == [3, len(HOSTS) - 3] and len(first) == len(HOSTS)
    assert anyio.run(run, "max by (host, zone) (temp_celsius)").keys() == first.keys()
    assert label_reads == [3, len(HOSTS) - 3]  # known series: no second read
    monkeypatch.setattr(store_mod, "SERIES_LABELS_MAX", 3)
    store._store.series_labels.clear()
    again = anyio.run(run, "sum by (host, zone) (temp_celsius)")
    assert again.keys() == first.keys()
    for k in first:
        assert np.allclose(first[k], again[k], equal_nan=True)
    assert len(store._store.series_labels) <= 3 + len(HOSTS)


def test_expired_catalog_is_served_while_read_again(metrics_db, monkeypatch):
    """Past its time a shared catalog still answers while a fresh one is read in the background."""
    store, t0, _ = metrics_db
    monkeypatch.setattr(source_mod, "CATALOG_TTL_S", 0.0)
    reads: list[bool] = []
    real = store.named

    async def counting(name, params=None, **kw):
        if name.startswith("promql/catalog"):
            reads.append(kw.get("request") is None)
        return await real(name, params, **kw)

    monkeypatch.setattr(store, "named", counting)
    store._store._memo.clear()  # no catalog another test shared
    start, end = t0 + 3960 * NS, t0 + 7260 * NS

    async def scenario() -> None:
        first, _, _ = await evaluator.evaluate(store, parse("sum(temp_celsius)"), start, end, 60 * NS)
        second, _, _ = await evaluator.evaluate(store, parse("sum(temp_celsius)"), start, end, 60 * NS)
        for _ in range(100):  # the background read
            if len(reads) == 2:
                break
            await anyio.sleep(0.05)
        assert isinstance(first, values.Vector) and isinstance(second, values.Vector)
        assert np.allclose(first.series[0][1], second.series[0][1], equal_nan=True)

    anyio.run(scenario)
    assert len(reads) == 2 and reads[1]  # the second read ran in the background, for no request


@pytest.mark.parametrize("pushdown", [True, False])
def test_more_series_than_a_query_parameter_holds_are_read_in_chunks(metrics_db, monkeypatch, pushdown):
    """Series ids are bound as one parameter (ClickHouse takes 128 KiB, ~6,000 ids): a selector of
    more series is read a chunk per query, with the same answers."""
    store, t0, _ = metrics_db

    async def run(q: str) -> dict[tuple, np.ndarray]:
        v, _, _ = await evaluator.evaluate(store, parse(q), t0 + 3600 * NS, t0 + 7200 * NS, 60 * NS,
                                        pushdown=pushdown)
        assert isinstance(v, values.Vector)
        return {values.label_key(lab): vals for lab, vals in v.series}

    queries = [f"{op}(rate(reqs_total[5m]))" for op in ("sum", "avg", "min", "max", "count")]
    queries += ["avg by (zone) (temp_celsius)", "sum by (le) (rate(lat_milliseconds_bucket[5m]))",
                "sum by (le) (rate(size_bytes_bucket[3m]))", "histogram_quantile(0.9, sum by (le) (rate(lat_milliseconds_bucket[2m])))",
                "rate(reqs_total[5m])"]
    whole = {q: anyio.run(run, q) for q in queries}
    for n in (len(HOSTS) - 1, 1):  # two chunks, then a series each
        monkeypatch.setattr(source_mod, "MAX_BOUND_SERIES", n)
        for q in queries:
            chunked = anyio.run(run, q)
            assert chunked.keys() == whole[q].keys() and chunked, (q, n)
            for k in chunked:
                assert np.allclose(chunked[k], whole[q][k], rtol=1e-9, equal_nan=True), (q, n, k)
