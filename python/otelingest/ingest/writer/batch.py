"""Batches: records taken from a writer's rings, grouped per table into one INSERT body each.

A batch spans every ring of the writer: for each ring it holds the records from that ring's
release cursor up to an end offset. Bodies are concatenated in a fixed order (ring index, then ring
order), so the same records always give byte-identical bodies; that is what lets a replay after a
crash reuse the batch's ``insert_deduplication_token`` (see :mod:`otelingest.ingest.writer.service`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import frame

# A batch also seals on size, so a burst of wide rows never builds an unbounded INSERT.
BATCH_MAX_BYTES = 64 << 20
# Narrow rows count as a fraction of an item toward writer.batch_max_items, which is sized for
# otel_metrics-wide rows: a remote-written sample (otel_prom_samples, ~40 bytes of Native block
# against ~430 for an otel_metrics row) at 10,000 per INSERT made the INSERT's fixed cost the limit
# (docs/promql.md "Throughput").
ROWS_PER_ITEM = {"otel_prom_samples": 10}


@dataclass
class TableBatch:
    table: str
    rows: int
    # The body's blocks in order, not joined: the inserter compresses them one by one, and the
    # join was a quarter of the writer's own CPU at full load (docs/benchmarks.md, issue 20).
    parts: list[bytes | memoryview]


@dataclass
class SealedBatch:
    seq: int
    token: str
    ends: dict[int, int]  # ring index -> end offset of the batch's last record from that ring
    tables: dict[str, TableBatch]
    nbytes: int

    def ledger_entry(self) -> dict:
        return {"seq": self.seq, "token": self.token, "ends": {str(k): v for k, v in self.ends.items()}}


@dataclass
class OpenBatch:
    """Records taken from the rings since the last seal."""

    max_items: int
    timeout_s: float
    max_bytes: int = BATCH_MAX_BYTES
    parts: dict[tuple[str, int], list[bytes | memoryview]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    nbytes: int = 0
    started_at: float = 0.0

    @property
    def empty(self) -> bool:
        return not self.ends

    def add(self, ring: int, end: int, record: bytes) -> None:
        if self.empty:
            self.started_at = time.monotonic()
        for b in frame.decode(record):
            self.parts.setdefault((b.table, ring), []).append(b.data)
            self.rows[b.table] = self.rows.get(b.table, 0) + b.rows
        self.ends[ring] = end
        self.nbytes += len(record)

    def full(self) -> bool:
        return self.nbytes >= self.max_bytes or any(
            r >= self.max_items * ROWS_PER_ITEM.get(t, 1) for t, r in self.rows.items())

    def due(self, now: float | None = None) -> bool:
        if self.empty:
            return False
        return self.full() or (now if now is not None else time.monotonic()) - self.started_at >= self.timeout_s

    def seal(self, seq: int, token: str) -> SealedBatch:
        tables: dict[str, TableBatch] = {}
        for table in sorted(self.rows):
            chunks: list[bytes | memoryview] = []
            for ring in sorted(r for (t, r) in self.parts if t == table):
                chunks.extend(self.parts[(table, ring)])
            tables[table] = TableBatch(table, self.rows[table], chunks)
        sealed = SealedBatch(seq, token, dict(self.ends), tables, self.nbytes)
        self.parts, self.rows, self.ends, self.nbytes = {}, {}, {}, 0
        return sealed
