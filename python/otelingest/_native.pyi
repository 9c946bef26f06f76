"""Type stubs for the compiled extension ``otelingest._native`` (checked with ``mypy.stubtest``)."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable
from types import TracebackType
from typing import final

from typing_extensions import Buffer

def version() -> str:
    """Version of the native extension, equal to the package version."""

# ---------------------------------------------------------------------------------------------
# OTLP decoding into ClickHouse Native blocks (rust/src/py/decode.rs)
# ---------------------------------------------------------------------------------------------

class DecodeError(ValueError):
    """Malformed, oversize or hostile export request; ``str(e)`` is a short reason (-> HTTP 400).

    Raised for truncated or malformed protobuf, invalid UTF-8 in strings, JSON of the wrong shape,
    bodies over ``max_decompressed_bytes`` (also after decompression: gzip bombs), AnyValues nested
    deeper than 64 levels, and items with more than ``max_attributes`` attributes. Nothing of the
    request is kept when it is raised.
    """

@final
class Decoded:
    """The blocks and counts of one decoded export request."""

    @property
    def items(self) -> int:
        """Spans / log records / metric data points placed in blocks."""
    @property
    def rejected(self) -> int:
        """Items dropped as invalid (an id of the wrong length) or refused (``over_limit``); OTLP
        ``partial_success.rejected_*``."""
    @property
    def over_limit(self) -> int:
        """Of ``rejected``: data points / samples of new series over ``max_series_per_metric``."""
    @property
    def rejection_reason(self) -> str | None:
        """Why the first rejected item was dropped; None when nothing was rejected."""
    @property
    def nbytes(self) -> int:
        """Total bytes of all blocks."""
    def stored(self) -> None:
        """Call once the blocks are in a ring: a remote-written series whose labels they carry
        (``otel_prom_series``) is not written again by this process that day. No-op for OTLP."""
    @property
    def blocks(self) -> list[tuple[str, int, bytes]]:
        """``(table, rows, block)``: a ClickHouse Native block for ``table`` (e.g. ``"otel_traces"``).

        Blocks for the same table concatenate into one ``INSERT INTO db.table FORMAT Native`` body.
        Empty when no item was decoded.
        """

def decode_traces(
    body: bytes,
    *,
    format: str = "protobuf",
    compression: str | None = None,
    max_decompressed_bytes: int = 67108864,
    max_attributes: int = 1024,
    tenant: str = "default",
    series_limiter: SeriesLimiter | None = None,
    max_series_per_metric: int = 0,
) -> Decoded:
    """Decode an ``ExportTraceServiceRequest`` into ``otel_traces`` rows, one per span.

    The GIL is released while decoding and encoding.

    Arguments:
        body: the request body as received.
        format: ``"protobuf"`` or ``"json"`` (OTLP/JSON: hex ids, ints as strings or numbers,
            enums as numbers or names, camelCase or snake_case field names).
        compression: the Content-Encoding: None (or ``"identity"``), ``"gzip"`` or ``"deflate"``
            (zlib-wrapped or raw), case-insensitive.
        max_decompressed_bytes: largest body accepted, after decompression.
        max_attributes: most attributes accepted on one resource, scope, span, event, link,
            log record, data point or exemplar.
        tenant: the ``TenantId`` of every row (an id ``otelingest.tenancy`` has validated).
        series_limiter: this process's active series per tenant and metric (metrics only).
        max_series_per_metric: the tenant's limit (0: none). A data point of a new series (its
            ``SeriesId``, as ``otel_metrics`` computes it) of a metric already at the limit is
            refused: counted in ``rejected`` and ``over_limit``, the reason in ``rejection_reason``.

    Returns:
        The blocks and counts.

    Raises:
        DecodeError: the request is malformed, oversize or hostile (see :class:`DecodeError`).
        ValueError: unknown ``format`` or ``compression``.
    """

def decode_logs(
    body: bytes,
    *,
    format: str = "protobuf",
    compression: str | None = None,
    max_decompressed_bytes: int = 67108864,
    max_attributes: int = 1024,
    tenant: str = "default",
    series_limiter: SeriesLimiter | None = None,
    max_series_per_metric: int = 0,
) -> Decoded:
    """Decode an ``ExportLogsServiceRequest`` into ``otel_logs`` rows, one per log record.

    Arguments, return value and errors as :func:`decode_traces`. A record with time 0 takes its
    observed time as ``Timestamp``.
    """

def decode_metrics(
    body: bytes,
    *,
    format: str = "protobuf",
    compression: str | None = None,
    max_decompressed_bytes: int = 67108864,
    max_attributes: int = 1024,
    tenant: str = "default",
    series_limiter: SeriesLimiter | None = None,
    max_series_per_metric: int = 0,
) -> Decoded:
    """Decode an ``ExportMetricsServiceRequest`` into ``otel_metrics`` rows, one per data point.

    All five metric types (gauge, sum, histogram, exponential histogram, summary), with exemplars.
    Arguments, return value and errors as :func:`decode_traces`.
    """


def decode_remote_write(
    body: bytes,
    *,
    compression: str | None = "snappy",
    max_decompressed_bytes: int = 67108864,
    max_attributes: int = 1024,
    tenant: str = "default",
    series_limiter: SeriesLimiter | None = None,
    max_series_per_metric: int = 0,
) -> Decoded:
    """Decode a Prometheus remote-write 1.0 ``WriteRequest`` into Native blocks.

    Arguments:
        body: the request body, snappy block format (``compression="snappy"``) or plain protobuf
            (``None``/``"identity"``).
        max_decompressed_bytes: largest decompressed body accepted.
        max_attributes: most labels per series (besides ``__name__``).
        tenant: the ``TenantId`` of every row of every block.
        series_limiter, max_series_per_metric: as :func:`decode_metrics`; the samples and
            exemplars of a refused series are left out, the other series decoded.

    Returns:
        ``Decoded`` with ``items`` = samples and blocks for ``otel_prom_samples`` (one narrow row
        per sample), ``otel_prom_series`` (name and labels verbatim, once per series and day until
        ``Decoded.stored``), ``otel_metrics_metadata`` and ``otel_metrics_exemplars``.

    Raises:
        DecodeError: invalid snappy or protobuf, a series without ``__name__``, an empty or
            duplicated label name, invalid UTF-8, a timestamp out of range, native histograms.
        ValueError: an unknown ``compression``.
    """

@final
class SeriesLimiter:
    """Active series per (tenant, metric) in this process, for ``max_series_per_metric``
    (``rust/src/series_limit.rs``). A series is active while it was admitted within the last
    ``window_s`` seconds; at most ``max_tracked`` series are tracked (beyond, new series pass
    unchecked and are counted in ``untracked``)."""

    def __init__(self, *, window_s: int = 3600, max_tracked: int = 1000000) -> None: ...
    @property
    def tracked(self) -> int:
        """Series tracked now, over all tenants and metrics."""
    @property
    def untracked(self) -> int:
        """New series let through unchecked because ``max_tracked`` series were tracked."""
    def sweep(self) -> int:
        """Forgets series idle for a window; returns how many are tracked after."""

# ---------------------------------------------------------------------------------------------
# Shared-memory rings (rust/src/ring/, rust/src/py/ring.rs): one producer, one consumer each
# ---------------------------------------------------------------------------------------------

class RingError(ValueError):
    """The ring file is corrupt or incompatible, or its role is held by another live handle.
    A ValueError, so ``except (OSError, ValueError)`` around ``attach`` covers every bad file."""

class RingBusy(RingError):
    """Another live process (or handle) already holds this ring's producer or consumer role."""

