"""Prometheus remote-write ingest benchmark: ``otelingest bench remote-write``.

Starts ``otelingest serve`` (as ``bench ingest`` does), sends pre-encoded snappy ``WriteRequest``s
closed loop (every connection back to back, retrying 503s after their Retry-After as Prometheus
does) for ``--duration`` seconds, waits until the stored rows reach what was acknowledged, and
reports samples/s accepted and stored, loss, and samples per daemon CPU-second (receivers, writers,
supervisor; ClickHouse apart).

The requests look like Prometheus' (a node-exporter-like series set, 2,000 samples per request, one
sample per series, six labels each). They are encoded once, before the run, with distinct
timestamps per request template; templates repeat during the run, so a series may get a timestamp
twice: each is still a row (acknowledged == stored counts rows). Sender and daemon share the
machine's cores: the figures are a lower bound of what the daemon alone does.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

from .ingest import (DB, Sampler, Serve, clickhouse_profile, daemon_metrics, server_events, summarize_processes,
                     wait_stored)
from .promwrite import Series, compress, write_request

SAMPLES_PER_REQUEST = 2000
TEMPLATES = 32
SERIES = 20_000
# Where remote-written samples are stored (since migration 0012; otel_metrics before).
TABLE = "otel_prom_samples"


def _templates(seed: int) -> list[bytes]:
    now_ms = int(time.time() * 1000)
    out = []
    for k in range(TEMPLATES):
        first = (k * SAMPLES_PER_REQUEST) % SERIES
        batch = []
        for j in range(SAMPLES_PER_REQUEST):
            i = (first + j) % SERIES
            labels = {"__name__": f"node_bench_metric_{i % 200}", "job": "node", "instance": f"host-{i // 200}:9100",
                      "cpu": str(i % 8), "mode": ("idle", "user", "system")[i % 3], "device": f"sd{chr(97 + i % 4)}"}
            batch.append(Series(labels, [(now_ms - 60_000 + k * 15 + seed, float(i * 1.5 + k))]))
        out.append(compress(write_request(batch)))
    return out


async def _sender(port: int, bodies: list[bytes], deadline: float, conns: int, out: Any) -> None:
    acked = refused = errors = 0

    async def one(c: int) -> None:
        nonlocal acked, refused, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        k = c
        while time.monotonic() < deadline:
            body = bodies[k % len(bodies)]
            k += conns
            writer.write((f"POST /api/v1/write HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                          f"Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            status = int(head.split(" ", 2)[1])
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            if status == 204:
                acked += SAMPLES_PER_REQUEST
            elif status == 503:
                refused += 1
                await asyncio.sleep(1.0)
            else:
                errors += 1
        writer.close()

    await asyncio.gather(*(one(c) for c in range(conns)))
    out.put((acked, refused, errors))


def _sender_main(port: int, seed: int, start_at: float, duration: float, conns: int, out: Any) -> None:
    bodies = _templates(seed)
    time.sleep(max(0.0, start_at - time.time()))
    asyncio.run(_sender(port, bodies, time.monotonic() + duration, conns, out))


def main(args: Any) -> int:
    duration = args.duration or 30.0
    senders = max(1, args.senders)
    conns = args.connections or 8
    work = Path(tempfile.mkdtemp(prefix="otelingest-bench-rw-"))
    serve = Serve(work, receivers=args.receivers, writers=args.writers, env={})
    serve.start()
    result: dict[str, Any] = {"duration_s": duration, "senders": senders, "connections": conns,
                              "samples_per_request": SAMPLES_PER_REQUEST}
    try:
        sampler = Sampler(serve, [TABLE])
        sampler.start()
        client = serve.client(DB)
        events_before = server_events(client)
        q: Any = mp.get_context("spawn").Queue()
        start_at = time.time() + 8.0  # the senders build their templates first
        procs = [mp.get_context("spawn").Process(target=_sender_main, args=(serve.http_port, s, start_at, duration,
                                                                             conns, q)) for s in range(senders)]
        for p in procs:
            p.start()
        t_from = start_at - sampler.t0
        totals = [q.get(timeout=duration + 120) for _ in procs]
        for p in procs:
            p.join(30)
        t_to = t_from + duration
        acked = sum(t[0] for t in totals)
        stored, waited = wait_stored(client, {TABLE: acked})
        # ClickHouse's own counters from the first request to the last row stored (drain included):
        # its CPU per sample, where the sampled CPU% above covers the sending window only.
        ch = clickhouse_profile(events_before, server_events(client), duration + waited + 8.0)
        ch_cpu_s = (ch.get("query_user_cpu_us", 0) + ch.get("query_system_cpu_us", 0)) / 1e6
        result["clickhouse_profile"] = ch
        # Refusals by reason (memory, ring_full, ...): what a closed loop's 503s came from.
        result["daemon_metrics"] = daemon_metrics(serve)
        result["samples_per_clickhouse_query_cpu_second"] = round(stored[TABLE] / ch_cpu_s) if ch_cpu_s else None
        sampler.stop()
        procs_summary = summarize_processes(sampler.samples, t_from, t_to)
        cpu_s = procs_summary["daemon_cpu_percent"] / 100 * duration
        result.update({
            "accepted_samples": acked, "stored_samples": stored[TABLE], "loss": acked - stored[TABLE],
            "accepted_per_s": round(acked / duration),
            # Stored over the run plus the drain after it: the rate ClickHouse keeps up with.
            "stored_per_s_until_drained": round(stored[TABLE] / (duration + waited)),
            "refused_requests": sum(t[1] for t in totals),
            "errors": sum(t[2] for t in totals), "store_wait_s": round(waited, 1),
            "daemon_cpu_seconds": round(cpu_s, 1),
            "samples_per_daemon_cpu_second": round(acked / cpu_s) if cpu_s else None, **procs_summary,
        })
    finally:
        serve.stop()
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    print(f"remote write, closed loop {duration:.0f} s: {result.get('accepted_per_s', 0):,} samples/s accepted, "
          f"stored {result.get('stored_samples', 0):,} of {result.get('accepted_samples', 0):,} "
          f"(loss {result.get('loss')}; {result.get('stored_per_s_until_drained', 0):,}/s until drained), "
          f"{result.get('samples_per_daemon_cpu_second')} samples per daemon CPU-second, "
          f"{result.get('samples_per_clickhouse_query_cpu_second')} per ClickHouse query CPU-second, "
          f"daemon CPU {result.get('daemon_cpu_percent')}%, ClickHouse CPU {result.get('clickhouse_cpu_percent')}%, "
          f"load {result.get('load_average')}")
    return 0 if result.get("loss") == 0 and not result.get("errors") else 1
