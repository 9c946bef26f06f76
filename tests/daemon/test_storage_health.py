"""The storage watcher's checks: detached (broken) parts are reported, never silent; the disk floor."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from daemon import Daemon
from otelingest.config import MIB
from otelingest.daemon.diskfloor import DiskWatch, SpillRoom, free_bytes
from otelingest.daemon.storagehealth import PartHealth
from otelingest.selfmon.gauges import gauge
from traffic import start_senders, wait_stored


def test_a_detached_part_is_logged_with_its_rows_and_counted(make_config, ch_client, caplog) -> None:
    cfg = make_config()
    db = cfg.clickhouse.database
    ch_client.command(f"CREATE DATABASE {db}")
    ch_client.command(f"CREATE TABLE {db}.otel_traces (x UInt64) ENGINE = MergeTree ORDER BY x")
    ch_client.command(f"INSERT INTO {db}.otel_traces SELECT number FROM numbers(1234)")
    part = ch_client.query(f"SELECT name FROM system.parts WHERE database = '{db}' AND active").result_rows[0][0]
    ch_client.command(f"ALTER TABLE {db}.otel_traces DETACH PART '{part}'")
    health = PartHealth(cfg)
    with caplog.at_level(logging.ERROR, logger="otelingest.storage"):
        assert health.check()
        assert health.check()  # reported once, not on every check
    lines = [r.getMessage() for r in caplog.records if "is detached" in r.getMessage()]
    assert len(lines) == 1, lines
    assert f"{db}.otel_traces/{part}" in lines[0] and "1234 rows missing" in lines[0]
    assert gauge("otel_clickhouse_detached_rows").labels("otel_traces")._value.get() == 1234
    health.close()


def test_disk_floor_reads_clickhouse_disks_and_the_spill_floor(make_config, tmp_path: Path) -> None:
    free = free_bytes(tmp_path)
    # A floor above the free space: low, with the reason naming the key.
    cfg = make_config(clickhouse={"min_free_disk_mib": free // MIB + 1024})
    watch = DiskWatch(cfg)
    r = watch.check(reachable=True)
    assert r.low and "clickhouse.min_free_disk_mib" in r.reason and r.unreserved is not None
    watch.close()
    ok = DiskWatch(make_config(clickhouse={"min_free_disk_mib": 1})).check(reachable=True)
    assert not ok.low
    room = SpillRoom(make_config(spill={"min_free_disk_mib": free // MIB + 1024}), tmp_path)
    assert "spill.min_free_disk_mib" in (room.check(100) or "")
    assert SpillRoom(make_config(spill={"min_free_disk_mib": 1}), tmp_path).check(100) is None


def test_a_part_broken_on_disk_is_reported_after_the_restart(tmp_path: Path) -> None:
    """A part damaged while the daemon was down (an empty marks file, as ENOSPC leaves it):
    ClickHouse sets it aside on start; the daemon logs the table, the part and the rows missing,
    and ``otelingest status`` shows it."""
    d = Daemon(tmp_path)
    d.start()
    try:
        senders = start_senders(d, "broken", n=1, spans=50)
        time.sleep(2)
        acked = sum(s.stop() for s in senders)
        assert wait_stored(d, "broken", acked)[0] == acked
        (path,) = d.client().query(
            "SELECT path FROM system.parts WHERE database = 'otel' AND table = 'otel_traces' AND active "
            "ORDER BY rows DESC LIMIT 1").result_rows[0]
    finally:
        d.stop()
    marks = [p for p in Path(path).iterdir() if ".mrk" in p.name or ".cmrk" in p.name]  # wide or compact part
    assert marks, list(Path(path).iterdir())
    marks[0].write_bytes(b"")
    d2 = Daemon(tmp_path)
    d2.start()
    try:
        deadline = time.monotonic() + 60
        while "is detached (broken" not in d2.log_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        line = next(ln for ln in d2.log_text().splitlines() if "is detached (broken" in ln)
        assert "otel.otel_traces/broken" in line and "rows missing" in line
        assert d2.metric("otel_clickhouse_detached_parts", table="otel_traces") >= 1
        assert d2.metric("otel_clickhouse_detached_rows", table="otel_traces") > 0
    finally:
        d2.stop()


def test_external_clickhouse_under_the_floor_refuses_with_503_and_says_why(tmp_path: Path, clickhouse) -> None:
    """An external ClickHouse (system.disks) whose disk is under clickhouse.min_free_disk_mib: every
    request gets 503 + Retry-After, /ready 503 with the reason; nothing is taken in."""
    import http.client
    import json
    import urllib.error
    import uuid

    from traffic import traces_protobuf

    huge = free_bytes(tmp_path) // MIB + 10 * 1024
    d = Daemon(tmp_path, clickhouse_url=clickhouse.url, database=f"t_{uuid.uuid4().hex[:12]}",
               env={"OTELINGEST_CLICKHOUSE_MIN_FREE_DISK_MIB": str(huge), "OTELINGEST_RECEIVER_RETRY_AFTER_S": "7"})
    d.start(wait_ready=False)
    try:
        deadline = time.monotonic() + 120
        reason = ""
        while "disk space low" not in reason and time.monotonic() < deadline:
            time.sleep(0.3)
            try:
                urllib.request.urlopen(d.metrics_url + "/ready", timeout=5)
                raise AssertionError("/ready answered 200 under the floor")
            except urllib.error.HTTPError as e:
                assert e.code == 503
                reason = json.loads(e.read())["reason"]
            except urllib.error.URLError:
                pass  # not listening yet
        assert "disk space low" in reason and "clickhouse.min_free_disk_mib" in reason, reason
        conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=30)
        conn.request("POST", "/v1/traces", body=traces_protobuf("floor", 1, 3), headers={"Content-Type": "application/x-protobuf"})
        r = conn.getresponse()
        r.read()
        conn.close()
        assert r.status == 503 and r.getheader("Retry-After") == "7"
        assert d.metric("otel_refused_total", reason="disk") >= 1
        assert d.metric("otel_received_spans_total") == 0
    finally:
        d.stop()
