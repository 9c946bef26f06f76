"""The service-dependency rollup: raw spans joined per hour into ``otel_service_dependencies_1h``.

A parent span and its child usually arrive in different inserts (different services, different
SDKs), so no materialized view can join them: the counts come from joining raw spans, at query
time or ahead of time, per hour. What counts: a call belongs to the hour its child span started,
and counts when its parent (same trace, another service) started in that hour or the one before.
The raw join (``dependencies/raw.sql``, read by :mod:`otelingest.query.dependencies`) and the
rollup (``jobs/dependencies_rollup.sql``) apply the same rule, so a window's answer does not depend on
which of its hours were rolled up.

Per tenant: one run computes an hour for every tenant at once, grouping and joining by
``TenantId`` (a child joins only its own tenant's parent), and records the hour for each tenant
that has spans in it, so each tenant's service graph is its own. The job's SQL lives in
``sql/queries/jobs/``: it reads every tenant on purpose, unlike the API's files, which are scoped
to the requesting tenant.

The supervisor runs :class:`DependencyRollup` every ``[query] dependencies_rollup_interval_s`` with
the writing user (the query process only reads). A run computes an hour, then records it in
``otel_service_dependency_hours`` with the time it read the spans. An hour is *final* when that
time is at least ``ROLLUP_LAG_NS`` after the hour's end (spans arriving later are not waited for);
queries read only final hours from the rollup and join raw spans for the rest. So each run computes
only hours that hold spans, have no final record, and become final by being computed now: up to
``[query] dependencies_backfill_hours`` of them, newest first. An hour is computed once, however
often the job runs (a computation before it could be final would never be read); after the job was
stopped, or a bulk load, it catches up a bounded number of hours per run.
"""

from __future__ import annotations

import logging
import threading
import time

from clickhouse_connect.driver.client import Client

from ..clickhouse import sqlfiles
from ..config import ClickHouseConfig

log = logging.getLogger("otelingest.jobs")

NS = 1_000_000_000
HOUR_NS = 3600 * NS
# How long after its end an hour's spans are taken to have all arrived (late exports, retries).
ROLLUP_LAG_NS = 2 * HOUR_NS
# An hour's computation is final when it read the spans this long after the hour began.
FINAL_AFTER_NS = HOUR_NS + ROLLUP_LAG_NS
DEFAULT_BACKFILL_HOURS = 6


def floor_hour(ns: int) -> int:
    return ns - ns % HOUR_NS


def ceil_hour(ns: int) -> int:
    return floor_hour(ns + HOUR_NS - 1)


def rollup_hour(client: Client, hour_start_ns: int, *, now_ns: int | None = None) -> None:
    """(Re)compute one hour of otel_service_dependencies_1h and record it as computed at ``now_ns``
    (default: now). ``client`` must be allowed to INSERT."""
    hour = floor_hour(hour_start_ns)
    # Taken before the spans are read: the record never claims spans that arrived after the read.
    computed = time.time_ns() if now_ns is None else now_ns
    client.command(sqlfiles.query("jobs/dependencies_rollup"), parameters={"hour_ns": hour})
    client.command(sqlfiles.query("jobs/dependencies_mark_hour"), parameters={"hour_ns": hour, "computed_ns": computed})


def pending_hours(client: Client, *, limit: int, now_ns: int | None = None) -> list[int]:
    """Up to ``limit`` hours (start times, ns, newest first) that hold spans, have no final record,
    and would be final if computed now."""
    now = time.time_ns() if now_ns is None else now_ns
    rows = client.query(sqlfiles.query("jobs/dependencies_pending_hours"), parameters={
        "last_s": floor_hour(now - FINAL_AFTER_NS) // NS, "final_after_s": FINAL_AFTER_NS // NS, "limit": limit,
    }).result_rows
    return [int(r[0]) * NS for r in rows]


def backfill(client: Client, *, limit: int = DEFAULT_BACKFILL_HOURS, now_ns: int | None = None) -> list[int]:
    """One run of the job: up to ``limit`` hours without a final record that become final by being
    computed now, newest first (see the module docstring); returns their start times."""
    if limit <= 0:
        return []
    hours = pending_hours(client, limit=limit, now_ns=now_ns)
    for h in hours:
        rollup_hour(client, h, now_ns=now_ns)
    return hours


class DependencyRollup:
    """:func:`backfill` at start and every ``interval_s``, on a thread, until :meth:`stop`."""

    def __init__(self, cfg: ClickHouseConfig, interval_s: float,
                 backfill_hours: int = DEFAULT_BACKFILL_HOURS) -> None:
        self.cfg = cfg
        self.interval_s = interval_s
        self.backfill_hours = backfill_hours
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dependency-rollup", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        from ..clickhouse.client import connect

        while not self._stop.is_set():
            try:
                client = connect(self.cfg)
                try:
                    filled = backfill(client, limit=self.backfill_hours)
                finally:
                    client.close()
                if filled:
                    log.info("dependency rollup: computed %d hours", len(filled))
            except Exception as e:  # ClickHouse down or a restart in progress: try again next time
                log.warning("dependency rollup failed: %s", e)
            self._stop.wait(self.interval_s)
