"""The spill queue: order, persistence, budget, torn and corrupt segments, exactly-once replay."""

import json
import os

import pytest

from otelingest.ingest.spill import SpillFull, SpillQueue
from otelingest.ingest.spill.record import HEADER_SIZE


def drain(q: SpillQueue) -> list[tuple[str, str, int, bytes]]:
    out = []
    while (b := q.peek()) is not None:
        out.append((b.table, b.token, b.items, b.payload))
        q.ack(b)
    return out


def fill(q: SpillQueue, n: int, size: int = 100) -> list[tuple[str, str, int, bytes]]:
    sent = []
    for i in range(n):
        payload = bytes([i % 251]) * size
        q.append("otel_traces" if i % 2 else "otel_logs", f"tok-{i}", i + 1, [payload[: size // 2], payload[size // 2:]])
        sent.append(("otel_traces" if i % 2 else "otel_logs", f"tok-{i}", i + 1, payload))
    return sent


@pytest.mark.parametrize("fsync", ["always", "batch", "never"])
def test_fifo_across_segments_and_restarts(tmp_path, fsync):
    q = SpillQueue(tmp_path, budget_bytes=10**7, fsync=fsync, segment_max_bytes=1000)
    sent = fill(q, 30)
    assert len(list(tmp_path.glob("seg-*.spill"))) > 3
    first = q.peek()
    q.ack(first)
    # A crash (no close) and a restart: everything not acknowledged is replayed, in order.
    q2 = SpillQueue(tmp_path, budget_bytes=10**7, fsync=fsync, segment_max_bytes=1000)
    assert drain(q2) == sent[1:]
    assert q2.stats.replayed_items == sum(s[2] for s in sent[1:])
    assert len(q2) == 0 and q2.peek() is None
    # Stored segments are deleted; a third start has nothing to replay.
    assert list(tmp_path.glob("seg-*.spill")) == []
    q2.close()
    assert SpillQueue(tmp_path, budget_bytes=10**7).peek() is None


def test_appends_after_restart_go_to_a_new_segment(tmp_path):
    q = SpillQueue(tmp_path, budget_bytes=10**7)
    fill(q, 2)
    seg_before = sorted(tmp_path.glob("seg-*.spill"))
    q2 = SpillQueue(tmp_path, budget_bytes=10**7)
    q2.append("otel_logs", "late", 1, [b"x"])
    assert len(sorted(tmp_path.glob("seg-*.spill"))) == len(seg_before) + 1
    assert [b[1] for b in drain(q2)] == ["tok-0", "tok-1", "late"]


def test_interleaved_append_and_replay(tmp_path):
    q = SpillQueue(tmp_path, budget_bytes=10**7, segment_max_bytes=500)
    got = []
    for i in range(50):
        q.append("t", f"k{i}", 1, [b"p" * 64])
        if i % 3 == 0:
            b = q.peek()
            got.append(b.token)
            q.ack(b)
    got += [b[1] for b in drain(q)]
    assert got == [f"k{i}" for i in range(50)]


def test_torn_tail_is_quarantined_and_the_rest_replays(tmp_path):
    q = SpillQueue(tmp_path, budget_bytes=10**7)
    sent = fill(q, 3, size=1000)
    q.close()
    seg = sorted(tmp_path.glob("seg-*.spill"))[-1]
    # A crash mid-write: the last record lost its last 300 bytes.
    os.truncate(seg, seg.stat().st_size - 300)
    q2 = SpillQueue(tmp_path, budget_bytes=10**7)
    assert drain(q2) == sent[:2]
    assert q2.stats.quarantined_regions == 1
    quarantined = list((tmp_path / "quarantine").iterdir())
    assert len(quarantined) == 1 and quarantined[0].stat().st_size == q2.stats.quarantined_bytes > 0


def test_corrupt_record_in_the_middle_is_skipped_not_blocking(tmp_path):
    q = SpillQueue(tmp_path, budget_bytes=10**7)
    sent = fill(q, 3, size=1000)
    q.close()
    seg = sorted(tmp_path.glob("seg-*.spill"))[0]
    data = bytearray(seg.read_bytes())
    sizes = [HEADER_SIZE + len(t) + len(k) + len(p) for t, k, _, p in sent]
    assert sum(sizes) == len(data)
    data[sizes[0] + HEADER_SIZE + 40] ^= 0xFF  # a flipped bit in record 2
    seg.write_bytes(bytes(data))
    q2 = SpillQueue(tmp_path, budget_bytes=10**7)
    assert drain(q2) == [sent[0], sent[2]]
    assert q2.stats.quarantined_regions == 1
    assert q2.stats.quarantined_bytes == sizes[1]


def test_budget_refuses_then_frees(tmp_path):
    q = SpillQueue(tmp_path, budget_bytes=5000, segment_max_bytes=1200)
    with pytest.raises(SpillFull):
        for i in range(100):
            q.append("t", f"k{i}", 1, [b"z" * 1000])
    n = q.stats.spilled_batches
    assert n == 4 and q.used_bytes <= 5000
    # Replaying frees whole segments, and appends work again.
    for _ in range(2):
        q.ack(q.peek())
    q.append("t", "after", 1, [b"z" * 1000])
    assert [b[1] for b in drain(q)][-1] == "after"


def test_acks_must_be_in_order(tmp_path):
    q = SpillQueue(tmp_path, budget_bytes=10**6)
    fill(q, 2)
    first = q.peek()
    q.ack(first)
    with pytest.raises(ValueError):
        q.ack(first)


def test_torn_ledger_replays_from_the_oldest_segment(tmp_path):
    q = SpillQueue(tmp_path, budget_bytes=10**6)
    sent = fill(q, 3)
    q.ack(q.peek())
    q.close()
    (tmp_path / "ledger.json").write_text('{"segm')
    # Nothing lost; the already stored batch comes again and its token deduplicates it.
    assert drain(SpillQueue(tmp_path, budget_bytes=10**6)) == sent
    assert json.loads((tmp_path / "ledger.json").read_text())["offset"] >= 0


def test_replayed_batch_is_stored_exactly_once(migrated, ch_client, tmp_path):
    """A batch inserted, then replayed after a crash with the same token, is stored once."""
    db = migrated.clickhouse.database
    block = ch_client.raw_query(
        "SELECT toDateTime64('2026-11-24 10:00:00', 9) + toIntervalSecond(number) AS Timestamp, "
        "'svc' AS ServiceName, concat('line ', toString(number)) AS Body FROM numbers(100)",
        fmt="Native",
    )
    q = SpillQueue(tmp_path, budget_bytes=10**7)
    q.append("otel_logs", "writer1-batch42", 100, [block])
    settings = {"insert_deduplication_token": "writer1-batch42", "deduplicate_blocks_in_dependent_materialized_views": 1}
    b = q.peek()
    ch_client.raw_insert(f"{db}.{b.table}", insert_block=b.payload, fmt="Native", settings=settings)
    # Crash before the ack: the restarted writer replays the same batch.
    b2 = SpillQueue(tmp_path, budget_bytes=10**7).peek()
    assert (b2.token, b2.payload) == (b.token, b.payload)
    ch_client.raw_insert(f"{db}.{b2.table}", insert_block=b2.payload, fmt="Native", settings=settings)
    assert ch_client.query(f"SELECT count(), uniqExact(Body) FROM {db}.otel_logs").result_rows == [(100, 100)]


def test_free_space_floor_refuses_before_the_disk_does(tmp_path):
    """``room`` (otelingest.daemon.diskfloor.SpillRoom in the writer) vetoes an append: SpillFull, nothing written."""
    short = {"why": None}
    q = SpillQueue(tmp_path, budget_bytes=10**7, room=lambda size: short["why"])
    sent = fill(q, 2)
    short["why"] = "spill floor: 10 MiB free"
    with pytest.raises(SpillFull, match="spill floor"):
        fill(q, 1)
    short["why"] = None
    assert drain(q) == sent


def test_enospc_mid_record_leaves_no_torn_bytes_before_the_next_record(tmp_path, monkeypatch):
    """A write failing part-way (ENOSPC) raises to the caller, which keeps the batch; the partial
    bytes are cut off, so the next append and the replay see only whole records."""
    import errno

    q = SpillQueue(tmp_path, budget_bytes=10**7)
    sent = fill(q, 1)
    real_writev = os.writev

    def half_then_enospc(fd, parts):
        data = b"".join(parts)
        real_writev(fd, [data[: len(data) // 2]])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", half_then_enospc)
    with pytest.raises(OSError):
        q.append("otel_traces", "tok-torn", 5, [b"y" * 200])
    monkeypatch.setattr(os, "writev", real_writev)
    q.append("otel_traces", "tok-after", 7, [b"z" * 200])
    assert drain(q) == sent + [("otel_traces", "tok-after", 7, b"z" * 200)]
    assert q.stats.quarantined_regions == 0
