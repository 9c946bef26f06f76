"""Which table answers a metrics query, from its time range and step.

Raw points are kept ``[retention] metrics`` days (30 by default), the 5-minute rollup 90 days and
the hourly rollup a year. A query reaching further back than a table keeps, or asking for steps so
coarse that raw points would only be summarised again, reads the rollup: a one-year query never
reads raw rows.
"""

from __future__ import annotations

import time
from typing import Literal

from .timeparse import NS

MetricsTable = Literal["otel_metrics", "otel_metrics_5m", "otel_metrics_1h"]

DAY_S = 86400
RAW_MAX_AGE_S = 30 * DAY_S
ROLLUP_5M_MAX_AGE_S = 90 * DAY_S
# Coarse steps over long ranges read rollups even when raw points still exist.
STEP_5M_S = 300
STEP_1H_S = 3600
LONG_RANGE_5M_S = DAY_S
LONG_RANGE_1H_S = 7 * DAY_S

BUCKET_S: dict[str, int] = {"otel_metrics": 0, "otel_metrics_5m": STEP_5M_S, "otel_metrics_1h": STEP_1H_S}


def choose_metrics_table(start_ns: int, end_ns: int, step_s: float, now_s: float | None = None) -> MetricsTable:
    now = time.time() if now_s is None else now_s
    age_s = now - start_ns / NS
    span_s = (end_ns - start_ns) / NS
    if age_s > ROLLUP_5M_MAX_AGE_S or (step_s >= STEP_1H_S and span_s > LONG_RANGE_1H_S):
        return "otel_metrics_1h"
    if age_s > RAW_MAX_AGE_S or (step_s >= STEP_5M_S and span_s > LONG_RANGE_5M_S):
        return "otel_metrics_5m"
    return "otel_metrics"
