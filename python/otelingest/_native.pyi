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
        """Items dropped as invalid (an id of the wrong length); OTLP ``partial_success.rejected_*``."""
    @property
    def rejection_reason(self) -> str | None:
        """Why the first rejected item was dropped; None when nothing was rejected."""
    @property
    def nbytes(self) -> int:
        """Total bytes of all blocks."""
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
) -> Decoded:
    """Decode a Prometheus remote-write 1.0 ``WriteRequest`` into Native blocks.

    Arguments:
        body: the request body, snappy block format (``compression="snappy"``) or plain protobuf
            (``None``/``"identity"``).
        max_decompressed_bytes: largest decompressed body accepted.
        max_attributes: most labels per series (besides ``__name__``).

    Returns:
        ``Decoded`` with ``items`` = samples and blocks for ``otel_metrics`` (one row per sample,
        name and labels verbatim), ``otel_metrics_metadata`` and ``otel_metrics_exemplars``.

    Raises:
        DecodeError: invalid snappy or protobuf, a series without ``__name__``, an empty or
            duplicated label name, invalid UTF-8, a timestamp out of range, native histograms.
        ValueError: an unknown ``compression``.
    """

# ---------------------------------------------------------------------------------------------
# Shared-memory ring (rust/src/ring.rs, rust/src/py/ring.rs)
# ---------------------------------------------------------------------------------------------

class RingError(ValueError):
    """The ring file is corrupt or incompatible, or another process already consumes the ring.
    A ValueError, so ``except (OSError, ValueError)`` around ``attach`` covers every bad file."""

class RecordTooLarge(ValueError):
    """The record can never fit in this ring (larger than ``Ring.max_record``); not the same as full."""

class Ring:
    """A bounded multi-producer, single-consumer ring of byte records in a shared file.

    Producers (any thread of any process) call ``try_push``/``try_push_parts``; one consumer
    process calls ``read``/``release``/``rewind`` (the role is taken on the first such call and
    held, via ``flock``, until ``close()`` or process exit). Records not yet released survive the
    consumer's death: a new consumer attaches and reads them again from the release cursor.
    """

    @staticmethod
    def create(
        path: str | os.PathLike[str],
        capacity_bytes: int,
        *,
        gap_timeout: float = 1.0,
        stuck_timeout: float = 60.0,
    ) -> Ring:
        """Create (or atomically replace) the ring file with a data area of ``capacity_bytes``.

        Arguments:
            path: the ring file, under ``/dev/shm`` or the data dir; replaced via rename.
            capacity_bytes: multiple of 8, 4096 .. 2**40; the file is 4096 bytes larger.
            gap_timeout: consumer only: seconds before skipping a record whose producer died
                right after reserving (header never written).
            stuck_timeout: consumer only: seconds before skipping an uncommitted record whose
                producer pid still exists (dead pids are detected at once).

        Raises:
            ValueError: bad capacity or timeout.
            OSError: the file cannot be created or its space reserved (e.g. /dev/shm full).
        """

    @staticmethod
    def open_or_create(
        path: str | os.PathLike[str],
        capacity_bytes: int,
        *,
        gap_timeout: float = 1.0,
        stuck_timeout: float = 60.0,
    ) -> Ring:
        """Supervisor start-up: attach to a valid existing ring, so acknowledged records not yet
        released survive a restart of the whole daemon; create it if missing. An existing ring of
        another capacity is kept while it holds records (the new capacity applies once empty).

        Raises:
            RingError: the existing file is corrupt (move it aside and ``create``).
            ValueError: bad capacity or timeout.
            OSError: the file cannot be opened or created.
        """

    @staticmethod
    def attach(
        path: str | os.PathLike[str], *, gap_timeout: float = 1.0, stuck_timeout: float = 60.0
    ) -> Ring:
        """Map an existing ring file, validating magic, layout version, size and cursors.

        Raises:
            RingError: the file is not a valid ring (corrupt, truncated, other version).
            OSError: the file cannot be opened (FileNotFoundError if missing).
        """

    def try_push(self, record: Buffer) -> bool:
        """Copy one record (any C-contiguous bytes-like object) into the ring. Never blocks;
        the GIL is released during the copy.

        Returns:
            True once committed (it will be delivered: acknowledge only now); False when the ring
            is full (answer 429/503) or, rarely, when the consumer abandoned this push as stuck.

        Raises:
            RecordTooLarge: ``len(record) > max_record``; the record can never fit.
            ValueError: non-contiguous buffer, or the ring is closed.
            RingError: another process corrupted the ring's cursors.
        """

    def try_push_parts(self, parts: Iterable[Buffer]) -> bool:
        """Like ``try_push`` for the concatenation of ``parts``, without concatenating in Python
        (e.g. a small envelope followed by the Native blocks of one request)."""

    def read(self) -> tuple[int, bytes] | None:
        """Consumer: the next committed record as ``(end_offset, payload)``, in reservation order,
        or None when nothing is ready. Does not free space; pass ``end_offset`` to ``release``.

        Raises:
            RingError: another process holds the consumer role, or a record header is corrupt.
        """

    def release(self, offset: int) -> None:
        """Consumer: the records before ``offset`` (an offset from ``read``, or ``read_offset``)
        are durable elsewhere; free their space. A new consumer resumes from here. An offset at
        or behind the release cursor is a no-op (already released).

        Raises:
            ValueError: ``offset`` is beyond what was read (or not 8-aligned).
        """

    def rewind(self) -> None:
        """Consumer: restart reading at the release cursor (unreleased records are read again)."""

    def close(self) -> None:
        """Give up the consumer role and unmap (in-flight pushes finish first). Idempotent; any
        later call raises ValueError."""

    def __enter__(self) -> Ring: ...
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
        """Largest payload ``try_push`` accepts: ``capacity // 2 - 8``."""

    @property
    def used_bytes(self) -> int:
        """Bytes reserved and not yet released (record headers and padding included)."""

    @property
    def pending_bytes(self) -> int:
        """Bytes of committed records not yet read by the consumer (headers included)."""

    @property
    def abandoned(self) -> int:
        """Uncommitted records (producers killed mid-write) skipped by consumers, ever."""

    @property
    def release_offset(self) -> int:
        """The release cursor: where a new consumer starts reading."""

    @property
    def read_offset(self) -> int:
        """The consumer's read cursor: just past the last record read or skipped."""

    def _debug_reserve_uncommitted(self, nbytes: int, stage: str = "header") -> bool:
        """TEST ONLY: reserve a record and stop without committing, as a producer killed at
        ``stage`` would leave it: "reserved" (header not written), "header", or "partial"
        (half the payload written). Returns False when full."""
