"""Noisy neighbour, ingest side: tenant A sends at 5x its rate limit while tenant B sends at its
normal rate. B's every request is accepted; A is refused only above its limit (what it gets through
is about its rate, never more than rate x time plus the workers' full buckets); every span
acknowledged to either is stored, under its own tenant, and nothing refused is. (The query side of
the issue's noisy-neighbour test waits for tenant-scoped reads.)"""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

from daemon import Daemon
from load import post_traces

RECEIVERS = 2
A_RATE, A_BURST = 200, 200  # spans/s over all receiver workers, bucket per worker
SECONDS = 12.0
A_SPANS, A_EVERY = 50, 0.05  # 1,000 spans/s: 5x A's limit
B_SPANS, B_EVERY = 20, 0.1  # 200 spans/s, no limit

CONFIG = f"""
[tenancy]
mode = "header"
[tenancy.tenants.noisy]
rate = {A_RATE}
burst = {A_BURST}
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("noisy"), receivers=RECEIVERS, config=CONFIG)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def _send(d: Daemon, tenant: str, spans: int, every: float, until: float, out: dict[int, int]) -> None:
    n = 0
    while time.monotonic() < until:
        started = time.monotonic()
        # A new connection per request (post_traces): SO_REUSEPORT spreads them over the workers,
        # whose buckets each hold rate / workers.
        status = post_traces(d.http_port, tenant, f"nn-{tenant}", n, spans)
        out[status] = out.get(status, 0) + spans
        n += 1
        time.sleep(max(0.0, every - (time.monotonic() - started)))


def test_a_noisy_tenant_is_refused_alone_and_only_above_its_limit(daemon: Daemon) -> None:
    a: dict[int, int] = {}
    b: dict[int, int] = {}
    until = time.monotonic() + SECONDS
    threads = [threading.Thread(target=_send, args=(daemon, "noisy", A_SPANS, A_EVERY, until, a)),
               threading.Thread(target=_send, args=(daemon, "quiet", B_SPANS, B_EVERY, until, b))]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    print(f"noisy neighbour over {elapsed:.1f}s: noisy (limit {A_RATE}/s) sent {sum(a.values())} spans, "
          f"accepted {a.get(200, 0)}, refused {a.get(429, 0)}; quiet sent {sum(b.values())}, accepted {b.get(200, 0)}")
    assert set(b) == {200}, b  # B: every request accepted
    assert set(a) <= {200, 429} and a.get(429, 0) > 0, a
    accepted_a = a.get(200, 0)
    sent_a = sum(a.values())
    # Above its limit only: no more than the rate over the run plus each worker's full bucket and one
    # oversize request of debt; and the limit is granted, not starved (half of it at least, whatever
    # way the kernel spread the connections).
    assert accepted_a <= A_RATE * elapsed + RECEIVERS * (A_BURST + A_SPANS), (accepted_a, elapsed)
    assert accepted_a >= 0.5 * A_RATE * SECONDS, (accepted_a, sent_a)
    assert sent_a >= 3 * A_RATE * SECONDS  # it really sent well above its limit
    # Acknowledged == stored, for both, under their own tenant.
    assert daemon.wait_count_where("otel_traces", "TenantId = 'quiet'", {}, b[200]) == b[200]
    assert daemon.wait_count_where("otel_traces", "TenantId = 'noisy'", {}, accepted_a) == accepted_a
    time.sleep(1)
    assert daemon.count_where("otel_traces", "TenantId = 'noisy'", {}) == accepted_a
    assert daemon.count_where("otel_traces", "ServiceName = 'nn-quiet' AND TenantId != 'quiet'", {}) == 0
