"""The run directory (``data_dir/run``) shared by the supervisor and its children.

    run/worker.json          effective config + layout, written by the supervisor (mode 0600)
    run/status               the shared status page (:mod:`otelingest.daemon.flags`)
    run/rings/r<i>-w<j>.ring the ring from receiver i to writer j (owned by the supervisor)
    run/writer-<j>.ledger    writer j's batch ledger (:mod:`otelingest.ingest.writer.ledger`)
    run/metrics/             prometheus-client multiprocess files
    run/boot-failure         why a worker could not boot (one line), read by the supervisor

Rings live in the data directory rather than /dev/shm so that records still unstored when the
daemon stops (ClickHouse down at shutdown) are found by the next start. This module is the only one
that knows these names.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import msgspec

from ..config import Config
from ..errors import BootError

log = logging.getLogger("otelingest.supervisor")

WORKER_FILE = "worker.json"
_RING_NAME = re.compile(r"^r(\d+)-w(\d+)\.ring$")
_LEDGER_NAME = re.compile(r"^writer-(\d+)\.ledger$")


def run_path(data_dir: Path) -> Path:
    return data_dir / "run"


def rings_path(run_dir: Path) -> Path:
    return run_dir / "rings"


def metrics_path(data_dir: Path) -> Path:
    """prometheus-client's multiprocess files, shared by every process of the daemon."""
    return run_path(data_dir) / "metrics"


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

    @property
    def rings_dir(self) -> Path:
        return rings_path(self.run_dir)

    def ring_path(self, receiver: int, writer: int) -> Path:
        return self.rings_dir / f"r{receiver}-w{writer}.ring"

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
    path = run_dir / WORKER_FILE
    tmp = run_dir / (WORKER_FILE + ".tmp")
    data = {"config": cfg.to_dict(), "receivers": layout.receivers, "writers": layout.writers}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    return path


def read_worker_file(run_dir: Path) -> tuple[Config, Layout]:
    data = json.loads((run_dir / WORKER_FILE).read_text())
    cfg = msgspec.convert(data["config"], Config)
    return cfg, Layout(run_dir, int(data["receivers"]), int(data["writers"]))


def ring_files(run_dir: Path) -> Iterator[tuple[int, int, Path]]:
    """(receiver, writer, path) of every ring file in the run directory."""
    for path in sorted(rings_path(run_dir).glob("r*-w*.ring")):
        m = _RING_NAME.match(path.name)
        if m:
            yield int(m.group(1)), int(m.group(2)), path


def ledger_files(run_dir: Path) -> Iterator[tuple[int, Path]]:
    """(writer, path) of every writer ledger in the run directory."""
    for path in sorted(run_dir.glob("writer-*.ledger")):
        m = _LEDGER_NAME.match(path.name)
        if m:
            yield int(m.group(1)), path


# Ring files of layout version 1 (the multi-producer ring of earlier releases): where the
# header keeps its magic, version and the reserve and release cursors.
_V1_MAGIC = b"OTIRING\0"
_V1_RESERVE_AT, _V1_RELEASE_AT = 64, 192


def _refuse_older_ring_with_records(path: Path) -> None:
    """This build cannot read a version-1 ring; one still holding records (an older daemon killed
    without draining) must not be recreated, which would drop what its clients were acknowledged."""
    try:
        with open(path, "rb") as f:
            head = f.read(_V1_RELEASE_AT + 8)
    except OSError:
        return
    if len(head) < _V1_RELEASE_AT + 8 or head[:8] != _V1_MAGIC or int.from_bytes(head[8:12], "little") != 1:
        return
    held = int.from_bytes(head[_V1_RESERVE_AT:_V1_RESERVE_AT + 8], "little") - \
        int.from_bytes(head[_V1_RELEASE_AT:_V1_RELEASE_AT + 8], "little")
    if held > 0:
        raise BootError(f"ring {path} was written by an older otelingest (ring layout 1) and still holds {held} "
                        "bytes of acknowledged, unstored records; start the previous release once and stop it with "
                        "SIGTERM (it drains the rings), or delete the file to discard them")


def open_rings(layout: Layout, capacity: int) -> list[Any]:
    """Every receiver->writer ring file of the layout: kept when a usable file is left from the
    last run (a replaced writer resumes from its release cursor), created otherwise
    (``RingFile.open_or_create``); a corrupt one is created afresh."""
    from .._native import RingError, RingFile

    rings = []
    for i in range(layout.receivers):
        for j in range(layout.writers):
            path = layout.ring_path(i, j)
            try:
                ring = RingFile.open_or_create(str(path), capacity)
                if ring.used_bytes:
                    log.info("ring %s holds %d bytes from the last run; writer %d will store them",
                             path.name, ring.used_bytes, j)
            except RingError as e:
                _refuse_older_ring_with_records(path)
                log.warning("ring %s unusable (%s); creating it afresh", path, e)
                ring = RingFile.create(str(path), capacity)
            rings.append(ring)
    return rings


def cover_leftovers(run_dir: Path, receivers: int, writers: int) -> tuple[int, int]:
    """Receiver and writer counts for this run: the configured ones, raised if the last run had more
    and left data in rings (or batches in writer ledgers) beyond them, so nothing acknowledged is
    stranded. The extra workers drain them like any other; the next start is back to the config."""
    from .._native import RingFile
    from ..ingest.writer.ledger import pending_batches

    want_r, want_w = receivers, writers
    for i, j, path in ring_files(run_dir):
        if i < receivers and j < writers:
            continue
        try:
            ring = RingFile.attach(str(path))
            held = ring.used_bytes
            ring.close()
        except (OSError, ValueError) as e:
            _refuse_older_ring_with_records(path)
            log.warning("ring %s from the last run unusable (%s); ignored", path, e)
            continue
        if held:
            want_r, want_w = max(want_r, i + 1), max(want_w, j + 1)
    for j, path in ledger_files(run_dir):
        if j >= writers and pending_batches(path):
            want_w = max(want_w, j + 1)
    if (want_r, want_w) != (receivers, writers):
        log.warning("the last run left unstored data for %d receiver(s) x %d writer(s); running that many this time "
                    "(configured %d x %d) so it is stored", want_r, want_w, receivers, writers)
    return want_r, want_w
