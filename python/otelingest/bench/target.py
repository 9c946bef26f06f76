"""``otelingest loadgen``: the benchmark's load generator (:mod:`otelingest.bench.loadgen`) against any
OTLP endpoint: this daemon, a fleet behind an L4 balancer, a remote host, another vendor's collector.

One protocol per run (gRPC or HTTP/protobuf) to ``--endpoint HOST:PORT``; open loop at ``--rate``
items/s or closed loop (``--rate 0``); the signals in turn; refusals retried after the endpoint's
Retry-After / RetryInfo hint. Prints the bench's progress line once a second and a summary, and with
``--json PATH`` writes per signal the items accepted, the refusals, the failed requests, and the
export latency percentiles.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import loadgen

DEFAULT_RATE = 10_000.0
DEFAULT_DURATION_S = 30.0
DEFAULT_CONNECTIONS = 4


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); SystemExit with the reason otherwise."""
    if "://" in text:
        raise SystemExit(f"otelingest loadgen: --endpoint is HOST:PORT, not a URL: {text!r}")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"otelingest loadgen: --endpoint must be HOST:PORT: {text!r}")
    return host.strip("[]"), int(port)


def parse_headers(items: list[str] | None) -> tuple[tuple[str, str], ...]:
    out = []
    for kv in items or []:
        k, sep, v = kv.partition("=")
        if not sep or not k.strip():
            raise SystemExit(f"otelingest loadgen: --headers takes KEY=VALUE: {kv!r}")
        out.append((k.strip(), v.strip()))
    return tuple(out)


def build_spec(args: Any) -> loadgen.LoadSpec:
    host, port = parse_endpoint(args.endpoint)
    if args.ca and not Path(args.ca).is_file():
        raise SystemExit(f"otelingest loadgen: --ca: no such file: {args.ca}")
    rate = DEFAULT_RATE if args.rate is None else float(args.rate)
    return loadgen.LoadSpec(
        host=host,
        grpc_port=port if args.protocol == "grpc" else None,
        http_port=port if args.protocol == "http" else None,
        rate=rate or None,
        duration=float(args.duration if args.duration is not None else DEFAULT_DURATION_S),
        warmup=float(args.warmup),
        connections=int(args.connections),
        processes=int(args.processes),
        mix=loadgen.parse_mix(args.signals),
        transport=args.protocol,
        seed=args.seed if args.seed is not None else loadgen.SEED,
        headers=parse_headers(args.headers),
        ca_file=args.ca,
    )


def report(spec: loadgen.LoadSpec, load: loadgen.LoadResult, endpoint: str) -> dict[str, Any]:
    """The JSON summary: per signal accepted items, refusals and failures; latency over the whole run."""
    lat = load.all_latencies_ms
    signals = {
        s: {"accepted": load.accepted.get(s, 0), "refused": load.refused.get(s, 0),
            "failed": load.failed.get(s, 0), "abandoned": load.abandoned.get(s, 0)}
        for s in spec.mix
    }
    return {
        "endpoint": endpoint, "protocol": spec.transport, "tls": bool(spec.ca_file),
        "headers": [k for k, _ in spec.headers],  # names only: values may be secrets
        "rate": spec.rate, "duration_s": spec.duration, "warmup_s": spec.warmup,
        "connections": spec.connections, "processes": spec.processes, "mix": spec.mix,
        "signals": signals,
        "accepted": sum(v["accepted"] for v in signals.values()),
        "refused": load.refusals, "failed": load.errors,
        "requests": load.requests,
        "items_per_s": round(load.items_per_s),
        "measured_seconds": round(load.seconds, 2),
        "schedule_lag_s": round(load.lag_s, 2),
        "latency_ms": {
            "p50": round(loadgen.percentile(lat, 50), 2), "p95": round(loadgen.percentile(lat, 95), 2),
            "p99": round(loadgen.percentile(lat, 99), 2), "max": round(max(lat, default=0.0), 2),
        },
        "errors": dict(sorted(load.error_kinds.items(), key=lambda kv: -kv[1])),
        "timeline": load.timeline,
    }


def render(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    pacing = f"target {r['rate']:,.0f} items/s" if r["rate"] else "closed loop"
    lines = [
        "",
        f"otelingest loadgen -> {r['endpoint']} ({r['protocol']}{', TLS' if r['tls'] else ''}), "
        f"{pacing}, {r['measured_seconds']} s measured",
        f"  accepted  {r['accepted']:>12,} items   {r['items_per_s']:,} items/s   ({r['requests']:,} requests)",
        f"  latency   p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, max {lat['max']} ms",
        f"  refused   {r['refused']:,} answers (retried after the hinted delay)   failed {r['failed']:,} requests",
    ]
    for s, v in r["signals"].items():
        lines.append(f"    {s:8} accepted {v['accepted']:>12,}  refused {v['refused']:>6,}  failed {v['failed']:>6,}  "
                     f"abandoned {v['abandoned']:>4,}")
    for msg, n in list(r["errors"].items())[:5]:
        lines.append(f"  error x{n}: {msg}")
    return "\n".join(lines)


def main(args: Any) -> int:
    spec = build_spec(args)
    load = loadgen.run(spec, label="loadgen")
    r = report(spec, load, args.endpoint)
    r["command"] = " ".join(["otelingest", *sys.argv[1:]])
    print(render(r), flush=True)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r, indent=2, sort_keys=True) + "\n")
        print(f"  wrote {path}")
    # Nothing accepted at all (endpoint down, wrong protocol, refused auth): say so in the exit code too.
    return 0 if r["accepted"] else 1
