"""A Prometheus remote-write client for ``bench remote_write``, the tests and the compliance harness: ``prompb.WriteRequest``
encoded by hand (the field numbers of prometheus/prompb types.proto and remote.proto), snappy block
format by cramjam, POSTed with the headers Prometheus sends. Remote write 2.0 too
(``write_request_v2``, io/prometheus/write/v2/types.proto), which the Prometheus here (2.42) cannot send."""

from __future__ import annotations

import http.client
import struct
from dataclasses import dataclass, field
from typing import Iterable

import cramjam

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "otelingest-tests/remote-write",
}
HEADERS_V2 = {**HEADERS, "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
              "X-Prometheus-Remote-Write-Version": "2.0.0"}
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
METRIC_TYPES = {"unknown": 0, "counter": 1, "gauge": 2, "histogram": 3, "gaugehistogram": 4, "summary": 5,
                "info": 6, "stateset": 7}


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _label(name: str, value: str) -> bytes:
    return _len_field(1, name.encode()) + _len_field(2, value.encode())


@dataclass
class Series:
    labels: dict[str, str]  # including __name__
    samples: list[tuple[int, float]] = field(default_factory=list)  # (ms, value)
    exemplars: list[tuple[dict[str, str], float, int]] = field(default_factory=list)  # (labels, value, ms)

    def encode(self) -> bytes:
        out = b"".join(_len_field(1, _label(k, v)) for k, v in sorted(self.labels.items()))
        for ms, v in self.samples:
            out += _len_field(2, b"\x09" + struct.pack("<d", v) + b"\x10" + _varint(ms))
        for labels, v, ms in self.exemplars:
            body = b"".join(_len_field(1, _label(k, val)) for k, val in labels.items())
            out += _len_field(3, body + b"\x11" + struct.pack("<d", v) + b"\x18" + _varint(ms))
        return out


def write_request(series: Iterable[Series], metadata: Iterable[tuple[str, str, str, str]] = ()) -> bytes:
    """The protobuf of a WriteRequest; metadata as (family, type, help, unit)."""
    out = b"".join(_len_field(1, s.encode()) for s in series)
    for family, kind, help_text, unit in metadata:
        body = _varint(1 << 3) + _varint(METRIC_TYPES[kind]) + _len_field(2, family.encode())
        body += _len_field(4, help_text.encode()) + _len_field(5, unit.encode())
        out += _len_field(3, body)
    return out


def write_request_v2(series: Iterable[Series], metadata: dict[str, tuple[str, str, str]] | None = None) -> bytes:
    """The protobuf of a 2.0 Request: labels as references into one symbols table; ``metadata``
    maps a metric name to (type, help, unit), attached to each of its series."""
    symbols: dict[str, int] = {"": 0}

    def ref(s: str) -> int:
        return symbols.setdefault(s, len(symbols))

    def refs(labels: dict[str, str]) -> bytes:
        packed = b"".join(_varint(ref(x)) for k, v in sorted(labels.items()) for x in (k, v))
        return _len_field(1, packed)

    body = b""
    for s in series:
        ts = refs(s.labels)
        for ms, v in s.samples:
            ts += _len_field(2, b"\x09" + struct.pack("<d", v) + b"\x10" + _varint(ms))
        for labels, v, ms in s.exemplars:
            ts += _len_field(4, refs(labels) + b"\x11" + struct.pack("<d", v) + b"\x18" + _varint(ms))
        meta = (metadata or {}).get(s.labels.get("__name__", ""))
        if meta:
            kind, help_text, unit = meta
            ts += _len_field(5, _varint(1 << 3) + _varint(METRIC_TYPES[kind]) + _varint(3 << 3) + _varint(ref(help_text))
                             + _varint(4 << 3) + _varint(ref(unit)))
        body += _len_field(5, ts)
    return b"".join(_len_field(4, sym.encode()) for sym in symbols) + body


def compress(raw: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(raw))


def post(host: str, port: int, body: bytes, headers: dict[str, str] | None = None, path: str = "/api/v1/write",
         conn: http.client.HTTPConnection | None = None) -> tuple[int, dict[str, str], bytes]:
    """POSTs a (compressed) body; returns status, lower-cased headers and the response body."""
    own = conn is None
    c = conn or http.client.HTTPConnection(host, port, timeout=60)
    try:
        c.request("POST", path, body=body, headers=headers if headers is not None else HEADERS)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        if own:
            c.close()