class RecordTooLarge(ValueError):
    """The record can never fit in this ring (larger than ``max_record``); not the same as full."""

@final
class RingFile:
    """A ring file without a role: the supervisor creates or opens it; anyone may read its figures.
    The roles attach separately: ``RingProducer.attach`` (a receiver), ``RingConsumer.attach`` (a writer).
    """

    @staticmethod
    def create(path: str | os.PathLike[str], capacity_bytes: int) -> RingFile:
        """Create (or atomically replace) the ring file with a data area of ``capacity_bytes``.

        Arguments:
            path: the ring file, under ``/dev/shm`` or the data dir; replaced via rename.
            capacity_bytes: multiple of 8, 4096 .. 2**40; the file is 4096 bytes larger.

        Raises:
            ValueError: bad capacity.
            OSError: the file cannot be created or its space reserved (e.g. /dev/shm full).
        """

    @staticmethod
    def open_or_create(path: str | os.PathLike[str], capacity_bytes: int) -> RingFile:
        """Daemon start-up: keep a valid existing ring, so acknowledged records not yet released
        survive a restart of the whole daemon; create it if missing. An existing ring of another
        capacity is kept while it holds records (the new capacity applies once empty).

        Raises:
            RingError: the existing file is corrupt or of another layout version (``create`` it).
            ValueError: bad capacity.
            OSError: the file cannot be opened or created.
        """

    @staticmethod
    def attach(path: str | os.PathLike[str]) -> RingFile:
        """Map an existing ring file, validating magic, layout version, size and cursors.

        Raises:
            RingError: the file is not a valid ring (corrupt, truncated, other version).
            OSError: the file cannot be opened (FileNotFoundError if missing).
        """

    def close(self) -> None:
        """Unmap. Idempotent; any later call raises ValueError."""

    def __enter__(self) -> RingFile: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...
    @property
    def path(self) -> pathlib.Path:
        """The ring file."""

    @property
    def capacity(self) -> int:
        """Size of the data area in bytes."""

    @property
    def max_record(self) -> int:
        """Largest record payload: ``capacity // 2 - 8``."""

    @property
    def used_bytes(self) -> int:
        """Bytes published and not yet released (record headers and padding included)."""

    @property
    def release_offset(self) -> int:
        """The release cursor: where a new consumer starts reading."""

