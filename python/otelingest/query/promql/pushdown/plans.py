"""The PromQL pushdown plans, as data: which chain of SQL fragments answers which aggregation shape.

Every query of a plan is ``samples`` (the series' samples in the window: SAMPLES), then a stage's
fragments (sql/queries/promql/pushdown/), then, for the stages that extrapolate a window's growth,
the window tail (WINDOW_TAILS). A plan's stages are tried in order: a *bounded* stage reads at most
a few samples per window (or assumes each time stored once) and answers with a row at step
``{steps}`` when a window of the query holds more; the next stage then runs. The planner
(planner.py) chooses the plan and may drop a plan's last, copying, stage when it would copy each
sample to too many windows; with every bounded stage overflowing, the Python evaluator answers.
docs/promql.md gives the measurements behind each plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

# (raw table?, histogram buckets?) -> the fragment reading the series' samples in the window.
SAMPLES: Mapping[tuple[bool, bool], str] = {
    (True, False): "promql/pushdown/samples_raw",
    (True, True): "promql/pushdown/samples_raw_bucket",
    (False, False): "promql/pushdown/samples_rollup",
    (False, True): "promql/pushdown/samples_rollup_bucket",
}

# The raw samples of series only OTLP wrote: no narrow table to read, no stale markers to skip.
SAMPLES_RAW_OTLP = "promql/pushdown/samples_raw_otlp"

# A window's growth extrapolated as Prometheus does: per value, or per element of a histogram's
# arrays (linearly for deltas and delta(), from a possible zero point for a cumulative counter).
WINDOW_TAILS: Mapping[str, tuple[str, ...]] = {
    "value": ("promql/pushdown/range",),
    "buckets": ("promql/pushdown/extrapolation_buckets", "promql/pushdown/range_buckets"),
    "buckets_linear": ("promql/pushdown/extrapolation_buckets", "promql/pushdown/range_linear_buckets"),
}


@dataclass(frozen=True)
class Stage:
    """One query of a plan: its fragments after ``samples``, its fixed parameters, and whether it
    ends in the window tail or may overflow (``bounded``: what it reads, in words)."""

    name: str
    fragments: tuple[str, ...]
    window_tail: bool = False
    params: Mapping[str, int] = field(default_factory=dict)
    bounded: str = ""


@dataclass(frozen=True)
class PlanSpec:
    name: str
    applies: str  # the aggregation shape it answers, in words
    stages: tuple[Stage, ...]
    arrays: bool = False  # a histogram's buckets, one array per point
    # Window frames ordered by time (RANGE offsets): the planner sets their unit and range.
    frames: bool = False
    params: Mapping[str, int] = field(default_factory=dict)


LAGGED_BUCKET_LAGS = 4  # a histogram's arrays: four lags of them
LAGGED_VALUE_LAGS = 7

_OVER_LAGS = "a window holding more samples than its lags, or a time stored twice"
_TWINS = "a delta point stored twice (a retried export)"

LAGGED = Stage("lagged", ("promql/pushdown/lags", "promql/pushdown/lagged_windows"), window_tail=True,
               params={"lags": LAGGED_VALUE_LAGS}, bounded=_OVER_LAGS)
PREFIX = Stage("prefix", ("promql/pushdown/prefix_ends", "promql/pushdown/prefix_windows"), window_tail=True,
               bounded=_TWINS)
WINDOWS = Stage("windows", ("promql/pushdown/ordered", "promql/pushdown/windows"), window_tail=True)
WINDOWS_BUCKETS = Stage("windows", ("promql/pushdown/ordered", "promql/pushdown/windows_buckets"), window_tail=True)
PREFIX_BUCKETS = Stage("prefix", ("promql/pushdown/prefix_ends", "promql/pushdown/prefix_windows_buckets"),
                       window_tail=True, bounded=_TWINS)
INCREMENTS_BUCKETS = Stage("increments", ("promql/pushdown/neighbours_buckets", "promql/pushdown/increments_buckets",
                                          "promql/pushdown/range_increments_buckets"))

PLANS: Mapping[str, PlanSpec] = {p.name: p for p in (
    PlanSpec("instant", "sum|avg|min|max|count of a counter's or gauge's selector: each series' latest "
             "sample in the lookback",
             (Stage("latest", ("promql/pushdown/latest", "promql/pushdown/instant")),)),
    PlanSpec("instant_buckets", "sum|avg|count of a histogram's _bucket selector", (
        Stage("latest", ("promql/pushdown/latest", "promql/pushdown/instant_buckets")),), arrays=True),
    PlanSpec("over_time", "sum|avg|min|max|count of {sum,avg,min,max,count,last}_over_time of a counter or gauge",
             (Stage("over_time", ("promql/pushdown/over_time",)),)),
    PlanSpec("pairs", "rate|increase|delta of a counter or gauge over a rollup's two-bucket window: the "
             "previous row is all a step needs", (
                 Stage("pairs", ("promql/pushdown/pairs", "promql/pushdown/windows_pairs"), window_tail=True),),
             params={"running": 0}),
    PlanSpec("pairs_buckets", "the same for a histogram's buckets", (
        Stage("pairs", ("promql/pushdown/pairs", "promql/pushdown/windows_buckets_pairs"), window_tail=True),),
             arrays=True, params={"running": 0}),
    PlanSpec("windows", "rate|increase|delta of a counter or gauge, windows of a step or two: each sample "
             "copied to the windows holding it", (WINDOWS,)),
    PlanSpec("windows_buckets", "the same for a histogram's buckets", (WINDOWS_BUCKETS,), arrays=True),
    PlanSpec("lagged", "rate|increase|delta of a counter or gauge, windows of several steps and many windows: "
             "each window's first sample read with a lag, else its two ends paired, else copying",
             (LAGGED, PREFIX, WINDOWS)),
    PlanSpec("lagged_buckets", "rate|increase|delta of a cumulative histogram's buckets, windows of several "
             "steps: lags, else ends paired, else each increment added to its windows", (
                 Stage("lagged", ("promql/pushdown/lags", "promql/pushdown/lagged_firsts_buckets",
                                  "promql/pushdown/lagged_windows_buckets"), window_tail=True,
                       params={"lags": LAGGED_BUCKET_LAGS}, bounded=_OVER_LAGS),
                 PREFIX_BUCKETS, INCREMENTS_BUCKETS),
             arrays=True, frames=True, params={"running": 0}),
    PlanSpec("lagged_delta_buckets", "the same for a delta histogram's buckets (running totals of the deltas)", (
        Stage("lagged", ("promql/pushdown/lags", "promql/pushdown/lagged_firsts_delta_buckets",
                         "promql/pushdown/lagged_windows_buckets"), window_tail=True,
              params={"lags": LAGGED_BUCKET_LAGS}, bounded=_OVER_LAGS),
        Stage(PREFIX_BUCKETS.name, PREFIX_BUCKETS.fragments, window_tail=True, params={"running": 1},
              bounded=_TWINS),
        INCREMENTS_BUCKETS),
             arrays=True, frames=True, params={"running": 0}),
)}
