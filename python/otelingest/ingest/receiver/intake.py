"""What both transports do with a request body: check the limiter, decode, push into a ring.

Outcome kinds map to OTLP status: OK (200, maybe with partial_success), BAD (400 /
INVALID_ARGUMENT), MEMORY (429 / RESOURCE_EXHAUSTED, memory above the soft limit), FULL
(503 / UNAVAILABLE, every ring of this receiver full, or ClickHouse's disk under its free-space
floor), TOO_LARGE (413 / INVALID_ARGUMENT, the
decoded request is larger than a ring record can be), TENANT_LIMIT (429 / RESOURCE_EXHAUSTED with
``retry_after_s``: the request's tenant is over its ingest rate; only that tenant is refused). Only
OK means the blocks are in a ring.

``max_series_per_metric`` (docs/tenancy.md, "Series per metric"): the decoder asks this worker's
``SeriesLimiter`` about each series of a metrics request of a tenant with a limit; the data points
of a new series over the limit are refused and the rest stored: OK with ``over_limit`` set, which
OTLP answers as a partial success (``rejected_data_points`` and the reason) and remote write as a
400 (Prometheus must not retry it; the within-limit samples are stored, as Mimir does).

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
# A series counts against max_series_per_metric while it got a sample within the last hour (in this
# worker); at most this many series are tracked per worker (about 50 MB), past it new series pass
# unchecked (rust/src/series_limit.rs).
SERIES_WINDOW_S = 3600
MAX_TRACKED_SERIES = 1_000_000
ITEM_NAMES = {"traces": "spans", "logs": "log records", "metrics": "data points"}


@dataclass(slots=True)
class Outcome:
    kind: str
    items: int = 0
    rejected: int = 0
    message: str | None = None
    # TENANT_LIMIT: seconds until the tenant's bucket holds the request.
    retry_after_s: int = 0
    # OK: items of new series refused over the tenant's max_series_per_metric (part of rejected).
    over_limit: int = 0


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
        ten = cfg.tenancy
        # max_series_per_metric by tenant (the configured ones; others take the default's).
        self.series_limits = {t: ten.limits(t).max_series_per_metric or 0 for t in ten.tenants}
        self.default_series_limit = ten.defaults.max_series_per_metric or 0
        self.series_limiter: Any = None
        if ten.enabled and (self.default_series_limit or any(self.series_limits.values())):
            from ... import _native

            self.series_limiter = _native.SeriesLimiter(window_s=SERIES_WINDOW_S, max_tracked=MAX_TRACKED_SERIES)

    def series_limit(self, tenant: str) -> int:
        """The tenant's max_series_per_metric, 0 for none (or tenancy off)."""
        if self.series_limiter is None:
            return 0
        return self.series_limits.get(tenant, self.default_series_limit)

    def admit(self, tenant: str = "") -> Outcome | None:
        """The hot-path check before any work: None to go on, else the refusal."""
        if self.refuse():
            instruments.refused.labels("memory", instruments.tenant_label(tenant) if tenant else "").inc()
            return Outcome(MEMORY, message="memory limit reached, retry later")
        if self.disk_low():
            instruments.refused.labels("disk", instruments.tenant_label(tenant) if tenant else "").inc()
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
        limit = self.series_limit(tenant) if signal == "metrics" else 0
        if limit:
            return self._decoders[signal](
                body, format=fmt, compression=compression, max_decompressed_bytes=self.max_decompressed,
                max_attributes=self.max_attributes, tenant=tenant, series_limiter=self.series_limiter,
                max_series_per_metric=limit)
        return self._decoders[signal](
            body, format=fmt, compression=compression,
            max_decompressed_bytes=self.max_decompressed, max_attributes=self.max_attributes, tenant=tenant,
        )

    def decode_remote_write(self, body: bytes, compression: str | None = "snappy", tenant: str = DEFAULT_TENANT) -> Any:
        """A Prometheus remote-write body (snappy WriteRequest); runs in a worker thread."""
        from ... import _native

        limit = self.series_limit(tenant)
        if limit:
            return _native.decode_remote_write(
                body, compression=compression, max_decompressed_bytes=self.max_decompressed,
                max_attributes=self.max_attributes, tenant=tenant, series_limiter=self.series_limiter,
                max_series_per_metric=limit)
        return _native.decode_remote_write(body, compression=compression, max_decompressed_bytes=self.max_decompressed,
                                           max_attributes=self.max_attributes, tenant=tenant)

    def decode_remote_write_v2(self, body: bytes, tenant: str = DEFAULT_TENANT) -> tuple[Any, int, int]:
        """A remote write 2.0 body (snappy Request): (decoded, samples, exemplars); a worker thread."""
        from ... import _native

        v1, samples, exemplars = _native.remote_write_v2_to_v1(body, max_decompressed_bytes=self.max_decompressed)
        return self.decode_remote_write(v1, compression=None, tenant=tenant), samples, exemplars

    def store(self, signal: str, decoded: Any, transport: str, tenant: str = DEFAULT_TENANT) -> Outcome:
        label = instruments.tenant_label(tenant)
        if self.limiter is not None and decoded.items:
            wait = self.limiter.take(tenant, decoded.items)
            if wait:
                instruments.refused.labels("tenant_rate", label).inc()
                instruments.refused_items.labels(signal, "tenant_rate", label).inc(decoded.items)
                return Outcome(TENANT_LIMIT, message=f"tenant {tenant} is over its ingest rate limit, retry later",
                               retry_after_s=retry_after_s(wait))
        over_limit = decoded.over_limit
        invalid = decoded.rejected - over_limit
        if invalid:
            instruments.rejected_items.labels(signal).inc(invalid)
        if decoded.blocks:
            parts, size = frame.encode_parts(decoded.blocks)
            if size > self.max_record:
                instruments.refused.labels("too_large", label).inc()
                return Outcome(TOO_LARGE, message=f"decoded request of {size} bytes exceeds the "
                               f"{self.max_record} byte queue record limit; send smaller batches")
            if not self.push(parts):
                instruments.refused.labels("ring_full", label).inc()
                return Outcome(FULL, message="ingest queue full, retry later")
            decoded.stored()
        instruments.RECEIVED[signal].labels(transport, label).inc(decoded.items)
        message = decoded.rejection_reason
        if over_limit:
            # Counted once stored: a request refused above is retried whole and counted then.
            instruments.refused.labels("series_limit", label).inc()
            instruments.refused_items.labels(signal, "series_limit", label).inc(over_limit)
            message = f"{over_limit} of {over_limit + decoded.items} {ITEM_NAMES[signal]} refused: {message}"
        return Outcome(OK, decoded.items, decoded.rejected, message, over_limit=over_limit)

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
        refused = self.admit(tenant)
        if refused is not None:
            return refused
        try:
            decoded = self.decode(signal, body, fmt, compression, tenant)
        except self.DecodeError as e:
            instruments.refused.labels("bad_request", instruments.tenant_label(tenant)).inc()
            return Outcome(BAD, message=str(e))
        return self.store(signal, decoded, transport, tenant)

    @property
    def queued_bytes(self) -> int:
        return sum(int(getattr(r, "used_bytes", 0)) for r in self.rings)