@final
class RingProducer:
    """The only producer of a ring (a receiver): the role is held, via an open-file-description
    lock, until ``close()`` or process exit. Thread-safe: pushes are serialized inside.
    """

    @staticmethod
    def attach(path: str | os.PathLike[str]) -> RingProducer:
        """Attach to a ring file as its producer; pushing resumes at the last published record.

        Raises:
            RingBusy: another live process (or handle) is the producer.
            RingError: the file is not a valid ring.
            OSError: the file cannot be opened (FileNotFoundError if missing).
        """

    def try_push(self, record: Buffer) -> bool:
        """Copy one record (any C-contiguous bytes-like object) into the ring and publish it.
        Never waits for the consumer; the GIL is released during the copy.

        Returns:
            True once published (it will be delivered: acknowledge only now); False when the
            ring is full (answer 429/503).

        Raises:
            RecordTooLarge: ``len(record) > max_record``; the record can never fit.
            ValueError: non-contiguous buffer, or the producer is closed.
            RingError: the consumer's cursor is corrupt.
        """

    def try_push_parts(self, parts: Iterable[Buffer]) -> bool:
        """Like ``try_push`` for the concatenation of ``parts``, each copied once straight into
        the ring (the receivers push a request's frame headers and Native blocks this way)."""

    def close(self) -> None:
        """Give up the producer role and unmap. Idempotent; any later call raises ValueError."""

    @property
    def max_record(self) -> int:
        """Largest payload ``try_push`` accepts: ``capacity // 2 - 8``."""

    @property
    def used_bytes(self) -> int:
        """Bytes published and not yet released (record headers and padding included)."""

@final
class RingConsumer:
    """The only consumer of a ring (a writer): the role is held until ``close()`` or process exit.
    Records not yet released survive the consumer's death: a new consumer attaches and reads
    them again from the release cursor. One thread at a time (a second is a RuntimeError).
    """

    @staticmethod
    def attach(path: str | os.PathLike[str]) -> RingConsumer:
        """Attach to a ring file as its consumer; reading starts at the release cursor.

        Raises:
            RingBusy: another live process (or handle) is the consumer.
            RingError: the file is not a valid ring.
            OSError: the file cannot be opened (FileNotFoundError if missing).
        """

    def read(self) -> tuple[int, bytes] | None:
        """The next record as ``(end_offset, payload)``, in push order, or None when nothing
        more is published. Does not free space; pass ``end_offset`` to ``release``.

        Raises:
            RingError: a record header or the producer's cursor is corrupt.
        """

    def release(self, offset: int) -> None:
        """The records before ``offset`` (an offset from ``read``, or ``read_offset``) are durable
        elsewhere; free their space. A new consumer resumes from here. An offset at or behind the
        release cursor is a no-op (already released).

        Raises:
            ValueError: ``offset`` is beyond what was read (or not 8-aligned).
        """

    def rewind(self) -> None:
        """Restart reading at the release cursor (unreleased records are read again)."""

    def close(self) -> None:
        """Give up the consumer role and unmap. Idempotent; any later call raises ValueError."""

    @property
    def used_bytes(self) -> int:
        """Bytes published and not yet released (record headers and padding included)."""

    @property
    def pending_bytes(self) -> int:
        """Bytes of published records not yet read (headers included, padding not)."""

    @property
    def release_offset(self) -> int:
        """The release cursor: where a new consumer starts reading."""

    @property
    def read_offset(self) -> int:
        """Just past the last record read: ``release(read_offset)`` frees everything read."""

class _Testing:
    """``otelingest._native.testing``: test support, not API."""

    @staticmethod
    def abandon_push(producer: RingProducer, nbytes: int, stage: str = "header") -> bool:
        """Reserve a record and stop without publishing it, as a producer killed at ``stage``
        would leave it: "reserved" (nothing written), "header", or "partial" (half the payload
        written). Returns False when full."""

testing: _Testing


def remote_write_v2_to_v1(
    body: bytes,
    *,
    compression: str | None = "snappy",
    max_decompressed_bytes: int = 67108864,
) -> tuple[bytes, int, int]:
    """Rewrite a Prometheus remote-write 2.0 ``io.prometheus.write.v2.Request`` as an uncompressed
    1.0 ``WriteRequest`` for :func:`decode_remote_write` (``compression=None``).

    Returns ``(body, samples, exemplars)``. Raises ``DecodeError`` for bad snappy, malformed
    protobuf, symbol references outside the symbols table, native histograms, or a rewritten
    request larger than ``max_decompressed_bytes``.
    """
