"""Prometheus remote write 1.0 on the OTLP/HTTP port: what differs from OTLP/HTTP.

The body is a snappy-compressed ``prompb.WriteRequest`` (decoded in Rust,
``rust/src/prom/remote_write.rs``); everything else (limits, memory check, rings) is the OTLP path.
Replies follow the remote-write spec and what Prometheus does with them:

- 204 once every sample is in a ring (the same acknowledgement contract as OTLP);
- 400 with the reason as text for a payload that can never be stored (Prometheus drops it);
- 503 with ``Retry-After`` for every refusal that may succeed later (memory limit, rings full).
  Never 429: Prometheus 2.x retries a 429 only with ``retry_on_http_429``, off by default, so a
  429 would lose samples;
- 413 when the decoded request is larger than a ring record (a smaller ``max_samples_per_send``
  fits).
"""

from __future__ import annotations

from .intake import BAD, FULL, MEMORY, OK, TOO_LARGE, Outcome

PATH = "/api/v1/write"
TRANSPORT = "prometheus_remote_write"
CONTENT_TYPE = "application/x-protobuf"
STATUS = {OK: 204, BAD: 400, MEMORY: 503, FULL: 503, TOO_LARGE: 413}


def check_headers(content_type: str, headers: dict[str, str]) -> str | None:
    """Why the request's headers are not remote write 1.0 (-> 415), or None."""
    if content_type != CONTENT_TYPE:
        return f"unsupported content type {content_type!r}; remote write sends {CONTENT_TYPE}"
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding != "snappy":
        return f"unsupported content encoding {encoding!r}; remote write sends snappy"
    version = headers.get("x-prometheus-remote-write-version", "").strip()
    if version and not version.startswith("0.1"):
        return f"unsupported remote write version {version!r} (0.1.0)"
    return None


def reply(outcome: Outcome) -> tuple[int, bytes]:
    """Status and text body for an outcome of the intake."""
    status = STATUS[outcome.kind]
    if outcome.kind == OK:
        return status, b""
    return status, (outcome.message or "").encode() + b"\n"
