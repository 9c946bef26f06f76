"""Type stub of the compiled ``otelingest._native`` extension (Rust, ``rust/src``)."""

from typing import final

# --- OTLP decoding into ClickHouse Native blocks (rust/src/py/decode.rs) ---

def version() -> str:
    """Version of the native extension, equal to the package version."""

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
        compression: None (or ``"identity"``), ``"gzip"`` or ``"deflate"`` (zlib or raw).
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
