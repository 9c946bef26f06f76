"""The run directory (``data_dir/run``) shared by the supervisor and its children.

    run/worker.json          effective config + layout, written by the supervisor (mode 0600)
    run/status               the shared status page (:mod:`otelingest.daemon.flags`)
    run/rings/r<i>-w<j>.ring the ring from receiver i to writer j (owned by the supervisor)
    run/writer-<j>.ledger    writer j's batch ledger (:mod:`otelingest.ingest.writer.ledger`)
    run/metrics/             prometheus-client multiprocess files
    run/boot-failure         why a worker could not boot (one line), read by the supervisor

Rings live in the data directory rather than /dev/shm so that records still unstored when the
daemon stops (ClickHouse down at shutdown) are found by the next start.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ..config import Config


@dataclass(frozen=True)
class Layout:
    run_dir: Path
    receivers: int
    writers: int

    @property
    def status_path(self) -> Path:
        return self.run_dir / "status"

    @property
    def boot_failure_path(self) -> Path:
        return self.run_dir / "boot-failure"

    def ring_path(self, receiver: int, writer: int) -> Path:
        return self.run_dir / "rings" / f"r{receiver}-w{writer}.ring"

    def ledger_path(self, writer: int) -> Path:
        return self.run_dir / f"writer-{writer}.ledger"

    def receiver_slot(self, i: int) -> int:
        return i

    def writer_slot(self, j: int) -> int:
        return self.receivers + j

    @property
    def query_slot(self) -> int:
        return self.receivers + self.writers

    @property
    def slots(self) -> int:
        return self.receivers + self.writers + 1


def write_worker_file(run_dir: Path, cfg: Config, layout: Layout) -> Path:
    path = run_dir / "worker.json"
    tmp = run_dir / "worker.json.tmp"
    data = {"config": cfg.to_dict(), "receivers": layout.receivers, "writers": layout.writers}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    return path


def read_worker_file(run_dir: Path) -> tuple[Config, Layout]:
    data = json.loads((run_dir / "worker.json").read_text())
    cfg = msgspec.convert(data["config"], Config)
    return cfg, Layout(run_dir, int(data["receivers"]), int(data["writers"]))
