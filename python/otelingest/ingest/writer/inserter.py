"""The INSERT service: sends one table's batch body to ClickHouse and alone decides what a failure
means (Vector's ClickHouse sink split between request building and the service).

- Retryable failures (network, timeouts, overload; see ``as_storage_error``) are retried forever
  with exponential backoff and full jitter: acknowledged data is never given up on. The only way
  out is the writer stopping, which leaves the batch in the ring for the next writer to replay.
- A non-retryable failure (unknown column, type mismatch...) moves the body to a dead-letter file
  ``data_dir/deadletter/<table>/<token>.native`` with a ``.json`` note of the reason, logs it and
  counts it; other tables are not held up. While the schema is not current yet (start-up, a
  migration in progress) every failure counts as retryable, so nothing is dead-lettered for a
  table that is about to exist; and no INSERT is even tried (``hold``) until the schema is current,
  so none lands in a table a migration is copying (migration 0014 rebuilds every table).
- With a spill queue: once a table's INSERT has kept failing with retryable errors for
  ``spill.after_s``, its body goes to the queue under the same per-table deduplication token and the
  outcome is SPILLED (the writer may release the rings; :mod:`.replayer` stores it later). When the
  queue is full (``SpillFull``) the INSERT keeps being retried, so the rings fill and receivers
  refuse with retryable codes: above the disk budget the daemon refuses, it never drops.
- Every INSERT carries the batch's ``insert_deduplication_token`` so a replay is invisible.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from ...clickhouse.client import as_storage_error, connect
from ...config import Config
from ...errors import StorageError
from ..spill import SpillFull, SpillQueue
from .sizing import BatchSizer

# How often a held writer looks whether the migration is over.
HOLD_POLL_S = 0.1
log = logging.getLogger("otelingest.writer")

OK = "ok"
DEAD_LETTER = "dead_letter"
SPILLED = "spilled"


class Stopped(Exception):
    """The writer is stopping: the batch stays in the ring for a replay."""


# Tables whose views write one rollup row per series and bucket of the INSERT: collapsing equal
# keys in each new part (optimize_on_insert) finds nothing the views' GROUP BY left and re-merges
# every state: up to two thirds of the views' insert (docs/benchmarks.md, "Remote write: lean
# rollups" and issue 20's "Fifth pass"). Merges collapse them, as they do across INSERTs, and every
# rollup reader merges states anyway.
NO_INSERT_OPTIMIZE = frozenset({"otel_prom_samples", "otel_metrics"})


def insert_settings(token: str, *, cluster: bool = False, table: str = "") -> dict[str, object]:
    settings: dict[str, object] = {
        "insert_deduplication_token": token,
        "insert_deduplicate": 1,
        "deduplicate_blocks_in_dependent_materialized_views": 1,
        # Hourly partitions: a batch may span many of them.
        "max_partitions_per_insert_block": 0,
        # A block column the table lacks (TenantId before migration 0014) is an error, not dropped
        # in silence: ClickHouse's default skips it, and the rows would lose their tenant.
        "input_format_skip_unknown_fields": 0,
    }
    if table.rpartition(".")[2] in NO_INSERT_OPTIMIZE:
        settings["optimize_on_insert"] = 0
    if cluster:
        # A Distributed table otherwise queues the rows locally and answers at once; the rings are
        # released on this answer, so it must mean "on its shards".
        settings["distributed_foreground_insert"] = 1
    return settings


Body = bytes | Sequence[bytes | memoryview]


def _parts(body: Body) -> Sequence[bytes | memoryview]:
    return [body] if isinstance(body, bytes) else body


def _joined(body: Body) -> bytes:
    return body if isinstance(body, bytes) else b"".join(body)


def _lz4_parts(body: Body) -> bytes:
    """One LZ4 frame over the body's parts in order, fed one by one: no joined copy of the body.

    Independent blocks (not linked): a quarter less CPU on the writer's bodies for 4% more bytes
    (docs/benchmarks.md, "Fourth pass")."""
    import lz4.frame  # type: ignore[import-untyped]

    if isinstance(body, bytes):
        return lz4.frame.compress(body, compression_level=0, block_linked=False)  # type: ignore[no-any-return]
    c = lz4.frame.LZ4FrameCompressor(compression_level=0, block_linked=False)
    # The content size in the frame header, as lz4.frame.compress writes it.
    out = [c.begin(source_size=sum(map(len, body)))]
    out.extend(c.compress(p) for p in body)
    out.append(c.flush())
    return b"".join(out)


def _compressor(kind: str) -> tuple[str | None, Callable[[Body], bytes] | None]:
    if kind == "lz4":
        return "lz4", _lz4_parts
    if kind == "zstd":
        try:
            from compression import zstd  # type: ignore[import-not-found]
        except ImportError:
            from backports import zstd  # type: ignore[no-redef]
        return "zstd", lambda b: zstd.compress(_joined(b), 1)
    return None, None


class Inserter:
    def __init__(
        self,
        cfg: Config,
        *,
        stop: threading.Event,
        storage_ready: Callable[[], bool] = lambda: True,
        sleep: Callable[[float], bool] | None = None,
        spill: SpillQueue | None = None,
        hold: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg = cfg
        self.hold = hold
        self.stop = stop
        self.spill = spill
        self.sizer: BatchSizer | None = None  # told of MEMORY_LIMIT_EXCEEDED, to seal smaller batches
        self._spilling = False  # for the start/stop log lines only
        self._spill_full_logged = False
        self.storage_ready = storage_ready
        self._sleep = sleep or stop.wait
        self._local = threading.local()
        self.dead_letter_dir = cfg.data_path / "deadletter"
        self.encoding, self._compress = _compressor(cfg.clickhouse.compression)
        from ...selfmon import instruments

        self.metrics = instruments

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            # The body is compressed here (raw inserts are sent as given), once per batch not per retry.
            client = connect(self.cfg.clickhouse)
            self._local.client = client
        return client

    def _drop_client(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken client
                pass

    def _backoff(self, attempt: int) -> float:
        w = self.cfg.writer
        cap = min(w.retry_max_s, w.retry_initial_s * (2 ** min(attempt, 20)))
        return random.uniform(cap / 2, cap)

    def insert(self, table: str, rows: int, body: Body, token: str, *, spill_first: bool = False) -> str:
        """Store one table's batch; returns OK, DEAD_LETTER or SPILLED (appended to the spill queue).

        ``token`` is the batch's token; the INSERT (and the spilled copy) carry ``<token>-<table>``.
        ``spill_first``: append to the spill queue without trying ClickHouse first (when it has room).

        Raises:
            Stopped: the writer is stopping before the batch could be stored.
        """
        dedup_token = f"{token}-{table}"
        if spill_first and self.spill is not None and self._to_spill(table, rows, body, dedup_token, None):
            return SPILLED
        return self.insert_with_token(table, rows, body, dedup_token, may_spill=True)

    def insert_with_token(self, table: str, rows: int, body: Body, dedup_token: str, *, may_spill: bool) -> str:
        """Like :meth:`insert` with the per-table token given; ``may_spill=False`` never spills.

        ``body``: the Native blocks, as one ``bytes`` or its parts in order."""
        payload = self._compress(body) if self._compress else _joined(body)
        attempt = 0
        first_failure: float | None = None
        while True:
            if self.stop.is_set() and attempt > 0:
                raise Stopped(table)
            if self.hold():
                # A migration runs: wait (the rings fill, receivers refuse, clients retry).
                if self._sleep(HOLD_POLL_S) and self.stop.is_set():
                    raise Stopped(table) from None
                continue
            started = time.monotonic()
            try:
                self._client().raw_insert(
                    table, insert_block=payload, fmt="Native", settings=insert_settings(dedup_token, cluster=bool(self.cfg.clickhouse.cluster), table=table),
                    compression=self.encoding,
                )
            except Exception as e:  # noqa: BLE001 - classified right below
                err = as_storage_error(e)
                if self.sizer is not None:
                    self.sizer.failed(err.code, rows)
                retryable = err.retryable or not self.storage_ready()
                if not retryable:
                    self._dead_letter(table, rows, body, dedup_token, err)
                    return DEAD_LETTER
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                if may_spill and self.spill is not None and now - first_failure >= self.cfg.spill.after_s \
                        and self._to_spill(table, rows, body, dedup_token, err):
                    return SPILLED
                self.metrics.storage_writes.labels(table, "retry").inc()
                delay = self._backoff(attempt)
                if may_spill and self.spill is not None:
                    # Wake up when the batch is due to go to disk, not a long backoff later.
                    delay = min(delay, max(0.0, first_failure + self.cfg.spill.after_s - now) + 0.01)
                if attempt & (attempt - 1) == 0:  # attempts 0, 1, 2, 4, 8...: no log flood while down
                    log.warning("insert into %s failed (attempt %d), retrying in %.1fs: %s", table, attempt + 1, delay, err)
                self._drop_client()
                attempt += 1
                if self._sleep(delay) and self.stop.is_set():
                    raise Stopped(table) from None
                continue
            elapsed = time.monotonic() - started
            if may_spill and self._spilling:
                self._spilling = False
                log.info("ClickHouse takes inserts again; spilling to disk stopped (%d bytes queued for replay)",
                         len(self.spill) if self.spill is not None else 0)
            log.debug("inserted %d rows into %s in %.3fs", rows, table, elapsed)
            self.metrics.storage_write_duration.labels(table).observe(elapsed)
            self.metrics.storage_writes.labels(table, OK).inc()
            self.metrics.batch_size.labels(table).observe(rows)
            return OK

    def _to_spill(self, table: str, rows: int, body: Body, dedup_token: str, err: StorageError | None) -> bool:
        """Append to the spill queue; False when it is full (the caller keeps retrying the INSERT)."""
        assert self.spill is not None
        try:
            self.spill.append(table, dedup_token, rows, _parts(body))
        except (SpillFull, OSError, ValueError) as e:
            # Over the budget, the disk itself full or failing, or a batch too large for a record:
            # keep the batch and retry the INSERT (a torn partial write is quarantined on replay).
            if not self._spill_full_logged:
                self._spill_full_logged = True
                log.warning("cannot spill (%s: %s); retrying inserts into %s, receivers will refuse",
                            type(e).__name__, e, table)
            return False
        self._spill_full_logged = False
        if not self._spilling and err is not None:
            self._spilling = True
            log.warning("ClickHouse unavailable (%s); spilling batches to %s", err, self.spill.dir)
        self.metrics.storage_writes.labels(table, SPILLED).inc()
        self.metrics.spilled_items.labels(table).inc(rows)
        size = sum(map(len, _parts(body)))
        self.metrics.spilled_bytes.labels(table).inc(size)
        log.debug("spilled %d rows of %s (%d bytes)", rows, table, size)
        return True

    def _dead_letter(self, table: str, rows: int, body: Body, token: str, err: StorageError) -> None:
        where = self.dead_letter_dir / table
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{token}.native").write_bytes(_joined(body))
        note = {"table": table, "rows": rows, "token": token, "reason": str(err), "time": time.time()}
        (where / f"{token}.json").write_text(json.dumps(note))
        self.metrics.storage_writes.labels(table, DEAD_LETTER).inc()
        log.error("insert into %s refused for good, %d rows moved to %s: %s", table, rows, where / f"{token}.native", err)

    def close(self) -> None:
        self._drop_client()
