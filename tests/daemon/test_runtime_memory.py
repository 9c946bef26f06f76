"""Memory limiter decisions (with a swapped reader) and the shared status page they drive."""

from __future__ import annotations

from pathlib import Path

from otelingest.config import MIB, MemoryConfig
from otelingest.daemon.memory import MemoryLimiter
from otelingest.daemon.flags import PAUSE_WRITERS, REFUSE, StatusPage


def test_soft_limit_refuses_hard_limit_pauses_writers() -> None:
    reading = {"data": 0, "rss": 0}
    limiter = MemoryLimiter(MemoryConfig(hard_limit_mib=100, spike_percent=20), lambda: (reading["data"], reading["rss"]))
    assert (limiter.soft, limiter.hard) == (80 * MIB, 100 * MIB)
    d = limiter.tick()
    assert (d.refuse, d.pause_writers) == (False, False)
    reading["data"] = 80 * MIB
    d = limiter.tick()
    assert (d.refuse, d.pause_writers) == (True, False)
    reading["data"] = 100 * MIB
    d = limiter.tick()
    assert (d.refuse, d.pause_writers) == (True, True)
    reading["data"] = 79 * MIB
    d = limiter.tick()
    assert (d.refuse, d.pause_writers) == (False, False)


def test_worker_rss_refuses_at_its_own_limit() -> None:
    limiter = MemoryLimiter(MemoryConfig(hard_limit_mib=100, rss_limit_mib=500), lambda: (0, 499 * MIB))
    assert not limiter.tick().refuse
    limiter.reader = lambda: (0, 500 * MIB)
    d = limiter.tick()
    assert d.refuse and not d.pause_writers


def test_status_page_flags_and_slots_are_shared(tmp_path: Path) -> None:
    owner = StatusPage.create(tmp_path / "status", slots=3)
    worker = StatusPage.attach(tmp_path / "status")
    assert not worker.refuse and not worker.pause_writers and not worker.storage_ready
    owner.set_flag(REFUSE, True)
    owner.set_flag(PAUSE_WRITERS, True)
    assert worker.refuse and worker.pause_writers
    worker.beat(2, held_bytes=1234)
    beat, held = owner.slot(2)
    assert held == 1234 and beat > 0
    owner.set_flag(REFUSE, False)
    assert not worker.refuse


FAULTS = """
import resource, sys
from otelingest.daemon.process import keep_freed_memory
ok = keep_freed_memory() if sys.argv[1] == "keep" else None
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    blocks = [bytes(1 << 20) for _ in range(4)]  # four request-sized buffers in flight, then freed
    del blocks
print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_freed_request_buffers_are_reused_not_mapped_again() -> None:
    import subprocess
    import sys

    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True).stdout
        ok, n = out.split()
        return ok, int(n)

    ok, kept = faults("keep")
    _, default = faults("default")
    assert ok == "True"
    # glibc's defaults hand the 4 MB back after each round and fault it in again (a fault per 4 KB
    # page, about 10,000 in all); kept, only the first round faults.
    assert kept < 2_000 and kept * 4 < default, (kept, default)
