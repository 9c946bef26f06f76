"""Which pushdown plan (query/promql/pushdown/plans.py) the planner chooses for representative PromQL
aggregations, and why the Python evaluator answers the others: pure planning, no ClickHouse."""

from __future__ import annotations

import pytest

from otelingest.clickhouse import sqlfiles
from otelingest.query.promql.parse import parse
from otelingest.query.promql.pushdown import planner
from otelingest.query.promql.pushdown.plans import PLANS, SAMPLES, SAMPLES_RAW_OTLP, WINDOW_TAILS
from otelingest.query.promql.source import LOOKBACK_NS

NS = 1_000_000_000
DAY_STEPS = 1441  # 24 hours at a one-minute step
P = "promql/pushdown/"


def choose(q: str, *, kind: str = "value", delta: bool = False, series: int = 16, table: str = "otel_metrics",
           step_s: int = 60, steps: int = DAY_STEPS) -> planner.Plan | planner.Python:
    shape = planner.shape(parse(q), table, LOOKBACK_NS, step_s * NS, steps)
    if isinstance(shape, planner.Python):
        return shape
    facts = planner.facts(shape, [(i, kind, delta) for i in range(series)], [])
    return facts if isinstance(facts, planner.Python) else planner.plan(shape, facts)


def chains(p: planner.Plan | planner.Python) -> list[tuple[str, tuple[str, ...]]]:
    assert isinstance(p, planner.Plan), p
    return [(s.name, p.fragments(s)) for s in p.stages]


def test_a_plain_selector_takes_each_series_latest_sample():
    assert chains(choose("sum by (zone) (temp_celsius)")) == [
        ("latest", (P + "samples_raw", P + "latest", P + "instant"))]
    assert chains(choose("sum by (le) (lat_bucket)", kind="bucket")) == [
        ("latest", (P + "samples_raw_bucket", P + "latest", P + "instant_buckets"))]


def test_series_only_otlp_wrote_skip_the_narrow_table_and_the_stale_marker_test():
    shape = planner.shape(parse("sum(rate(reqs_total[5m]))"), "otel_metrics", LOOKBACK_NS, 60 * NS, DAY_STEPS)
    assert isinstance(shape, planner.Shape)
    for otlp_only, head in ((True, "samples_raw_otlp"), (False, "samples_raw")):
        facts = planner.facts(shape, [(i, "value", False) for i in range(16)], [], otlp_only)
        assert isinstance(facts, planner.Facts)
        p = planner.plan(shape, facts)
        assert isinstance(p, planner.Plan) and {c[0] for _, c in chains(p)} == {P + head}
    # A histogram's buckets are OTLP's alone already; a rollup has no narrow table.
    buckets = planner.shape(parse("sum by (le) (rate(lat_bucket[5m]))"), "otel_metrics", LOOKBACK_NS, 60 * NS, DAY_STEPS)
    assert isinstance(buckets, planner.Shape)
    facts = planner.facts(buckets, [(i, "bucket", False) for i in range(16)], [], True)
    assert isinstance(facts, planner.Facts)
    assert {c[0] for _, c in chains(planner.plan(buckets, facts))} == {P + "samples_raw_bucket"}


def test_over_time_functions():
    p = choose("max(max_over_time(temp_celsius[5m]))")
    assert isinstance(p, planner.Plan) and p.name == "over_time"
    assert chains(p) == [("over_time", (P + "samples_raw", P + "over_time"))]


def test_a_rollups_two_bucket_window_reads_the_previous_row():
    p = choose("sum(rate(reqs_total[10m]))", table="otel_metrics_5m", step_s=300, steps=289)
    assert isinstance(p, planner.Plan) and p.name == "pairs" and p.params == {"running": 0}
    assert chains(p) == [("pairs", (P + "samples_rollup", P + "pairs", P + "windows_pairs", P + "range"))]
    p = choose("sum by (le) (rate(lat_bucket[1m]))", kind="bucket", table="otel_metrics_5m", step_s=300, steps=289)
    assert isinstance(p, planner.Plan) and p.name == "pairs_buckets"  # the window widened to two buckets
    assert chains(p)[0][1][-3:] == (P + "windows_buckets_pairs", P + "extrapolation_buckets", P + "range_buckets")


def test_windows_of_a_step_or_two_copy_each_sample():
    p = choose("sum(rate(reqs_total[2m]))")
    assert isinstance(p, planner.Plan) and p.name == "windows"
    assert chains(p) == [("windows", (P + "samples_raw", P + "ordered", P + "windows", P + "range"))]
    p = choose("sum by (le) (delta(lat_bucket[2m]))", kind="bucket")
    assert isinstance(p, planner.Plan) and p.name == "windows_buckets"
    assert chains(p)[0][1][-1] == P + "range_linear_buckets"  # delta(): no zero point


def test_a_counter_over_several_steps_reads_lags_only_with_enough_windows():
    assert choose("sum(rate(reqs_total[5m]))", series=16).name == "windows"  # type: ignore[union-attr]
    p = choose("sum by (zone) (rate(reqs_total[5m]))", series=1000)
    assert isinstance(p, planner.Plan) and p.name == "lagged" and not p.exhausted
    assert chains(p) == [
        ("lagged", (P + "samples_raw", P + "lags", P + "lagged_windows", P + "range")),
        ("prefix", (P + "samples_raw", P + "prefix_ends", P + "prefix_windows", P + "range")),
        ("windows", (P + "samples_raw", P + "ordered", P + "windows", P + "range")),
    ]
    assert [s.bounded != "" for s in p.stages] == [True, True, False]
    assert p.stages[0].params == {"lags": 7}


