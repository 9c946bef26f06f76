"""Resource exhaustion: a full disk, ClickHouse over its memory limit, slow, or refusing with
TOO_MANY_PARTS. Every scenario checks what an operator checks afterwards: acknowledged == stored ==
distinct (exact), and every table of the database readable (``CHECK TABLE`` and a full read) with
no detached part.

The long versions are marked ``chaos`` (``make test-chaos``); a short full-disk run is in the
default suite. Each prints ``exhaustion scenario NAME: acknowledged=..., stored=..., distinct=...``.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import running_clickhouse
from daemon import Daemon
from diagnose import explain_on_failure
from faults import DelayingProxy, free_mib, grow_filesystem, small_filesystem
from traffic import FAST_RETRY, ProtoSender, assert_tables_readable, start_senders, traces_protobuf, wait_acked, wait_stored
from otelingest.clickhouse.embedded import EmbeddedClickHouse


def report(name: str, acked: int, counts: tuple[int, int], senders: list[ProtoSender], note: str = "") -> None:
    refused = sum(s.refused for s in senders)
    print(f"\nexhaustion scenario {name}: acknowledged={acked}, stored={counts[0]}, distinct={counts[1]}, "
          f"refused={refused}{(', ' + note) if note else ''}", flush=True)


def ready_body(d: Daemon) -> tuple[int | None, dict[str, Any]]:
    try:
        with urllib.request.urlopen(d.metrics_url + "/ready", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def one_request(d: Daemon) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=traces_protobuf("probe", 1, 1),
                     headers={"Content-Type": "application/x-protobuf"})
        r = conn.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def status_text(d: Daemon) -> str:
    cfg = d.dir / "status.toml"
    cfg.write_text(f"[metrics]\nport = {d.metrics_port}\n[clickhouse]\nurl = \"{d.clickhouse_url}\"\n"
                   f"database = \"{d.database}\"\n")
    r = subprocess.run([sys.executable, "-m", "otelingest", "status", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr


# --- 1. The data dir on a small filesystem, filled up, then grown -----------------------------------


# The 300 MiB run's spans carry 1 KiB of random bytes each: its bare spans (about 25 bytes each on
# disk) took more than 300 s to fill the disk on a busy machine, and pytest's timeout cut the test
# off while it was still filling, with nothing to say why. Filled means refusing for disk with the
# filesystem itself under ``full_mib`` free: a large merge's reservation alone trips the floor earlier.
FILL_TIMEOUT_S = 420


@pytest.mark.parametrize("size_mib,spans,floor_mib,filler_bytes,full_mib", [
    pytest.param(80, 100, 16, 0, 80, id="quick", marks=pytest.mark.timeout(600)),
    pytest.param(300, 512, 60, 1024, 120, id="300MiB", marks=[pytest.mark.chaos, pytest.mark.timeout(1200)]),
])
def test_full_disk_refuses_then_resumes_without_loss_or_broken_parts(
        tmp_path: Path, size_mib: int, spans: int, floor_mib: int, filler_bytes: int, full_mib: int) -> None:
    """Embedded ClickHouse, rings and spill on one small tmpfs (the default layout), loaded from two
    connections until the disk floor makes the receivers refuse; then the filesystem is grown."""
    fs = tmp_path / "fs"
    with small_filesystem(fs, size_mib):
        env = dict(FAST_RETRY, OTELINGEST_WRITER_RING_MIB="4", OTELINGEST_SPILL_AFTER_S="0.5",
                   OTELINGEST_CLICKHOUSE_MIN_FREE_DISK_MIB=str(floor_mib),
                   OTELINGEST_SPILL_MIN_FREE_DISK_MIB=str(floor_mib))
        d = Daemon(tmp_path / "daemon", data_dir=fs / "data", env=env)
        d.start()
        senders: list[ProtoSender] = []
        try:
            with explain_on_failure(d, fs):
                senders = start_senders(d, "disk", spans=spans, pause_s=0.0, filler_bytes=filler_bytes)
                deadline = time.monotonic() + FILL_TIMEOUT_S
                while (d.metric("otel_refused_total", reason="disk") < 20 or d.metric("otel_disk_low") != 1
                       or free_mib(fs) > full_mib) and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert d.metric("otel_refused_total", reason="disk") >= 20 and free_mib(fs) <= full_mib, \
                    f"disk floor not reached in {FILL_TIMEOUT_S}s: {sum(s.acked for s in senders)} spans " \
                    f"acknowledged, {free_mib(fs):.0f} MiB free"
                # What the operator sees while the disk is low.
                code, body = ready_body(d)
                assert code == 503 and "disk space low" in body["reason"], body
                status, headers = one_request(d)
                assert status == 503 and headers.get("retry-after") == "1"
                assert d.metric("otel_disk_low") == 1
                # `otelingest status` reads /ready and /metrics a second apart; the floor may flip in
                # between (space freed by a merge, taken again by the senders): a few tries.
                for _ in range(10):
                    text = status_text(d)
                    if "NOT READY (disk space low" in text and "DISK    LOW, refusing new data" in text:
                        break
                assert "NOT READY (disk space low" in text and "DISK    LOW, refusing new data" in text, text
                free_at_low = free_mib(fs)
                assert free_at_low > floor_mib / 4, free_at_low  # nobody took the filesystem to ENOSPC
                acked_at_low = sum(s.acked for s in senders)
                grow_filesystem(fs, size_mib * 3)
                deadline = time.monotonic() + 60
                while d.metric("otel_disk_low") != 0 and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert d.metric("otel_disk_low") == 0
                wait_acked(senders, acked_at_low + 20 * spans)  # accepting again by itself
                acked = sum(s.stop() for s in senders)
                counts = wait_stored(d, "disk", acked, timeout=180)
                report(f"full-disk-{size_mib}MiB", acked, counts, senders,
                       f"acknowledged_when_low={acked_at_low}, free_mib_when_low={free_at_low:.1f}, "
                       f"refused_disk={d.metric('otel_refused_total', reason='disk'):.0f}")
                assert counts == (acked, acked)
                assert ready_body(d)[0] == 200
                assert_tables_readable(d)
                log = d.log_text()
                assert "disk space low" in log and "disk space back" in log
                assert "No space left on device" not in log
        finally:
            for s in senders:
                s.stop()
            d.stop()


# --- 2. ClickHouse refusing with TOO_MANY_PARTS ------------------------------------------------------


@pytest.fixture
def strict_parts_clickhouse(tmp_path: Path):
    extra = ("<clickhouse><merge_tree><parts_to_throw_insert>8</parts_to_throw_insert>"
             "<parts_to_delay_insert>6</parts_to_delay_insert><max_delay_to_insert>1</max_delay_to_insert>"
             "</merge_tree></clickhouse>")
    yield from running_clickhouse(tmp_path / "ch", extra)


@pytest.mark.chaos
def test_too_many_parts_is_retried_not_dead_lettered(tmp_path: Path, strict_parts_clickhouse: EmbeddedClickHouse) -> None:
    ch = strict_parts_clickhouse
    d = Daemon(tmp_path / "daemon", clickhouse_url=ch.url,
               env=dict(FAST_RETRY, OTELINGEST_WRITER_BATCH_TIMEOUT_S="0.05", OTELINGEST_SPILL_AFTER_S="1000"))
    d.start()
    senders: list[ProtoSender] = []
    try:
        with explain_on_failure(d):
            senders = start_senders(d, "parts", spans=20, pause_s=0.0)
            wait_acked(senders, 2000)
            # Merges stopped: parts pile up until ClickHouse throws TOO_MANY_PARTS.
            d.client().command(f"SYSTEM STOP MERGES {d.database}.otel_traces")
            deadline = time.monotonic() + 120
            while "TOO_MANY_PARTS" not in d.log_text() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert "TOO_MANY_PARTS" in d.log_text()
            time.sleep(5)
            d.client().command(f"SYSTEM START MERGES {d.database}.otel_traces")
            wait_acked(senders, sum(s.acked for s in senders) + 2000, timeout=120)
            acked = sum(s.stop() for s in senders)
            counts = wait_stored(d, "parts", acked, timeout=180)
            report("too-many-parts", acked, counts, senders,
                   f"retries={d.metric('otel_storage_writes_total', status='retry'):.0f}")
            assert counts == (acked, acked)
            assert d.metric("otel_storage_writes_total", status="dead_letter") == 0
            assert not (d.data_dir / "deadletter").exists()
            assert_tables_readable(d)
    finally:
        for s in senders:
            s.stop()
        d.stop()


# --- 3. ClickHouse over its memory limit ------------------------------------------------------------


@pytest.mark.chaos
def test_clickhouse_over_its_memory_limit(tmp_path: Path) -> None:
    """The embedded server with a memory cap its inserts and merges cannot always fit in:
    MEMORY_LIMIT_EXCEEDED is retried (and spilled), never dead-lettered."""
    env = dict(FAST_RETRY, OTELINGEST_CLICKHOUSE_EMBEDDED_MAX_MEMORY_MIB="200", OTELINGEST_SPILL_AFTER_S="2")
    d = Daemon(tmp_path / "daemon", env=env)
    d.start()
    senders: list[ProtoSender] = []
    try:
        with explain_on_failure(d):
            senders = start_senders(d, "memory", spans=512, pause_s=0.0)
            deadline = time.monotonic() + 120
            while "MEMORY_LIMIT_EXCEEDED" not in d.log_text() and time.monotonic() < deadline:
                time.sleep(0.5)
            hit = "MEMORY_LIMIT_EXCEEDED" in d.log_text()
            acked = sum(s.stop() for s in senders)
            counts = wait_stored(d, "memory", acked, timeout=240)
            report("clickhouse-memory-limit", acked, counts, senders, f"memory_limit_exceeded_seen={hit}")
            assert hit, d.log_tail()
            assert counts == (acked, acked)
            assert d.metric("otel_storage_writes_total", status="dead_letter") == 0
            assert_tables_readable(d)
    finally:
        for s in senders:
            s.stop()
        d.stop()


# --- 4. ClickHouse slow but up ------------------------------------------------------------------------


@pytest.mark.chaos
def test_slow_clickhouse_backpressure_within_memory_limits(tmp_path: Path, clickhouse: EmbeddedClickHouse) -> None:
    """Every INSERT held 3 s by a proxy: the rings fill, the memory limiter refuses, nothing is lost
    and the pipeline's data never goes over the hard limit."""
    proxy = DelayingProxy(clickhouse.http_port, delay_s=3.0)
    proxy.start()
    db = f"t_{uuid.uuid4().hex[:12]}"
    hard_mib = 48
    env = dict(FAST_RETRY, OTELINGEST_WRITER_RING_MIB="8", OTELINGEST_MEMORY_HARD_LIMIT_MIB=str(hard_mib),
               OTELINGEST_MEMORY_RSS_LIMIT_MIB="100000", OTELINGEST_SPILL_AFTER_S="1000",
               OTELINGEST_CLICKHOUSE_QUERY_TIMEOUT_S="60")
    d = Daemon(tmp_path / "daemon", clickhouse_url=f"http://127.0.0.1:{proxy.port}", database=db, env=env)
    d.start()
    senders: list[ProtoSender] = []
    peak = 0.0
    try:
        with explain_on_failure(d):
            senders = start_senders(d, "slow", spans=200, pause_s=0.0)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                data = d.metric("otel_memory_usage_bytes", kind="data")
                peak = max(peak, data)
                time.sleep(0.25)
            acked = sum(s.stop() for s in senders)
            counts = wait_stored(d, "slow", acked, timeout=240)
            report("slow-clickhouse", acked, counts, senders,
                   f"inserts_delayed={proxy.delayed}, peak_data_mib={peak / 2**20:.1f}, hard_limit_mib={hard_mib}")
            assert proxy.delayed > 0
            assert sum(s.refused for s in senders) > 0  # backpressure reached the clients
            assert peak <= hard_mib * 2**20 * 1.5  # rings + batches: the hard limit plus one batch per insert worker
            assert counts == (acked, acked)
            assert_tables_readable(d)
    finally:
        for s in senders:
            s.stop()
        d.stop()
        proxy.stop()
