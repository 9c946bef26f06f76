"""PromQL functions and aggregations beyond the pushdown shapes, evaluated in the process with numpy.

Pure functions over per-step arrays (a series' values at each step, NaN where absent) or over a
series' raw samples and each step's window of them (``lo``/``hi`` index ranges, as
``ranges.range_over_samples``); the evaluator (evaluator.py) calls them. Semantics are Prometheus'
(promql/functions.go, aggregation.go), noted where it matters. Windows with few samples are
evaluated in a loop: these functions serve panels and rules of bounded size (the selector limits
hold), the pushdown paths keep the heavy dashboard shapes.
"""

from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np

from ..errors import BadRequest

NS = 1_000_000_000
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# --- quantiles and moments --------------------------------------------------------------------------

def quantile(q: float, values: np.ndarray) -> float:
    """Prometheus' quantile(): linear interpolation between the closest ranks of the sorted values."""
    n = len(values)
    if n == 0 or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    # NaN sorts first, below every number (Prometheus' vectorByValueHeap).
    v = np.sort(values)
    nans = int(np.isnan(v).sum())
    if nans:
        v = np.concatenate([v[len(v) - nans:], v[:len(v) - nans]])
    rank = q * (n - 1)
    lo = max(0, math.floor(rank))
    hi = min(n - 1, lo + 1)
    w = rank - math.floor(rank)
    return float(v[lo] * (1 - w) + v[hi] * w)


def stdvar(values: np.ndarray) -> float:
    """Population variance (Prometheus' running mean and M2, computed here in two passes)."""
    if len(values) == 0:
        return math.nan
    mean = float(np.mean(values))
    return float(np.mean((values - mean) ** 2))


# --- range functions over raw samples -------------------------------------------------------------

# name -> whether it takes a scalar parameter (and where: "first" or "last" argument)
RANGE_EXTRA: dict[str, str | None] = {
    "stddev_over_time": None, "stdvar_over_time": None, "quantile_over_time": "first",
    "present_over_time": None, "absent_over_time": None, "changes": None, "resets": None,
    "deriv": None, "predict_linear": "last", "idelta": None,
}


def range_extra(name: str, times: np.ndarray, values: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                ends: np.ndarray, param: np.ndarray | None) -> np.ndarray:
    """``name`` at every step; the samples of step i are ``values[lo[i]:hi[i]]`` (times in ns),
    ``ends`` the steps' evaluation times (ns), ``param`` the scalar argument per step."""
    n = hi - lo
    out = np.full(len(lo), np.nan)
    some = n > 0
    if name == "present_over_time":
        return np.where(some, 1.0, np.nan)
    if name in ("changes", "resets"):
        prev, cur = values[:-1], values[1:]
        if name == "changes":
            flag = ~((cur == prev) | (np.isnan(cur) & np.isnan(prev)))
        else:
            flag = cur < prev
        c = np.concatenate([[0.0], np.cumsum(flag)])
        # Pairs (k-1, k) for k in (lo, hi): c[hi - 1] - c[lo] (indices clamped where the window is empty).
        first = np.where(some, lo, 0)
        last = np.where(some, hi - 1, 0)
        return np.where(some, c[last] - c[first], np.nan)
    if name == "idelta":
        two = n >= 2
        a, b = np.where(two, hi - 2, 0), np.where(two, hi - 1, 0)
        return np.where(two, values[b] - values[a], np.nan)
    for i in np.nonzero(some)[0]:
        w = values[lo[i]:hi[i]]
        if name == "stddev_over_time":
            out[i] = math.sqrt(stdvar(w))
        elif name == "stdvar_over_time":
            out[i] = stdvar(w)
        elif name == "quantile_over_time":
            assert param is not None
            out[i] = quantile(float(param[i]), w)
        elif name in ("deriv", "predict_linear"):
            if len(w) < 2:
                continue
            slope, intercept = linear_regression(times[lo[i]:hi[i]], w, int(ends[i]))
            if name == "deriv":
                out[i] = slope
            else:
                assert param is not None
                out[i] = slope * float(param[i]) + intercept
    return out


def double_exponential_smoothing(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, sf: np.ndarray,
                                  tf: np.ndarray) -> np.ndarray:
    """Holt's linear smoothing of each step's window (Prometheus 2's ``holt_winters``, 3's
    ``double_exponential_smoothing``): the last smoothed value; no value under two samples. The
    factors must lie strictly between 0 and 1 at every step (checked by the caller)."""
    out = np.full(len(lo), np.nan)
    for i in np.nonzero(hi - lo >= 2)[0]:
        w = values[lo[i]:hi[i]]
        a, t = float(sf[i]), float(tf[i])
        s0, s1, b = 0.0, float(w[0]), float(w[1] - w[0])
        for k in range(1, len(w)):
            if k > 1:  # the first step keeps the initial trend (Prometheus' calcTrendValue)
                b = t * (s1 - s0) + (1 - t) * b
            s0, s1 = s1, a * float(w[k]) + (1 - a) * (s1 + b)
        out[i] = s1
    return out


def _natural_chunks(s: str) -> list[str]:
    return re.findall(r"[0-9]+|[^0-9]+", s)


