"""The in-process PromQL functions (query/promql_functions.py) on hand-computed values, as
Prometheus' promql/functions.go and aggregation.go define them."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from otelingest.query.promql import functions as fx

S = 1_000_000_000


def test_quantile_interpolates_between_ranks() -> None:
    v = np.array([4.0, 1.0, 3.0, 2.0])
    assert fx.quantile(0.5, v) == 2.5
    assert fx.quantile(0.75, v) == 3.25
    assert fx.quantile(0, v) == 1.0 and fx.quantile(1, v) == 4.0
    assert fx.quantile(-0.5, v) == -math.inf and fx.quantile(1.5, v) == math.inf
    assert math.isnan(fx.quantile(0.5, np.array([])))


def test_changes_resets_idelta_per_window() -> None:
    t = np.arange(6) * 10 * S
    v = np.array([1.0, 1.0, 3.0, 2.0, 2.0, 5.0])
    lo, hi = np.array([0, 1, 3, 6]), np.array([6, 4, 4, 6])
    ends = t[np.minimum(hi, 5)]
    changes = fx.range_extra("changes", t, v, lo, hi, ends, None)
    resets = fx.range_extra("resets", t, v, lo, hi, ends, None)
    idelta = fx.range_extra("idelta", t, v, lo, hi, ends, None)
    assert changes[:3].tolist() == [3.0, 2.0, 0.0] and math.isnan(changes[3])
    assert resets[:3].tolist() == [1.0, 1.0, 0.0] and math.isnan(resets[3])
    assert idelta[:2].tolist() == [3.0, -1.0] and math.isnan(idelta[2]) and math.isnan(idelta[3])


def test_deriv_and_predict_linear() -> None:
    t = np.array([0, 10, 20, 30]) * S
    v = np.array([5.0, 25.0, 45.0, 65.0])  # 2 per second
    lo, hi, ends = np.array([0]), np.array([4]), np.array([30 * S])
    assert fx.range_extra("deriv", t, v, lo, hi, ends, None)[0] == pytest.approx(2.0)
    # 600 s after the evaluation time (30 s, value 65): 65 + 1200.
    assert fx.range_extra("predict_linear", t, v, lo, hi, ends, np.array([600.0]))[0] == pytest.approx(1265.0)
    assert fx.linear_regression(t, np.full(4, 7.0), 0) == (0.0, 7.0)


def test_stddev_stdvar_quantile_over_time() -> None:
    t = np.arange(4) * S
    v = np.array([2.0, 4.0, 4.0, 6.0])
    lo, hi, ends = np.array([0]), np.array([4]), np.array([3 * S])
    assert fx.range_extra("stdvar_over_time", t, v, lo, hi, ends, None)[0] == 2.0
    assert fx.range_extra("stddev_over_time", t, v, lo, hi, ends, None)[0] == math.sqrt(2.0)
    assert fx.range_extra("quantile_over_time", t, v, lo, hi, ends, np.array([0.5]))[0] == 4.0


def test_aggregations_over_present_values() -> None:
    x = np.array([[1.0, np.nan], [3.0, 5.0], [5.0, np.nan]])
    p = ~np.isnan(x)
    assert fx.agg_stdvar(x, p).tolist() == [8 / 3, 0.0]
    assert fx.agg_quantile(np.array([0.5, 0.5]), x, p).tolist() == [3.0, 5.0]


def test_date_functions_in_utc() -> None:
    t = np.array([951782400.0 + 13 * 3600 + 7 * 60, np.nan])  # 2000-02-29 13:07 UTC, a Tuesday
    got = {name: fx.date_function(name, t)[0] for name in sorted(fx.DATE_FUNCS)}
    assert got == {"day_of_month": 29, "day_of_week": 2, "day_of_year": 60, "days_in_month": 29, "hour": 13,
                   "minute": 7, "month": 2, "year": 2000}
    assert math.isnan(fx.date_function("year", t)[1])


@pytest.mark.parametrize("go, groups, ch", [
    ("destination-value-$1", 1, "destination-value-\\1"),
    ("$1-$2", 2, "\\1-\\2"),
    ("${1}x", 1, "\\1x"),
    ("value-$1", 0, "value-"),  # no such group: empty, as Go's Expand
    ("$1x", 1, ""),  # Go reads the group name "1x"
    ("a$$b\\c", 0, "a$b\\\\c"),
])
def test_go_replacement_templates(go: str, groups: int, ch: str) -> None:
    assert fx.go_replacement_to_re2(go, groups) == ch


def test_label_join_and_names() -> None:
    assert fx.label_join({"a": "x", "b": "y"}, "c", "-", ["a", "b", "z"]) == {"a": "x", "b": "y", "c": "x-y-"}
    assert fx.label_join({"a": "x", "c": "old"}, "c", "-", ["z"]) == {"a": "x"}
    with pytest.raises(Exception, match="invalid destination label name"):
        fx.check_label_name("~invalid", "label_join")


# --- sort, @, value NaN (issue 17) ------------------------------------------------------------------

def test_sort_by_value_puts_nan_last_both_ways() -> None:
    from otelingest.query.promql.values import VALUE_NAN, sort_by_value
    series = [({"i": str(i)}, np.array([v])) for i, v in enumerate([3.0, VALUE_NAN, -1.0, math.inf, 2.0])]
    asc = [lab["i"] for lab, _ in sort_by_value(series, desc=False)]
    desc = [lab["i"] for lab, _ in sort_by_value(series, desc=True)]
    assert asc == ["2", "4", "0", "3", "1"]
    assert desc == ["3", "0", "4", "2", "1"]


def test_at_modifier_times() -> None:
    import promql_parser as pp

    from otelingest.query.errors import BadRequest
    from otelingest.query.promql.parse import at_ns
    e = pp.parse("x @ 1609746000.5")
    assert at_ns(e.at, 1, 2) == 1_609_746_000_500_000_000
    assert at_ns(pp.parse("x @ start()").at, 1, 2) == 1
    assert at_ns(pp.parse("rate(x[5m] @ end())").args[0].vector_selector.at, 1, 2) == 2
    with pytest.raises(BadRequest):
        at_ns(pp.parse("x @ -10").at, 1, 2)


def test_aggregations_keep_a_value_nan() -> None:
    from otelingest.query.promql.aggregations import AGGREGATIONS
    from otelingest.query.promql.values import VALUE_NAN, present
    # A row per series, a column per step. Step 0: 1, NaN, 3; step 1: NaN alone; step 2: none.
    x = np.array([[1.0, VALUE_NAN, np.nan], [VALUE_NAN, np.nan, np.nan], [3.0, np.nan, np.nan]])
    p = present(x)
    with np.errstate(all="ignore"):  # as the evaluator
        assert math.isnan(AGGREGATIONS["sum"](x, p)[0]) and math.isnan(AGGREGATIONS["avg"](x, p)[0])
        assert AGGREGATIONS["min"](x, p)[0] == 1.0 and AGGREGATIONS["max"](x, p)[0] == 3.0
        assert math.isnan(AGGREGATIONS["max"](x, p)[1]) and math.isnan(AGGREGATIONS["min"](x, p)[1])
        assert AGGREGATIONS["count"](x, p).tolist()[:2] == [3.0, 1.0]
        assert math.isnan(fx.agg_stdvar(x, p)[0])
        # NaN sorts below every number: the lowest quantile is NaN, the highest the maximum.
        assert math.isnan(fx.quantile(0.0, np.array([2.0, math.nan, 1.0])))
        assert fx.quantile(1.0, np.array([2.0, math.nan, 1.0])) == 2.0


def test_range_functions_over_a_nan_sample() -> None:
    from otelingest.query.promql.ranges import range_over_samples, value_nans, window_sum
    from otelingest.query.promql.values import Samples, is_value_nan
    v = np.array([1.0, math.nan, 2.0, 4.0, math.inf, 1.0])
    lo, hi = np.array([0, 2, 3, 1]), np.array([2, 4, 6, 2])
    s = window_sum(v, lo, hi)
    assert math.isnan(s[0]) and s[1] == 6.0 and s[2] == math.inf and math.isnan(s[3])
    samples = Samples({}, np.arange(6) * S, v, False)
    ends = np.array([1, 3, 5, 1]) * S

    def run(name: str) -> np.ndarray:
        return value_nans(name, v, lo, hi, range_over_samples(name, samples, lo, hi, ends - 10 * S, ends))

    mx = run("max_over_time")
    assert mx[0] == 1.0 and mx[1] == 4.0 and is_value_nan(mx[3:]).all()  # all-NaN window: NaN
    total = run("sum_over_time")
    assert is_value_nan(total[[0, 3]]).all() and total[1] == 6.0  # a later window is not poisoned
    assert run("count_over_time").tolist() == [2.0, 2.0, 3.0, 1.0]


def test_double_exponential_smoothing_by_hand() -> None:
    v = np.array([1.0, 3.0, 4.0, 8.0])
    lo, hi = np.array([0, 0, 3]), np.array([4, 2, 4])
    sf, tf = np.full(3, 0.5), np.full(3, 0.5)
    # s1=1, b=2; k=1: s=0.5*3+0.5*(1+2)=3; k=2: b=0.5*(3-1)+0.5*2=2, s=0.5*4+0.5*(3+2)=4.5;
    # k=3: b=0.5*(4.5-3)+0.5*2=1.75, s=0.5*8+0.5*(4.5+1.75)=7.125. Two samples: 3. One: no value.
    out = fx.double_exponential_smoothing(v, lo, hi, sf, tf)
    assert out[:2].tolist() == [7.125, 3.0] and math.isnan(out[2])


def test_natural_order_of_label_values() -> None:
    key = functools.cmp_to_key(lambda x, y: -1 if fx.natural_less(x, y) else 1)
    assert sorted(["a10", "a2", "a1b", "b", "a1"], key=key) == ["a1", "a1b", "a2", "a10", "b"]
    assert fx.natural_less("node2", "node10") and not fx.natural_less("node10", "node2")
