"""Chaos: faults injected into a loaded daemon; every acknowledged span is stored exactly once.

Each scenario runs steady OTLP/HTTP protobuf load, counts the spans the daemon answered 200, injects
a fault, and compares with ClickHouse: ``count()`` and ``uniqExact(TraceId, SpanId)`` (every span id
is unique, so a duplicate shows as count > distinct). A request whose connection broke (receiver
killed) has an unknown outcome: it may be stored although never acknowledged, so there the bound is
``acknowledged <= stored <= acknowledged + spans of the broken requests``.

The heavy versions are marked ``chaos`` (``make test-chaos``); quick versions of the ClickHouse
outage with spill, the writer and receiver kills and the graceful stop run in the default suite.
Each scenario prints ``chaos scenario N: acknowledged=..., stored=..., distinct=..., refused=...``
(run pytest with ``-s`` to see them).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from conftest import running_clickhouse
from daemon import Daemon
from traffic import FAST_RETRY, SPANS_PER_REQUEST, ProtoSender, start_senders, stored, wait_acked, wait_stored
from otelingest.clickhouse.embedded import EmbeddedClickHouse

def report(n: int, senders: list[ProtoSender], counts: tuple[int, int], note: str = "") -> None:
    acked = sum(s.acked for s in senders)
    refused = sum(s.refused for s in senders)
    broken = sum(s.broken for s in senders)
    print(f"\nchaos scenario {n}: acknowledged={acked}, stored={counts[0]}, distinct={counts[1]}, "
          f"refused={refused}, broken={broken}{(', ' + note) if note else ''}")


@pytest.fixture
def own_clickhouse(tmp_path: Path) -> Iterator[EmbeddedClickHouse]:
    """A ClickHouse server this test may stop and start."""
    yield from running_clickhouse(tmp_path / "ch")


# --- 1. ClickHouse outage: the spill takes the load, clients keep getting 200 -------------------------


@pytest.mark.parametrize("outage_s", [pytest.param(4.0, id="quick"), pytest.param(30.0, id="30s", marks=pytest.mark.chaos)])
def test_clickhouse_outage_spills_to_disk_and_everything_lands_after(
        tmp_path: Path, own_clickhouse: EmbeddedClickHouse, outage_s: float) -> None:
    ch = own_clickhouse
    d = Daemon(tmp_path / "daemon", clickhouse_url=ch.url, env=dict(FAST_RETRY, OTELINGEST_SPILL_AFTER_S="0.5"))
    d.start()
    senders: list[ProtoSender] = []
    try:
        senders = start_senders(d, "outage")
        wait_acked(senders, 200)
        ch.stop()
        before = sum(s.acked for s in senders)
        time.sleep(outage_s)
        during = sum(s.acked for s in senders) - before
        spill_bytes = sum(f.stat().st_size for f in (d.data_dir / "spill").rglob("*.spill"))
        refused_during = sum(s.refused for s in senders)
        ch.start()
        ch.wait_ready(timeout=120)
        time.sleep(1.0)
        acked = sum(s.stop() for s in senders)
        counts = wait_stored(d, "outage", acked)
        report(1, senders, counts, f"outage={outage_s:.0f}s, acknowledged_during_outage={during}, "
                                   f"spill_bytes_at_end_of_outage={spill_bytes}")
        assert during > 0 and spill_bytes > 0
        assert refused_during == 0  # the spill, not the clients, absorbed the outage
        assert counts == (acked, acked)
        spilled = d.metric("otel_spilled_items_total")
        assert spilled > 0
        deadline = time.monotonic() + 60
        while d.metric("otel_spill_replayed_items_total") < spilled and time.monotonic() < deadline:
            time.sleep(0.2)
        assert d.metric("otel_spill_replayed_items_total") == spilled
        log = d.log_text()
        assert "spilling batches to" in log and "spill replay finished" in log
    finally:
        for s in senders:
            s.stop()
        d.stop()


# --- 2. A writer killed mid-flush; a receiver killed mid-request -----------------------------------


def test_writer_killed_mid_flush(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    db = f"t_{uuid.uuid4().hex[:12]}"
    d = Daemon(tmp_path, clickhouse_url=clickhouse.url, database=db, env={"OTELINGEST_WRITER_BATCH_TIMEOUT_S": "0.3"})
    d.start()
    senders: list[ProtoSender] = []
    try:
        senders = start_senders(d, "writer-kill")
        for _ in range(3):
            wait_acked(senders, sum(s.acked for s in senders) + 200)
            victim = d.pid_of("otelingest: writer 0")
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while d.pid_of("otelingest: writer 0") == victim and time.monotonic() < deadline:
                time.sleep(0.1)
        wait_acked(senders, sum(s.acked for s in senders) + 200)
        acked = sum(s.stop() for s in senders)
        counts = wait_stored(d, "writer-kill", acked)
        report(2, senders, counts, "writer SIGKILLed 3 times")
        assert counts == (acked, acked)
        assert sum(s.broken for s in senders) == 0
    finally:
        for s in senders:
            s.stop()
        d.stop()


def test_receiver_killed_mid_request(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    db = f"t_{uuid.uuid4().hex[:12]}"
    d = Daemon(tmp_path, clickhouse_url=clickhouse.url, database=db)
    d.start()
    senders: list[ProtoSender] = []
    try:
        senders = start_senders(d, "receiver-kill", n=3, pause_s=0.0)
        wait_acked(senders, 300)
        victim = d.pid_of("otelingest: receiver 0")
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while d.pid_of("otelingest: receiver 0") == victim and time.monotonic() < deadline:
            time.sleep(0.1)
        wait_acked(senders, sum(s.acked for s in senders) + 300)
        acked = sum(s.stop() for s in senders)
        broken = sum(s.broken for s in senders)
        counts = wait_stored(d, "receiver-kill", acked)
        report(2, senders, counts, "receiver SIGKILLed")
        # Only the requests cut off by the kill may differ, and only by being stored unacknowledged.
        assert counts[0] == counts[1]
        assert acked <= counts[0] <= acked + broken * SPANS_PER_REQUEST
        assert d.metric("otel_worker_restarts_total", role="receiver") == 1
    finally:
        for s in senders:
            s.stop()
        d.stop()


# --- 3. The whole daemon SIGKILLed and restarted on the same data dir --------------------------------


def kill_everything(d: Daemon) -> None:
    """SIGKILL the supervisor and all its children at once (no chance to drain)."""
    assert d.proc is not None
    procs = [psutil.Process(d.proc.pid), *psutil.Process(d.proc.pid).children(recursive=True)]
    for p in procs:
        try:
            p.send_signal(signal.SIGSTOP)  # freeze first, so no one reacts to the others dying
        except psutil.NoSuchProcess:
            pass
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)
    d.proc.wait()


@pytest.mark.parametrize("mode", ["clickhouse-up", "clickhouse-down-rings", "clickhouse-down-spill"])
@pytest.mark.chaos
def test_whole_daemon_sigkilled_and_restarted(tmp_path: Path, own_clickhouse: EmbeddedClickHouse, mode: str) -> None:
    """Rings (data_dir/run/rings), the writer ledger and the spill persist; the restart finds them.

    clickhouse-down-rings: no spill, so what is acknowledged during the outage is only in the rings
    when everything dies; clickhouse-down-spill: part of it is in the spill queue too.
    """
    ch = own_clickhouse
    down = mode != "clickhouse-up"
    spill_after = "1000000" if mode == "clickhouse-down-rings" else "0.5"
    env = dict(FAST_RETRY, OTELINGEST_WRITER_BATCH_TIMEOUT_S="1", OTELINGEST_SPILL_AFTER_S=spill_after)
    d = Daemon(tmp_path / "daemon", clickhouse_url=ch.url, env=env)
    d.start()
    senders: list[ProtoSender] = []
    try:
        senders = start_senders(d, "sigkill", n=3, pause_s=0.0)
        wait_acked(senders, 500)
        if down:
            ch.stop()
            wait_acked(senders, sum(s.acked for s in senders) + 2000)
        kill_everything(d)
        acked_before_kill = sum(s.stop() for s in senders)
        broken = sum(s.broken for s in senders)
        if down:
            ch.start()
            ch.wait_ready(timeout=120)
        log_before = len(d.log_text())
        d2 = Daemon(tmp_path / "daemon", clickhouse_url=ch.url, env=env)
        d2.start()
        try:
            counts = wait_stored(d2, "sigkill", acked_before_kill)
            report(3, senders, counts, f"mode={mode}")
            assert counts[0] == counts[1]
            assert acked_before_kill <= counts[0] <= acked_before_kill + broken * SPANS_PER_REQUEST
            if mode == "clickhouse-down-rings":
                # The restart re-attached the rings with their contents instead of recreating them.
                assert "from the last run; writer" in d2.log_text()[log_before:]
        finally:
            d2.stop()
    finally:
        for s in senders:
            s.stop()
        if d.proc is not None and d.proc.poll() is None:
            d.stop()


@pytest.mark.chaos
def test_restart_with_fewer_workers_still_stores_what_the_rings_hold(
        tmp_path: Path, own_clickhouse: EmbeddedClickHouse) -> None:
    """Killed with 3 receivers x 2 writers and data only in the rings; restarted configured for
    1 x 1: the supervisor runs enough workers to drain the leftover rings."""
    ch = own_clickhouse
    env = dict(FAST_RETRY, OTELINGEST_SPILL_AFTER_S="1000000")
    d = Daemon(tmp_path / "daemon", clickhouse_url=ch.url, env=env, receivers=3, writers=2)
    d.start()
    senders: list[ProtoSender] = []
    try:
        ch.stop()
        senders = start_senders(d, "fewer", n=4, pause_s=0.0)
        wait_acked(senders, 3000)
        kill_everything(d)
        acked = sum(s.stop() for s in senders)
        broken = sum(s.broken for s in senders)
    finally:
        for s in senders:
            s.stop()
    ch.start()
    ch.wait_ready(timeout=120)
    log_before = len(d.log_text())
    d2 = Daemon(tmp_path / "daemon", clickhouse_url=ch.url, env=env, receivers=1, writers=1)
    d2.start()
    try:
        counts = wait_stored(d2, "fewer", acked)
        report(3, senders, counts, "restarted with 1 receiver x 1 writer instead of 3 x 2")
        assert counts[0] == counts[1]
        assert acked <= counts[0] <= acked + broken * SPANS_PER_REQUEST
        assert "running that many this time (configured 1 x 1)" in d2.log_text()[log_before:]
    finally:
        d2.stop()


# --- 4. SIGTERM under load -------------------------------------------------------------------------


def test_sigterm_under_load_drains(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    db = f"t_{uuid.uuid4().hex[:12]}"
    d = Daemon(tmp_path, clickhouse_url=clickhouse.url, database=db, env={"OTELINGEST_WRITER_BATCH_TIMEOUT_S": "1"})
    d.start()
    senders: list[ProtoSender] = []
    try:
        senders = start_senders(d, "sigterm", n=3, pause_s=0.0)
        wait_acked(senders, 500)
        assert d.stop(signal.SIGTERM) == 0
    finally:
        acked = sum(s.stop() for s in senders)
        d.stop()
    counts = stored(d, "sigterm")  # the daemon is gone: what is stored now is final
    report(4, senders, counts)
    assert counts == (acked, acked)


@pytest.mark.chaos
def test_sigterm_while_clickhouse_is_down_spills_and_the_next_start_stores(
        tmp_path: Path, own_clickhouse: EmbeddedClickHouse) -> None:
    """A graceful stop during an outage does not wait for ClickHouse: the writers spill what they
    hold, exit, and the next start replays it."""
    ch = own_clickhouse
    env = dict(FAST_RETRY, OTELINGEST_SPILL_AFTER_S="0.5", OTELINGEST_WRITER_STOP_TIMEOUT_S="60")
    d = Daemon(tmp_path / "daemon", clickhouse_url=ch.url, env=env)
    d.start()
    senders: list[ProtoSender] = []
    try:
        senders = start_senders(d, "sigterm-down", n=3, pause_s=0.0)
        wait_acked(senders, 500)
        ch.stop()
        wait_acked(senders, sum(s.acked for s in senders) + 2000)
        assert d.stop(signal.SIGTERM) == 0
    finally:
        acked = sum(s.stop() for s in senders)
        d.stop()
    assert "writer 0 stopped" in d.log_text()
    spill_bytes = sum(f.stat().st_size for f in (d.data_dir / "spill").rglob("*.spill"))
    assert spill_bytes > 0
    ch.start()
    ch.wait_ready(timeout=120)
    d2 = Daemon(tmp_path / "daemon", clickhouse_url=ch.url, env=env)
    d2.start()
    try:
        counts = wait_stored(d2, "sigterm-down", acked)
        report(4, senders, counts, f"ClickHouse down at SIGTERM, spill_bytes_at_stop={spill_bytes}")
        assert counts == (acked, acked)
    finally:
        d2.stop()


# --- 5. Disk budget exhausted -----------------------------------------------------------------------


@pytest.mark.chaos
def test_spill_budget_exhausted_refuses_then_stores_everything(tmp_path: Path,
                                                               own_clickhouse: EmbeddedClickHouse) -> None:
    ch = own_clickhouse
    env = dict(FAST_RETRY, OTELINGEST_SPILL_AFTER_S="0", OTELINGEST_SPILL_DISK_BUDGET_MIB="1",
               OTELINGEST_WRITER_RING_MIB="1", OTELINGEST_MEMORY_HARD_LIMIT_MIB="4",
               OTELINGEST_MEMORY_SOFT_LIMIT_MIB="3", OTELINGEST_MEMORY_RSS_LIMIT_MIB="100000",
               OTELINGEST_MEMORY_CHECK_INTERVAL_S="0.05", OTELINGEST_WRITER_BATCH_TIMEOUT_S="0.2")
    d = Daemon(tmp_path / "daemon", clickhouse_url=ch.url, env=env)
    d.start()
    senders: list[ProtoSender] = []
    try:
        ch.stop()
        senders = start_senders(d, "budget", n=2, spans=100)
        deadline = time.monotonic() + 120
        while sum(s.refused for s in senders) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sum(s.refused for s in senders) >= 20, [s.statuses for s in senders]
        spill_bytes = sum(f.stat().st_size for f in (d.data_dir / "spill").rglob("*.spill"))
        assert 0 < spill_bytes <= 1 << 20
        assert d.metric("otel_spilled_items_total") > 0
        ch.start()
        ch.wait_ready(timeout=120)
        acked = sum(s.stop() for s in senders)
        counts = wait_stored(d, "budget", acked)
        report(5, senders, counts, f"spill_bytes_at_refusal={spill_bytes}")
        assert counts == (acked, acked)
        assert "cannot spill (SpillFull" in d.log_text()
    finally:
        for s in senders:
            s.stop()
        d.stop()