def natural_less(a: str, b: str) -> bool:
    """Prometheus' natural order of label values (facette/natsort, used by ``sort_by_label``):
    runs of digits compare as integers, other runs as strings."""
    ca, cb = _natural_chunks(a), _natural_chunks(b)
    for i, x in enumerate(ca):
        if i >= len(cb):
            return False
        y = cb[i]
        if x.isdigit() and y.isdigit():
            if int(x) != int(y):
                return int(x) < int(y)
        elif x != y:
            return x < y
        if i == len(ca) - 1:
            return True
        if i == len(cb) - 1:
            return False
    return False


def linear_regression(times: np.ndarray, values: np.ndarray, intercept_ns: int) -> tuple[float, float]:
    """Least-squares slope (per second) and the value at ``intercept_ns``, as Prometheus'
    linearRegression; computed on centred data for precision."""
    if np.all(values == values[0]):
        if math.isinf(values[0]):
            return math.nan, math.nan
        return 0.0, float(values[0])
    x = (times - intercept_ns) / NS
    mx, my = float(np.mean(x)), float(np.mean(values))
    dx = x - mx
    var = float(np.sum(dx * dx))
    slope = float(np.sum(dx * (values - my))) / var if var else math.nan
    return slope, my - slope * mx


# --- aggregations -----------------------------------------------------------------------------------

def agg_stdvar(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    n = p.sum(axis=0)
    mean = np.sum(np.where(p, x, 0.0), axis=0) / n
    return np.sum(np.where(p, (x - mean) ** 2, 0.0), axis=0) / n


def agg_stddev(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.sqrt(agg_stdvar(x, p))


def agg_quantile(q: np.ndarray, x: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.full(x.shape[1], np.nan)
    for j in range(x.shape[1]):
        col = x[p[:, j], j]
        if len(col):
            out[j] = quantile(float(q[j]), col)
    return out


# --- labels -----------------------------------------------------------------------------------------

def check_label_name(name: str, fn: str, what: str = "destination") -> None:
    if not LABEL_NAME.match(name):
        raise BadRequest(f"invalid {what} label name in {fn}(): {name}")


def go_replacement_to_re2(repl: str, groups: int) -> str:
    """A Go regexp.Expand template (``$1``, ``${1}``, ``$$``) as a ClickHouse replaceRegexpOne
    one (``\\1``); a reference to a group the regex does not have (or a named one) expands to
    nothing, as Go's does."""
    out = []
    i = 0
    while i < len(repl):
        c = repl[i]
        if c == "\\":
            out.append("\\\\")
            i += 1
            continue
        if c != "$":
            out.append(c)
            i += 1
            continue
        if repl.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        m = re.match(r"\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)", repl[i:])
        if not m:
            out.append("$")
            i += 1
            continue
        name = m.group(1) or m.group(2)
        if name.isdigit() and int(name) <= min(groups, 9):
            out.append("\\" + str(int(name)))
        i += m.end()
    return "".join(out)


def label_join(labels: dict[str, str], dst: str, sep: str, srcs: list[str]) -> dict[str, str]:
    value = sep.join(labels.get(s, "") for s in srcs)
    out = {k: v for k, v in labels.items() if k != dst}
    if value:
        out[dst] = value
    return out


# --- time and maths ----------------------------------------------------------------------------------

def _civil(seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(datetime64[s], year, month 1..12, day 1..31) of finite unix seconds (UTC)."""
    dt = np.floor(seconds).astype("int64").astype("datetime64[s]")
    y = dt.astype("datetime64[Y]").astype(int) + 1970
    m = dt.astype("datetime64[M]").astype(int) % 12 + 1
    d = (dt.astype("datetime64[D]") - dt.astype("datetime64[M]")).astype(int) + 1
    return dt, y, m, d


def date_function(name: str, seconds: np.ndarray) -> np.ndarray:
    out = np.full(len(seconds), np.nan)
    ok = np.isfinite(seconds)
    if not ok.any():
        return out
    dt, y, m, d = _civil(seconds[ok])
    if name == "year":
        r = y
    elif name == "month":
        r = m
    elif name == "day_of_month":
        r = d
    elif name == "day_of_year":
        r = (dt.astype("datetime64[D]") - dt.astype("datetime64[Y]")).astype(int) + 1
    elif name == "day_of_week":
        r = (dt.astype("datetime64[D]").astype(int) + 4) % 7  # 1970-01-01 was a Thursday
    elif name == "days_in_month":
        month = dt.astype("datetime64[M]")
        r = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(int)
    elif name == "hour":
        r = (dt.astype("int64") // 3600) % 24
    elif name == "minute":
        r = (dt.astype("int64") // 60) % 60
    else:
        raise AssertionError(name)
    out[ok] = r.astype(np.float64)
    return out


DATE_FUNCS = frozenset({"year", "month", "day_of_month", "day_of_year", "day_of_week", "days_in_month", "hour",
                        "minute"})


def _sgn(x: np.ndarray) -> np.ndarray:
    return np.sign(x)


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)


MATH_EXTRA: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sgn": _sgn, "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh,
    "acosh": np.arccosh, "atanh": np.arctanh, "deg": np.degrees, "rad": np.radians,
}


MATH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    # round: half up, as Prometheus (numpy's rounds half to even).
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "round": lambda x: np.floor(x + 0.5), "sqrt": np.sqrt,
    "exp": np.exp,
    "ln": np.log, "log2": np.log2, "log10": np.log10,
}
