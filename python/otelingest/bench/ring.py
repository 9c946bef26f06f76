"""Ring throughput through the Python API: one producer process, one consumer (this process).

Not a test (no timed assertions). Run with the release build (`make install`):
    .venv/bin/python -m otelingest.bench.ring [--record-kib 64] [--count 20000] [--ring-mib 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from otelingest._native import RingConsumer, RingFile

PRODUCER = """
import sys, time
from otelingest._native import RingProducer
ring = RingProducer.attach(sys.argv[1])
record = b"\\x5a" * int(sys.argv[2])
for _ in range(int(sys.argv[3])):
    while not ring.try_push(record):
        time.sleep(0)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--record-kib", type=int, default=64)
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--ring-mib", type=int, default=64)
    args = ap.parse_args()
    size = args.record_kib * 1024
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    path = os.path.join(base, f"otelingest-bench-ring-{os.getpid()}")
    RingFile.create(path, args.ring_mib << 20).close()
    ring = RingConsumer.attach(path)
    try:
        producer = subprocess.Popen([sys.executable, "-c", PRODUCER, path, str(size), str(args.count)])
        n = 0
        started = None
        while n < args.count:
            got = ring.read()
            if got is None:
                continue
            if started is None:
                started = time.perf_counter()  # from the first record: excludes interpreter start-up
            end, record = got
            assert len(record) == size
            n += 1
            if n % 64 == 0 or n == args.count:
                ring.release(end)
        assert started is not None
        secs = time.perf_counter() - started
        producer.wait()
        rate = (n - 1) / secs
        print(f"{n} records of {size} B: {rate:,.0f} records/s, {rate * size / 1e6:,.0f} MB/s (Python API, 2 processes)")
    finally:
        ring.close()
        os.unlink(path)


if __name__ == "__main__":
    main()
