"""A tenant whose raw metric points are kept fewer days than the global [retention] has its older
ranges read from the rollups (the raw rows are gone at its own days): which table answers."""

from __future__ import annotations

import msgspec

from otelingest import config
from otelingest.query.storage.store import Store
from otelingest.query.storage.tables import choose_metrics_table

NS = 1_000_000_000
DAY_NS = 86_400 * NS


def _store(mode: str) -> Store:
    tenancy = msgspec.convert({"mode": mode, "tenants": {"short": {"retention": {"metrics": 7, "metrics_5m": 20}}}},
                              config.TenancyConfig)
    return Store(None, config.QueryConfig(), config.RetentionConfig(metrics=30), tenancy)  # type: ignore[arg-type]


def test_a_tenant_with_shorter_raw_retention_reads_older_ranges_from_the_rollup() -> None:
    import time
    now = time.time_ns()
    ten_days_back = (now - 10 * DAY_NS, now - 10 * DAY_NS + 3600 * NS)
    store = _store("header")
    assert store.for_tenant("short").retention.metrics == 7
    assert store.for_tenant("other").retention.metrics == 30
    assert choose_metrics_table(*ten_days_back, 60, store.for_tenant("short").retention) == "otel_metrics_5m"
    assert choose_metrics_table(*ten_days_back, 60, store.for_tenant("other").retention) == "otel_metrics"
    # Past its own 5-minute rollup days (20, the global 90): the hourly rollup.
    month_back = (now - 30 * DAY_NS, now - 30 * DAY_NS + 3600 * NS)
    assert choose_metrics_table(*month_back, 60, store.for_tenant("short").retention) == "otel_metrics_1h"
    assert choose_metrics_table(*month_back, 60, store.for_tenant("other").retention) == "otel_metrics_5m"


def test_with_tenancy_off_the_tenant_keys_change_nothing() -> None:
    assert _store("off").for_tenant("short").retention.metrics == 30