def test_a_histogram_over_several_steps_reads_lags_then_pairs_ends_then_adds_increments():
    p = choose("sum by (le) (rate(lat_bucket[5m]))", kind="bucket")
    assert isinstance(p, planner.Plan) and p.name == "lagged_buckets"
    assert p.params == {"running": 0, "unit_ns": 1_000, "range_units": 300_000_000}
    assert chains(p) == [
        ("lagged", (P + "samples_raw_bucket", P + "lags", P + "lagged_firsts_buckets", P + "lagged_windows_buckets",
                    P + "extrapolation_buckets", P + "range_buckets")),
        ("prefix", (P + "samples_raw_bucket", P + "prefix_ends", P + "prefix_windows_buckets",
                    P + "extrapolation_buckets", P + "range_buckets")),
        ("increments", (P + "samples_raw_bucket", P + "neighbours_buckets", P + "increments_buckets",
                        P + "range_increments_buckets")),
    ]
    d = choose("sum by (le) (increase(lat_bucket[5m]))", kind="bucket", delta=True)
    assert isinstance(d, planner.Plan) and d.name == "lagged_delta_buckets"
    assert chains(d)[0][1][2] == P + "lagged_firsts_delta_buckets" and d.stages[1].params == {"running": 1}
    # Frames in microseconds reach 35.8 minutes: a 40-minute window counts in milliseconds.
    long = choose("sum by (le) (rate(lat_bucket[40m]))", kind="bucket")
    assert isinstance(long, planner.Plan) and long.params["unit_ns"] == 1_000_000


def test_too_many_copies_drop_the_copying_stage_or_the_plan():
    p = choose("sum by (le) (rate(lat_bucket[70m]))", kind="bucket")
    assert isinstance(p, planner.Plan) and [s.name for s in p.stages] == ["lagged", "prefix"]
    assert "70 copies" in p.exhausted
    p = choose("sum(increase(reqs_total[70m]))")
    assert isinstance(p, planner.Plan) and p.name == "lagged" and [s.name for s in p.stages] == ["lagged", "prefix"]
    assert "copied to 120 windows" in choose("sum(max_over_time(temp_celsius[2h]))").reason  # type: ignore[union-attr]


@pytest.mark.parametrize("q, reason", [
    ("sum(irate(reqs_total[5m]))", "neither a selector nor"),
    ("topk(3, reqs_total)", "topk is not pushed down"),
    ("sum by (__name__) (reqs_total)", "grouping by __name__"),
    ('sum(lat_bucket{le="0.5"})', "`le` matcher"),
    ("sum(reqs_total @ 100)", "@ modifier"),
    ("sum(rate(reqs_total[5m] @ end()))", "@ modifier"),
    ("max(max_over_time(temp_celsius[5m] @ start() offset 1m))", "@ modifier"),
    ("sum(rate(reqs_total[5m]) * 2)", "neither a selector nor"),
    ("sum(quantile_over_time(0.5, temp_celsius[5m]))", "neither a selector nor"),
])
def test_shapes_the_python_evaluator_answers(q, reason):
    p = choose(q)
    assert isinstance(p, planner.Python) and reason in p.reason, p


def test_series_the_python_evaluator_answers():
    shape = planner.shape(parse("sum(rate(lat_bucket[5m]))"), "otel_metrics", LOOKBACK_NS, 60 * NS, 61)
    assert isinstance(shape, planner.Shape)
    cases = [
        ([(1, "bucket", False), (2, "count", False)], [], "families side by side"),
        ([(1, "bucket", False), (1, "bucket", False)], [], "families side by side"),
        ([(1, "bucket", False), (2, "bucket", True)], [], "delta and cumulative"),
        ([(1, "bucket", False), (2, "bucket", False)], [2], "bounds changed"),
    ]
    for series, changed, reason in cases:
        f = planner.facts(shape, series, changed)
        assert isinstance(f, planner.Python) and reason in f.reason, (series, f)
    mx = planner.shape(parse("max(rate(lat_bucket[5m]))"), "otel_metrics", LOOKBACK_NS, 60 * NS, 61)
    assert isinstance(mx, planner.Shape)
    f = planner.facts(mx, [(1, "bucket", False)], [])
    assert isinstance(f, planner.Python) and "element-wise" in f.reason


def test_explain_names_the_plan_its_chains_and_what_makes_a_stage_give_way():
    p = choose("sum by (le) (rate(lat_bucket[70m]))", kind="bucket")
    assert isinstance(p, planner.Plan)
    text = p.explain()
    assert text.splitlines()[0].startswith("pushdown plan lagged_buckets for sum by (le)(rate(lat_bucket{}[1h10m])): 16 bucket series")
    assert f"1. lagged: {P}samples_raw_bucket > {P}lags > " in text and "lags=4" in text and "; on " in text
    assert "then evaluate in Python" in text
    assert choose("topk(3, reqs_total)").explain() == "evaluate in Python: topk is not pushed down"


def test_every_pushdown_fragment_is_a_file_and_every_file_a_fragment_of_a_plan():
    named = set(SAMPLES.values()) | {SAMPLES_RAW_OTLP} | {f for tail in WINDOW_TAILS.values() for f in tail}
    named |= {f for spec in PLANS.values() for stage in spec.stages for f in stage.fragments}
    files = {f"{P}{p.stem}" for p in (sqlfiles.sql_dir() / "queries" / "promql" / "pushdown").glob("*.sql")}
    assert named == files
