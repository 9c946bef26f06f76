"""The writer's batch ledger: which records each unfinished batch holds, and its token.

A small JSON file in ``data_dir/run`` (one per writer index, so a replacement writer at the same
index finds it), rewritten atomically (temp file + rename) on every change:

    {"version": 1, "next_seq": N, "batches": [{"seq", "token", "ends": {ring: offset}, "done"}]}

Lifecycle of an entry: added when a batch is sealed, BEFORE its first INSERT; ``done`` once every
table of it is stored (or dead-lettered); removed once its rings are released. The file is not
fsynced: it guards against a writer process dying, and the rings it describes live in memory-mapped
files with the same durability.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

VERSION = 1


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.batches: list[dict] = []
        self.next_seq = 1
        if self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("version") != VERSION:
                raise ValueError(f"{self.path}: unknown ledger version {data.get('version')!r}")
            self.batches = data["batches"]
            self.next_seq = int(data["next_seq"])

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"version": VERSION, "next_seq": self.next_seq, "batches": self.batches}))
        os.replace(tmp, self.path)

    def take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def add(self, entry: dict) -> None:
        self.batches.append(dict(entry, done=False))
        self._save()

    def mark_done(self, seq: int) -> None:
        for b in self.batches:
            if b["seq"] == seq:
                b["done"] = True
        self._save()

    def remove(self, seq: int) -> None:
        self.batches = [b for b in self.batches if b["seq"] != seq]
        self._save()


def pending_batches(path: Path) -> int:
    """How many unfinished batches the ledger at ``path`` holds (0 when it cannot be read)."""
    try:
        return len(json.loads(Path(path).read_text()).get("batches") or [])
    except (OSError, ValueError, AttributeError):
        return 0
