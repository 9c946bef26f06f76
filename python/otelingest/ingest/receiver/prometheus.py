"""Prometheus remote write 1.0 and 2.0 on the OTLP/HTTP port: what differs from OTLP/HTTP.

The body is a snappy-compressed ``prompb.WriteRequest`` (decoded in Rust,
``rust/src/prom/remote_write.rs``), or a 2.0 ``io.prometheus.write.v2.Request`` (content type
parameter ``proto=io.prometheus.write.v2.Request``), rewritten in Rust as a 1.0 request first
(``rust/src/prom/remote_write_v2.rs``); everything else (limits, memory check, rings) is the OTLP
path. Replies follow the remote-write spec and what Prometheus does with them:

- 204 once every sample is in a ring (the same acknowledgement contract as OTLP);
- 400 with the reason as text for a payload that can never be stored (Prometheus drops it);
- 503 with ``Retry-After`` for every refusal that may succeed later (memory limit, rings full).
  Never 429: Prometheus 2.x retries a 429 only with ``retry_on_http_429``, off by default, so a
  429 would lose samples;
- 429 with ``Retry-After`` when the request's tenant is over its ingest rate ([tenancy]), as Mimir
  answers: the tenant's own excess, which Prometheus drops unless ``retry_on_http_429``;
- 400 with the reason when some series were refused over the tenant's ``max_series_per_metric``
  (the other samples are stored, as Mimir does; Prometheus does not retry a 400, and a retry would
  be refused again);
- 413 when the decoded request is larger than a ring record (a smaller ``max_samples_per_send``
  fits);
- to a 2.0 request, a success also says what was written
  (``X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written``), as 2.0 senders expect.
"""

from __future__ import annotations

from .intake import BAD, FULL, MEMORY, OK, TENANT_LIMIT, TOO_LARGE, Outcome

PATH = "/api/v1/write"
TRANSPORT = "prometheus_remote_write"
CONTENT_TYPE = "application/x-protobuf"
STATUS = {OK: 204, BAD: 400, MEMORY: 503, FULL: 503, TOO_LARGE: 413, TENANT_LIMIT: 429}


PROTO_V1 = "prometheus.WriteRequest"
PROTO_V2 = "io.prometheus.write.v2.Request"


def check_headers(headers: dict[str, str]) -> tuple[str | None, int]:
    """(why the headers are not remote write 1.0 or 2.0 (-> 415) or None, the version: 1 or 2)."""
    base, _, params = headers.get("content-type", "").partition(";")
    content_type = base.strip().lower()
    if content_type != CONTENT_TYPE:
        return f"unsupported content type {content_type!r}; remote write sends {CONTENT_TYPE}", 1
    proto = PROTO_V1
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "proto":
            proto = value.strip().strip('"')
    if proto not in (PROTO_V1, PROTO_V2):
        return f"unsupported remote write message {proto!r} ({PROTO_V1} or {PROTO_V2})", 1
    v = 2 if proto == PROTO_V2 else 1
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding != "snappy":
        return f"unsupported content encoding {encoding!r}; remote write sends snappy", v
    version = headers.get("x-prometheus-remote-write-version", "").strip()
    if version and not version.startswith("0.1" if v == 1 else "2."):
        return f"unsupported remote write version {version!r} for {proto}", v
    return None, v


def written_headers(samples: int, exemplars: int) -> bytes:
    """The 2.0 reply headers that say what was written (no native histograms are stored)."""
    return (b"X-Prometheus-Remote-Write-Samples-Written: %d\r\n"
            b"X-Prometheus-Remote-Write-Histograms-Written: 0\r\n"
            b"X-Prometheus-Remote-Write-Exemplars-Written: %d\r\n" % (samples, exemplars))


def reply(outcome: Outcome) -> tuple[int, bytes]:
    """Status and text body for an outcome of the intake."""
    status = STATUS[outcome.kind]
    if outcome.kind == OK and outcome.over_limit:
        return 400, (outcome.message or "").encode() + b"\n"
    if outcome.kind == OK:
        return status, b""
    return status, (outcome.message or "").encode() + b"\n"
