"""Which table answers a metrics query, from its time range and step.

Raw points are kept ``[retention] metrics`` days, the 5-minute rollup ``metrics_5m`` days and the
hourly rollup ``metrics_1h`` days (30, 90 and 365 by default). A query reaching further back than
a table keeps, or asking for steps so coarse that raw points would only be summarised again, reads
the rollup: a one-year query never reads raw rows, and with ``metrics = 7`` a query ten days back
reads the 5-minute rollup rather than an empty raw table.
"""

from __future__ import annotations

import time
from typing import Literal

from ...config import RetentionConfig
from ..timeparse import NS

MetricsTable = Literal["otel_metrics", "otel_metrics_5m", "otel_metrics_1h"]

DAY_S = 86400
# Coarse steps over long ranges read rollups even when raw points still exist.
STEP_5M_S = 300
STEP_1H_S = 3600
LONG_RANGE_5M_S = DAY_S
LONG_RANGE_1H_S = 7 * DAY_S
DEFAULT_RETENTION = RetentionConfig()

BUCKET_S: dict[str, int] = {"otel_metrics": 0, "otel_metrics_5m": STEP_5M_S, "otel_metrics_1h": STEP_1H_S}


def choose_metrics_table(start_ns: int, end_ns: int, step_s: float, retention: RetentionConfig = DEFAULT_RETENTION,
                         now_s: float | None = None) -> MetricsTable:
    now = time.time() if now_s is None else now_s
    age_s = now - start_ns / NS
    span_s = (end_ns - start_ns) / NS
    if age_s > retention.metrics_5m * DAY_S or (step_s >= STEP_1H_S and span_s > LONG_RANGE_1H_S):
        return "otel_metrics_1h"
    if age_s > retention.metrics * DAY_S or (step_s >= STEP_5M_S and span_s > LONG_RANGE_5M_S):
        return "otel_metrics_5m"
    return "otel_metrics"
