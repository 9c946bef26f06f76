"""What both transports do with a request body: check the limiter, decode, push into a ring.

Outcome kinds map to OTLP status: OK (200, maybe with partial_success), BAD (400 /
INVALID_ARGUMENT), MEMORY (429 / RESOURCE_EXHAUSTED, memory above the soft limit), FULL
(503 / UNAVAILABLE, every ring of this receiver full, or ClickHouse's disk under its free-space
floor), TOO_LARGE (413 / INVALID_ARGUMENT, the
decoded request is larger than a ring record can be), TENANT_LIMIT (429 / RESOURCE_EXHAUSTED with
``retry_after_s``: the request's tenant is over its ingest rate; only that tenant is refused). Only
OK means the blocks are in a ring.

Ring choice: receiver i owns one ring per writer (SPSC pairs, ``rings/r<i>-w<j>``); it starts at
writer ``i mod M`` and moves round-robin, so load spreads over the writers and a full ring is
skipped before the request is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ...config import DEFAULT_TENANT, Config
from ...selfmon import instruments
from ...tenancy import RateLimiter, retry_after_s
from .. import frame

OK, BAD, MEMORY, FULL, TOO_LARGE, TENANT_LIMIT = "ok", "bad", "memory", "full", "too_large", "tenant_limit"


@dataclass(slots=True)
class Outcome:
    kind: str
    items: int = 0
    rejected: int = 0
    message: str | None = None
    # TENANT_LIMIT: seconds until the tenant's bucket holds the request.
    retry_after_s: int = 0


def _decoders() -> dict[str, Callable[..., Any]]:
    from ... import _native

    return {"traces": _native.decode_traces, "logs": _native.decode_logs, "metrics": _native.decode_metrics}


class Intake:
    def __init__(
        self,
        cfg: Config,
        rings: Sequence[Any],
        *,
        index: int = 0,
        refuse: Callable[[], bool] = lambda: False,
        disk_low: Callable[[], bool] = lambda: False,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.cfg = cfg
        self.limiter = limiter if limiter is not None and limiter.enabled else None
        self.rings = list(rings)
        self._next = index % max(1, len(self.rings))
        self.refuse = refuse
        self.disk_low = disk_low
        self._decoders: dict[str, Callable[..., Any]] | None = None
        self.max_record = min((int(getattr(r, "max_record", 1 << 62)) for r in self.rings), default=0)
        self.max_decompressed = cfg.receiver.max_decompressed_bytes
        self.max_attributes = cfg.receiver.max_attributes_per_item

    def admit(self) -> Outcome | None:
        """The hot-path check before any work: None to go on, else the refusal."""
        if self.refuse():
            instruments.refused.labels("memory").inc()
            return Outcome(MEMORY, message="memory limit reached, retry later")
        if self.disk_low():
            instruments.refused.labels("disk").inc()
            return Outcome(FULL, message="storage disk space low, retry later")
        return None

    @property
    def DecodeError(self) -> type[Exception]:
        from ... import _native

        return _native.DecodeError  # type: ignore[no-any-return]

    def decode(self, signal: str, body: bytes, fmt: str, compression: str | None, tenant: str = DEFAULT_TENANT) -> Any:
        """Runs in a worker thread (the GIL is released in the decoder)."""
        if self._decoders is None:
            self._decoders = _decoders()
        return self._decoders[signal](
            body, format=fmt, compression=compression,
            max_decompressed_bytes=self.max_decompressed, max_attributes=self.max_attributes, tenant=tenant,
        )

    def decode_remote_write(self, body: bytes, compression: str | None = "snappy", tenant: str = DEFAULT_TENANT) -> Any:
        """A Prometheus remote-write body (snappy WriteRequest); runs in a worker thread."""
        from ... import _native

        return _native.decode_remote_write(body, compression=compression, max_decompressed_bytes=self.max_decompressed,
                                           max_attributes=self.max_attributes, tenant=tenant)

    def decode_remote_write_v2(self, body: bytes, tenant: str = DEFAULT_TENANT) -> tuple[Any, int, int]:
        """A remote write 2.0 body (snappy Request): (decoded, samples, exemplars); a worker thread."""
        from ... import _native

        v1, samples, exemplars = _native.remote_write_v2_to_v1(body, max_decompressed_bytes=self.max_decompressed)
        return self.decode_remote_write(v1, compression=None, tenant=tenant), samples, exemplars

    def store(self, signal: str, decoded: Any, transport: str, tenant: str = DEFAULT_TENANT) -> Outcome:
        if self.limiter is not None and decoded.items:
            wait = self.limiter.take(tenant, decoded.items)
            if wait:
                instruments.refused.labels("tenant_rate").inc()
                return Outcome(TENANT_LIMIT, message=f"tenant {tenant} is over its ingest rate limit, retry later",
                               retry_after_s=retry_after_s(wait))
        if decoded.rejected:
            instruments.rejected_items.labels(signal).inc(decoded.rejected)
        if decoded.blocks:
            parts, size = frame.encode_parts(decoded.blocks)
            if size > self.max_record:
                instruments.refused.labels("too_large").inc()
                return Outcome(TOO_LARGE, message=f"decoded request of {size} bytes exceeds the "
                               f"{self.max_record} byte queue record limit; send smaller batches")
            if not self.push(parts):
                instruments.refused.labels("ring_full").inc()
                return Outcome(FULL, message="ingest queue full, retry later")
            decoded.stored()
        instruments.RECEIVED[signal].labels(transport).inc(decoded.items)
        return Outcome(OK, decoded.items, decoded.rejected, decoded.rejection_reason)

    def push(self, parts: list[bytes]) -> bool:
        """One record (its parts, copied once into the ring); the producers serialize pushes."""
        n = len(self.rings)
        start = self._next
        self._next = (start + 1) % n
        for k in range(n):
            if self.rings[(start + k) % n].try_push_parts(parts):
                return True
        return False

    def handle(self, signal: str, body: bytes, fmt: str, compression: str | None, transport: str,
               tenant: str = DEFAULT_TENANT) -> Outcome:
        """Admit, decode, store: the whole synchronous path (the gRPC handler threads use it)."""
        refused = self.admit()
        if refused is not None:
            return refused
        try:
            decoded = self.decode(signal, body, fmt, compression, tenant)
        except self.DecodeError as e:
            instruments.refused.labels("bad_request").inc()
            return Outcome(BAD, message=str(e))
        return self.store(signal, decoded, transport, tenant)

    @property
    def queued_bytes(self) -> int:
        return sum(int(getattr(r, "used_bytes", 0)) for r in self.rings)
