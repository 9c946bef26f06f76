"""The shared-memory ring across threads and processes: no loss, no corruption, crash recovery.

One producer and one consumer per ring, each a type of its own (RingProducer, RingConsumer).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, Sequence

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from otelingest import _native
from otelingest._native import RecordTooLarge, RingBusy, RingConsumer, RingError, RingFile, RingProducer
from ring_worker import check_record, make_record

WORKER = str(Path(__file__).resolve().parents[1] / "helpers" / "ring_worker.py")
# Safety net for loops waiting on child processes (pytest-timeout is the hard limit).
DEADLINE_S = 60


@pytest.fixture
def ring_path(tmp_path: Path) -> Iterator[str]:
    """A fresh ring file name under /dev/shm (where the daemon puts rings), else tmp_path."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    path = base / f"otelingest-test-ring-{uuid.uuid4().hex[:12]}"
    yield str(path)
    path.unlink(missing_ok=True)


def ends(path: str | Path, capacity: int) -> tuple[RingProducer, RingConsumer]:
    """Create the ring file and attach both of its ends in this process."""
    RingFile.create(path, capacity).close()
    return RingProducer.attach(path), RingConsumer.attach(path)


def spawn(*args: object, stdout: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, WORKER, *map(str, args)], stdout=stdout)


def drain(ring: RingConsumer, expected: int, procs: Sequence[subprocess.Popen[bytes]] = ()) -> list[tuple[int, int]]:
    """Read (and release) until `expected` records arrived; checks every record's checksum."""
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(seen) < expected:
        got = ring.read()
        if got is None:
            for p in procs:
                assert p.poll() in (None, 0), f"worker exited with {p.returncode}"
            assert time.monotonic() < deadline, f"only {len(seen)} of {expected} records arrived"
            time.sleep(0.001)
            continue
        end, record = got
        seen.append(check_record(record))
        ring.release(end)
    return seen


def read1(ring: RingConsumer) -> tuple[int, bytes]:
    got = ring.read()
    assert got is not None, "expected a record"
    return got


