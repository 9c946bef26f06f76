"""Child processes for tests/ingest/test_ring.py: a producer, a consumer and a producer that dies mid-write.

Run as ``python ring_worker.py <role> <ring path> ...``. Records are self-checking:
``producer u32 | seq u64 | filler | blake2b-8 of everything before``.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import sys
import time

from otelingest._native import RingConsumer, RingProducer, testing

HEAD = struct.Struct("<IQ")
DIGEST = 8


def make_record(producer: int, seq: int, size: int, rng: random.Random) -> bytes:
    size = max(size, HEAD.size + DIGEST)
    body = HEAD.pack(producer, seq) + rng.randbytes(size - HEAD.size - DIGEST)
    return body + hashlib.blake2b(body, digest_size=DIGEST).digest()


def check_record(record: bytes) -> tuple[int, int]:
    """(producer, seq) of an intact record; AssertionError if it is torn or corrupt."""
    assert len(record) >= HEAD.size + DIGEST, f"record of {len(record)} bytes is too short"
    body, digest = record[:-DIGEST], record[-DIGEST:]
    assert hashlib.blake2b(body, digest_size=DIGEST).digest() == digest, "checksum mismatch"
    producer, seq = HEAD.unpack_from(record)
    return producer, seq


def produce(path: str, producer: int, count: int, max_size: int, seed: int) -> None:
    """Push `count` records of random sizes in order, retrying while the ring is full."""
    rng = random.Random(seed)
    ring = RingProducer.attach(path)
    for seq in range(count):
        record = make_record(producer, seq, rng.randint(0, max_size), rng)
        while not ring.try_push(record):
            time.sleep(0.0005)


def consume(path: str, out_path: str, done_flag: str, release_every: int) -> None:
    """A writer: "store" each record as a line in `out_path` (written before release, so it
    survives this process being killed), release every `release_every` records. Exits once
    `done_flag` exists (all producers finished) and nothing is left to read."""
    ring = RingConsumer.attach(path)
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    unreleased = 0
    end = None
    while True:
        done = os.path.exists(done_flag)  # checked before reading: set after producers exited
        got = ring.read()
        if got is None:
            if end is not None:
                ring.release(end)
                unreleased = 0
            if done:
                return
            time.sleep(0.001)
            continue
        end, record = got
        producer, seq = check_record(record)
        os.write(fd, f"{end} {producer} {seq}\n".encode())  # a syscall: durable once it returns
        unreleased += 1
        if unreleased >= release_every:
            ring.release(end)
            unreleased = 0


def hang(path: str, nbytes: int, stage: str) -> None:
    """Reserve a record, stop at `stage` as if killed there, say so, and wait to be killed."""
    ring = RingProducer.attach(path)
    assert testing.abandon_push(ring, nbytes, stage)
    print("ready", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    role, ring_path, *args = sys.argv[1:]
    if role == "produce":
        produce(ring_path, int(args[0]), int(args[1]), int(args[2]), int(args[3]))
    elif role == "consume":
        consume(ring_path, args[0], args[1], int(args[2]))
    elif role == "hang":
        hang(ring_path, int(args[0]), args[1])
    else:
        raise SystemExit(f"unknown role {role!r}")