def by_producer(seen: list[tuple[int, int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for producer, seq in seen:
        out.setdefault(producer, []).append(seq)
    return out


def test_push_read_release_full_and_wrap(ring_path: str) -> None:
    producer, ring = ends(ring_path, 4096)
    assert (RingFile.attach(ring_path).capacity, producer.max_record, producer.used_bytes) == (4096, 2040, 0)
    assert (ring.used_bytes, ring.pending_bytes) == (0, 0)
    record = bytes(range(100))  # 8-byte header + 104 bytes padded = 112 bytes in the ring
    pushed = 0
    while producer.try_push(record):
        pushed += 1
    assert pushed == 36
    assert producer.used_bytes == ring.used_bytes == ring.pending_bytes == 36 * 112
    assert ring.read() == (112, record)
    assert ring.pending_bytes == 35 * 112
    assert not producer.try_push(record), "read but not released space is still in use"
    ring.release(112)
    assert ring.used_bytes == 35 * 112
    wraps = bytes(range(100, 200))
    assert producer.try_push(wraps), "fits in the freed head after padding the tail"
    offsets = []
    while (got := ring.read()) is not None:
        offsets.append(got[0])
        last = got[1]
    assert len(offsets) == 36 and last == wraps
    assert offsets[-2:] == [4032, 4096 + 112]  # the 64-byte tail of the first lap became padding
    ring.release(offsets[-1])
    assert ring.used_bytes == 0 and ring.pending_bytes == 0


def test_bytes_like_inputs_and_parts(ring_path: str) -> None:
    import array

    producer, ring = ends(ring_path, 8192)
    assert producer.try_push(bytearray(b"ba"))
    assert producer.try_push(memoryview(b"xxmvxx")[2:4])
    assert producer.try_push(array.array("I", [1]))
    assert producer.try_push(b"")
    assert producer.try_push_parts([b"env|", memoryview(b"block1|"), bytearray(b"block2")])
    assert producer.try_push_parts([])
    got = []
    while (r := ring.read()) is not None:
        got.append(r[1])
    assert got == [b"ba", b"mv", (1).to_bytes(4, sys.byteorder), b"", b"env|block1|block2", b""]
    with pytest.raises(TypeError):
        producer.try_push("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="contiguous"):
        producer.try_push(memoryview(b"abcdef")[::2])


def test_too_large_is_an_error_not_full(ring_path: str) -> None:
    ring, _ = ends(ring_path, 8192)
    with pytest.raises(RecordTooLarge, match="4089 bytes"):
        ring.try_push(b"x" * 4089)
    with pytest.raises(RecordTooLarge):
        ring.try_push_parts([b"x" * 4000, b"y" * 100])
    assert ring.try_push(b"x" * 4088) and ring.try_push(b"x" * 4088)  # 2 x 4096 bytes: exactly full
    assert not ring.try_push(b""), "full, not an error"
    assert isinstance(RecordTooLarge("x"), ValueError)
    assert issubclass(RingError, ValueError), "callers catch (OSError, ValueError) around attach"


def test_rewind_release_rules_and_single_consumer(ring_path: str) -> None:
    producer, ring = ends(ring_path, 8192)
    for i in range(5):
        assert producer.try_push(bytes([i]) * 10)
    end0, _ = read1(ring)
    ring.read()
    ring.release(end0)
    assert ring.release_offset == end0
    ring.rewind()
    assert read1(ring)[1] == bytes([1]) * 10, "rewind restarts at the release cursor"
    with pytest.raises(ValueError, match="beyond the read cursor"):
        ring.release(10_000)  # beyond what was read
    ring.release(0)  # behind the release cursor: already released, a no-op
    assert ring.release_offset == end0
    with pytest.raises(RingError, match="live consumer"):
        RingConsumer.attach(ring_path)
    assert RingFile.attach(ring_path).release_offset == end0, "a role-free handle needs no role"
    ring.close()
    other = RingConsumer.attach(ring_path)
    assert read1(other)[1] == bytes([1]) * 10, "after close, a new consumer resumes at the release cursor"
    with pytest.raises(ValueError, match="closed"):
        ring.read()
    with pytest.raises(ValueError, match="closed"):
        _ = ring.used_bytes
    producer.close()
    with pytest.raises(ValueError, match="closed"):
        producer.try_push(b"x")
    other.close()


def test_roles_are_types_and_each_has_one_holder(ring_path: str) -> None:
    producer, consumer = ends(ring_path, 8192)
    assert not hasattr(consumer, "try_push") and not hasattr(consumer, "try_push_parts"), "a consumer cannot push"
    assert not any(hasattr(producer, m) for m in ("read", "release", "rewind")), "a producer cannot read"
    assert not any(hasattr(RingFile.attach(ring_path), m) for m in ("try_push", "read", "release"))
    assert issubclass(RingBusy, RingError)
    with pytest.raises(RingBusy, match="live producer"):
        RingProducer.attach(ring_path)
    with pytest.raises(RingBusy, match="live consumer"):
        RingConsumer.attach(ring_path)
    producer.close()
    consumer.close()
    # A role held by another process: refused while it lives, free once it is killed.
    child = spawn("hang", ring_path, 100, "reserved", stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        with pytest.raises(RingBusy, match="live producer"):
            RingProducer.attach(ring_path)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert RingProducer.attach(ring_path).try_push(b"after the holder died")
    # The crash-test hook is not part of the module's API.
    assert not any("debug" in name or name == "abandon_push" for name in dir(_native))


def test_open_or_create_keeps_unreleased_records_across_restarts(ring_path: str) -> None:
    RingFile.open_or_create(ring_path, 8192).close()
    producer = RingProducer.attach(ring_path)
    assert producer.try_push(b"acknowledged, not yet stored")
    producer.close()
    # The whole daemon restarts (even with a new configured size): the record is still there.
    assert RingFile.open_or_create(ring_path, 16384).capacity == 8192
    ring = RingConsumer.attach(ring_path)
    end, record = read1(ring)
    assert record == b"acknowledged, not yet stored"
    ring.release(end)
    ring.close()
    assert RingFile.open_or_create(ring_path, 16384).capacity == 16384, "empty: the new size applies"


def test_attach_refuses_corrupt_or_foreign_files(ring_path: str, tmp_path: Path) -> None:
    RingFile.create(ring_path, 4096).close()
    good = Path(ring_path).read_bytes()
    corruptions = {
        "magic": lambda b: b"X" + b[1:],
        "version": lambda b: b[:8] + (99).to_bytes(4, "little") + b[12:],
        "capacity": lambda b: b[:16] + (1 << 20).to_bytes(8, "little") + b[24:],
        "write cursor": lambda b: b[:64] + (1 << 40).to_bytes(8, "little") + b[72:],
        "release cursor": lambda b: b[:128] + (8).to_bytes(8, "little") + b[136:],
        "truncated": lambda b: b[:1000],
    }
    for what, corrupt in corruptions.items():
        Path(ring_path).write_bytes(corrupt(good))
        for cls in (RingFile, RingProducer, RingConsumer):
            with pytest.raises(RingError, match="corrupt"):
                cls.attach(ring_path)
        with pytest.raises(RingError, match="corrupt"):
            RingFile.open_or_create(ring_path, 4096)
    with pytest.raises(FileNotFoundError):
        RingFile.attach(tmp_path / "missing")
    with pytest.raises(ValueError, match="multiple of 8"):
        RingFile.create(ring_path, 1000)
    Path(ring_path).write_bytes(good)
    assert RingFile.attach(ring_path).capacity == 4096


def test_threads_push_concurrently_without_the_gil(ring_path: str) -> None:
    """A receiver's threads share its producer: pushes are serialized inside, none is lost."""
    shared, ring = ends(ring_path, 64 * 1024)
    per_thread, threads = 400, 4

    def produce(producer: int) -> None:
        rng = random.Random(producer)
        for seq in range(per_thread):
            record = make_record(producer, seq, rng.randint(0, 8000), rng)
            while not shared.try_push(record):
                time.sleep(0.0002)

    workers = [threading.Thread(target=produce, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    seen = drain(ring, per_thread * threads)
    for w in workers:
        w.join()
    assert by_producer(seen) == {i: list(range(per_thread)) for i in range(threads)}
    assert ring.read() is None and ring.used_bytes == 0


@pytest.mark.parametrize("where", ["shm", "data_dir"])
def test_producer_processes_and_one_consumer(ring_path: str, tmp_path: Path, where: str) -> None:
    """Producer processes, one after another (a receiver and its replacements), push random-size
    records through a small ring that wraps many times while a consumer reads, in /dev/shm and in
    a file on disk (the runtime keeps rings in the data dir)."""
    if where == "data_dir":
        ring_path = str(tmp_path / "r0-w0.ring")
    RingFile.create(ring_path, 128 * 1024).close()
    ring = RingConsumer.attach(ring_path)
    producers, count = 3, 400
    seen: list[tuple[int, int]] = []
    for i in range(producers):
        proc = spawn("produce", ring_path, i, count, 16 * 1024, 1000 + i)
        try:
            seen += drain(ring, count, [proc])
            assert proc.wait(DEADLINE_S) == 0
        finally:
            proc.kill()
            proc.wait()
    assert by_producer(seen) == {i: list(range(count)) for i in range(producers)}
    assert ring.read() is None and ring.pending_bytes == 0
    assert ring.release_offset > 10 * 128 * 1024, "the ring wrapped around many times"


def read_out(path: Path) -> list[tuple[int, int, int]]:
    if not path.exists():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]  # type: ignore[misc]


def test_consumer_killed_midway_next_consumer_resumes_without_loss(ring_path: str, tmp_path: Path) -> None:
    ring = RingFile.create(ring_path, 64 * 1024)
    producers, count = 1, 1000
    out1, out2, done = tmp_path / "out1", tmp_path / "out2", tmp_path / "producers-done"
    procs = [spawn("produce", ring_path, i, count, 4000, 2000 + i) for i in range(producers)]
    consumer1 = spawn("consume", ring_path, out1, done, 7)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while len(read_out(out1)) < 300:  # kill it mid-way, between releases
            assert consumer1.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        consumer1.send_signal(signal.SIGKILL)
        consumer1.wait()
        resume_at = ring.release_offset  # what the dead consumer had made durable
        consumer2 = spawn("consume", ring_path, out2, done, 5)
        assert [p.wait(DEADLINE_S) for p in procs] == [0] * producers
        done.touch()
        assert consumer2.wait(DEADLINE_S) == 0
    finally:
        for p in [*procs, consumer1]:
            p.kill()
            p.wait()
    first, second = read_out(out1), read_out(out2)
    delivered = {(producer, seq) for _, producer, seq in first + second}
    assert delivered == {(i, s) for i in range(producers) for s in range(count)}, "a record was lost"
    # The new consumer started exactly at the release cursor: everything the first one stored but
    # had not released is delivered again, nothing released is.
    assert all(end > resume_at for end, _, _ in second)
    redelivered = [(p, s) for end, p, s in first if end > resume_at]
    assert [(p, s) for _, p, s in second[: len(redelivered)]] == redelivered
    assert len(second) == len(delivered) - len(first) + len(redelivered), "no other duplicates"
    assert ring.used_bytes == 0


@pytest.mark.parametrize("stage", ["reserved", "header", "partial"])
def test_producer_killed_mid_write_is_skipped(ring_path: str, stage: str) -> None:
    """A producer killed mid-push: its record is never delivered, not a byte of it; the next
    producer (the receiver's replacement) carries on where the last published record ended."""
    producer, ring = ends(ring_path, 64 * 1024)
    rng = random.Random(3)
    for seq in range(50):
        assert producer.try_push(make_record(0, seq, rng.randint(0, 900), rng))
    producer.close()
    published = ring.pending_bytes
    dying = spawn("hang", ring_path, 700, stage, stdout=subprocess.PIPE)
    try:
        assert dying.stdout is not None and dying.stdout.readline() == b"ready\n"
        assert ring.pending_bytes == published, "the unfinished push is not visible"
        with pytest.raises(RingBusy):
            RingProducer.attach(ring_path)  # no second producer beside the stalled one
    finally:
        dying.kill()
        dying.wait()  # reaped: its pid is gone (a zombie counts as dead too)
        if dying.stdout is not None:
            dying.stdout.close()
    after = spawn("produce", ring_path, 1, 50, 900, 7)
    try:
        seen = drain(ring, 100, [after])
        assert after.wait(DEADLINE_S) == 0
    finally:
        after.kill()
        after.wait()
    assert by_producer(seen) == {0: list(range(50)), 1: list(range(50))}
    assert ring.read() is None and ring.used_bytes == 0
    # Space the abandoned record used is reusable.
    producer = RingProducer.attach(ring_path)
    big = b"z" * producer.max_record
    for _ in range(4):
        assert producer.try_push(big)
        end, got = read1(ring)
        assert got == big
        ring.release(end)


def test_producers_killed_at_random_lose_nothing_else(ring_path: str) -> None:
    """SIGKILL producer processes (one per ring, as receivers) at random moments during pushes,
    then start their replacements on the same rings: every record of the survivors and of the
    replacements arrives intact and in order; a killed producer's records are a gap-free prefix."""
    producers, count = 4, 300
    paths = [f"{ring_path}-{i}" for i in range(producers)]
    rings = []
    for path in paths:
        RingFile.create(path, 64 * 1024).close()
        rings.append(RingConsumer.attach(path))
    procs = [spawn("produce", paths[i], i, count, 6000, 3000 + i) for i in range(producers)]
    seen: list[tuple[int, int]] = []
    killed: set[int] = set()
    rng = random.Random(11)
    try:
        deadline = time.monotonic() + DEADLINE_S
        kill_after = {0: rng.randint(20, 200), 2: rng.randint(20, 200)}  # records read before the kill
        while True:
            idle = True
            for ring in rings:
                got = ring.read()
                if got is None:
                    continue
                idle = False
                end, record = got
                seen.append(check_record(record))
                ring.release(end)
            for victim, after in kill_after.items():
                if victim not in killed and len(seen) >= after:
                    procs[victim].send_signal(signal.SIGKILL)
                    procs[victim].wait()
                    killed.add(victim)
                    # The replacement resumes on the same ring, after the last published record.
                    procs.append(spawn("produce", paths[victim], 10 + victim, count, 6000, 4000 + victim))
            if idle:
                if all(p.poll() is not None for p in procs) and all(r.used_bytes == 0 for r in rings):
                    break
                assert time.monotonic() < deadline
                time.sleep(0.001)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for path in paths:
            Path(path).unlink(missing_ok=True)
    assert killed == {0, 2}
    delivered = by_producer(seen)
    for i in range(producers):
        seqs = delivered.get(i, [])
        if i in killed:
            assert seqs == list(range(len(seqs))), f"killed producer {i}: not a gap-free prefix"
            assert delivered.get(10 + i) == list(range(count)), f"replacement of producer {i} lost records"
        else:
            assert seqs == list(range(count)), f"surviving producer {i} lost records"


class RingModel(RuleBasedStateMachine):
    """Single-process semantics against a model of the documented arithmetic: a record takes
    8 + len rounded up to 8 bytes, never crosses the end of the data area (the tail is padded),
    and fits iff its end is within capacity of the release cursor."""

    CAPACITY = 4096

    def __init__(self) -> None:
        super().__init__()
        base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
        self.path = base / f"otelingest-test-ring-model-{uuid.uuid4().hex[:12]}"
        RingFile.create(self.path, self.CAPACITY).close()
        self.producer = RingProducer.attach(self.path)
        self.ring = RingConsumer.attach(self.path)
        self.reserve = 0
        self.release = 0
        self.records: list[tuple[int, bytes]] = []  # unreleased (end, payload), in order
        self.read_index = 0  # index into self.records of the next record to read
        self.n = 0

    def teardown(self) -> None:
        self.producer.close()
        self.ring.close()
        self.path.unlink(missing_ok=True)

    @rule(size=st.integers(0, 2100))
    def push(self, size: int) -> None:
        self.n += 1
        payload = self.n.to_bytes(4, "little") * (size // 4) + b"!" * (size % 4)
        if size > self.CAPACITY // 2 - 8:
            with pytest.raises(RecordTooLarge):
                self.producer.try_push(payload)
            return
        total = 8 + (size + 7) // 8 * 8
        off = self.reserve % self.CAPACITY
        start = self.reserve + (self.CAPACITY - off if off + total > self.CAPACITY else 0)
        fits = start + total - self.release <= self.CAPACITY
        assert self.producer.try_push(payload) == fits
        if fits:
            self.reserve = start + total
            self.records.append((self.reserve, payload))

    @rule()
    def read(self) -> None:
        got = self.ring.read()
        if self.read_index == len(self.records):
            assert got is None
        else:
            assert got == self.records[self.read_index]
            self.read_index += 1

    @rule(k=st.integers(0, 5))
    def release_read(self, k: int) -> None:
        k = min(k, self.read_index)
        if k == 0:
            return
        end = self.records[k - 1][0]
        self.ring.release(end)
        self.release = end
        del self.records[:k]
        self.read_index -= k

    @rule()
    def rewind(self) -> None:
        self.ring.rewind()
        self.read_index = 0

    @invariant()
    def metrics_match(self) -> None:
        assert self.ring.used_bytes == self.reserve - self.release
        unread = self.records[self.read_index :]
        assert self.ring.pending_bytes == sum(8 + (len(p) + 7) // 8 * 8 for _, p in unread)
        assert self.ring.release_offset == self.release


TestRingModel = RingModel.TestCase
TestRingModel.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)
