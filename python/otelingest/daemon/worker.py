"""Entry point of every child of the supervisor: ``python -m otelingest.daemon.worker ROLE INDEX RUN_DIR``.

Children are fresh interpreters (fork+exec through ``subprocess``), not ``os.fork`` copies: the
supervisor runs threads (health server, storage watcher, memory limiter) before it starts any
worker, and a fork of a threaded process may inherit held locks. A fresh interpreter also loads
grpc and uvloop cleanly (grpc does not survive fork). Each child reads the effective config from
``run/worker.json``, names itself in ``ps``, sets up its own logging, binds its own sockets
(SO_REUSEPORT) and attaches the rings and the status page the supervisor created.

Signals: SIGTERM = graceful stop (receivers finish in-flight requests; writers drain and flush).
SIGINT is ignored: a Ctrl-C reaches the whole process group, and the supervisor orders the stop.
A child whose supervisor is gone (parent pid changed) stops by itself.

Exit codes: 0 after a stop, EXIT_CONFIG for a config it cannot use, EXIT_BOOT when it cannot start
(port taken, ring missing); the supervisor stops on those instead of looping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..selfmon import logsetup
from ..errors import EXIT_BOOT, EXIT_CONFIG, EXIT_OK, BootError, ConfigError
from .rundir import WORKER_FILE, Layout, read_worker_file
from .flags import StatusPage
from .process import keep_freed_memory, set_process_title

log = logging.getLogger("otelingest.worker")

HEARTBEAT_S = 0.5
DECODE_THREADS = 4
GRPC_THREADS = 16
# Receivers get this long beyond the request timeout to finish in-flight requests on stop.
STOP_GRACE_S = 10.0


def attach(layout: Layout, role: Any, pairs: list[tuple[int, int]]) -> tuple[StatusPage, list[Any]]:
    """The status page and this worker's end (``role``: RingProducer or RingConsumer) of each ring.
    A role still held by a live process (a predecessor not yet gone) is not a boot failure: the
    exception propagates, the worker exits 1 and the supervisor retries after a backoff."""
    from .._native import RingBusy

    try:
        return StatusPage.attach(layout.status_path), [role.attach(str(layout.ring_path(i, j))) for i, j in pairs]
    except RingBusy:
        raise
    except (OSError, ValueError) as e:
        raise BootError(f"cannot attach the run directory {layout.run_dir}: {e}") from e


class Orphaned:
    """Detects that the supervisor died (we were re-parented)."""

    def __init__(self) -> None:
        self.parent = os.getppid()

    def __call__(self) -> bool:
        return os.getppid() != self.parent


# --- receiver ---------------------------------------------------------------------------------------


def run_receiver(index: int, cfg: Any, layout: Layout) -> int:
    import uvloop

    from .._native import RingProducer
    from ..auth import Authenticator
    from ..ingest.receiver.grpc import GrpcReceiver
    from ..ingest.receiver.http import HttpReceiver
    from ..ingest.receiver.intake import Intake
    from ..tenancy import RateLimiter, Tenancy

    from ..selfmon import instruments

    keep_freed_memory()
    status, rings = attach(layout, RingProducer, [(index, j) for j in range(layout.writers)])
    slot = layout.receiver_slot(index)
    instruments.configure_tenants(cfg.tenancy.max_metric_tenants, cfg.tenancy.tenants)
    limiter = RateLimiter(cfg.tenancy, layout.receivers)
    intake = Intake(cfg, rings, index=index, refuse=lambda: status.refuse, disk_low=lambda: status.disk_low,
                    limiter=limiter)
    rc = cfg.receiver
    decode_pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")
    orphaned = Orphaned()
    auth = Authenticator(cfg.auth, "receiver")
    tenancy = Tenancy(cfg.tenancy, auth)
    ssl_ctx, tls = None, None
    if cfg.tls.receiver_cert_file and cfg.tls.receiver_key_file:
        import ssl

        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(cfg.tls.receiver_cert_file, cfg.tls.receiver_key_file)
        tls = (Path(cfg.tls.receiver_key_file).read_bytes(), Path(cfg.tls.receiver_cert_file).read_bytes())

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set if sig == signal.SIGTERM else (lambda: None))
        http = HttpReceiver(intake, decode_pool, host=rc.host, port=rc.http_port, max_body=rc.max_request_bytes,
                            timeout_s=rc.request_timeout_s, retry_after_s=rc.retry_after_s,
                            max_concurrent=rc.max_concurrent_requests, auth=auth, ssl=ssl_ctx,
                            tenancy=tenancy)
        try:
            await http.start()
        except OSError as e:
            raise BootError(f"cannot listen on {rc.host}:{rc.http_port} for OTLP/HTTP ({e.strerror or e}); "
                            "change receiver.http_port (--http-port)") from e
        try:
            grpc_rx = GrpcReceiver(intake, host=rc.host, port=rc.grpc_port, max_message_bytes=rc.max_decompressed_bytes,
                                   threads=GRPC_THREADS, retry_after_s=rc.retry_after_s, auth=auth, tls=tls,
                                   tenancy=tenancy)
            grpc_rx.start()
        except OSError as e:
            raise BootError(f"cannot listen on {rc.host}:{rc.grpc_port} for OTLP/gRPC ({e}); "
                            "change receiver.grpc_port (--grpc-port)") from e
        log.info("receiver %d listening: OTLP/gRPC %s:%d, OTLP/HTTP %s:%d", index, rc.host, rc.grpc_port, rc.host, rc.http_port)

        def beat() -> None:
            status.beat(slot, http.inflight_bytes)
            if orphaned():
                log.warning("supervisor gone; stopping")
                stop.set()
            else:
                loop.call_later(HEARTBEAT_S, beat)

        beat()
        await stop.wait()
        log.info("receiver %d stopping: finishing in-flight requests", index)
        grace = rc.request_timeout_s + STOP_GRACE_S
        grpc_stop = loop.run_in_executor(None, grpc_rx.stop, grace)
        await http.stop(grace)
        await grpc_stop
        return EXIT_OK

    code = uvloop.run(main())
    decode_pool.shutdown(wait=True)
    log.info("receiver %d stopped", index)
    return code


# --- writer -----------------------------------------------------------------------------------------


def orphan_spill_queues(cfg: Any, layout: Layout) -> list[Any]:
    """Spill queues of writer indexes beyond this run's count (the last run had more writers)."""
    from ..ingest.spill import SpillQueue

    out = []
    root = cfg.data_path / "spill"
    for d in sorted(root.glob("writer-*")) if root.is_dir() else []:
        m = re.fullmatch(r"writer-(\d+)", d.name)
        if m and int(m.group(1)) >= layout.writers and d.is_dir():
            q = SpillQueue(d, budget_bytes=0, fsync=cfg.spill.fsync)
            if len(q):
                log.info("spill queue %s (%d bytes) belongs to no writer this run; writer 0 replays it", d, len(q))
                out.append(q)
            else:
                q.close()
    return out


def run_writer(index: int, cfg: Any, layout: Layout) -> int:
    from .._native import RingConsumer
    from ..config import MIB
    from ..ingest.spill import SpillQueue
    from ..ingest.writer.inserter import Inserter
    from ..ingest.writer.ledger import Ledger
    from ..ingest.writer.service import WriterService

    keep_freed_memory()
    status, rings = attach(layout, RingConsumer, [(i, index) for i in range(layout.receivers)])
    stop, drain = threading.Event(), threading.Event()
    inserter_stop = threading.Event()

    def on_sigterm(*_: object) -> None:
        drain.set()
        # Bounded drain: past the stop timeout what is unstored stays in the rings and the ledger.
        def give_up() -> None:
            inserter_stop.set()
            stop.set()

        timer = threading.Timer(cfg.writer.stop_timeout_s, give_up)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_sigterm)
    # The inserter logs each outage itself; the HTTP client's per-attempt warnings would flood.
    for noisy in ("urllib3", "clickhouse_connect"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    slot = layout.writer_slot(index)
    orphaned = Orphaned()

    def heartbeat(held: int) -> None:
        status.beat(slot, held)
        if orphaned() and not drain.is_set():
            on_sigterm()

    from .diskfloor import SpillRoom

    spill_dir = cfg.data_path / "spill" / f"writer-{index}"
    spill = SpillQueue(
        spill_dir,
        budget_bytes=cfg.spill.disk_budget_mib * MIB // max(1, layout.writers), fsync=cfg.spill.fsync,
        room=SpillRoom(cfg, spill_dir, lambda: status.clickhouse_reserved).check,
    )
    service = WriterService(
        cfg, rings, Ledger(layout.ledger_path(index)),
        Inserter(cfg, stop=inserter_stop, storage_ready=lambda: status.storage_ready,
                 hold=lambda: status.insert_hold),
        index=index, pause=lambda: status.pause_writers, heartbeat=heartbeat, spill=spill,
        orphan_spills=orphan_spill_queues(cfg, layout) if index == 0 else (),
    )
    log.info("writer %d draining %d rings", index, len(rings))
    try:
        service.run(stop, drain)
    finally:
        service.close()
    log.info("writer %d stopped: %s", index, service.describe())
    return EXIT_OK


# --- query ------------------------------------------------------------------------------------------


def run_query(index: int, cfg: Any, layout: Layout) -> int:
    import uvicorn

    from ..query.app import create_app  # type: ignore[import-not-found,import-untyped,unused-ignore]

    status = StatusPage.attach(layout.status_path)
    orphaned = Orphaned()
    q = cfg.query
    # Bound here rather than by uvicorn, which answers a taken port with sys.exit(1): a crash to the
    # supervisor, restarted in a loop, where this is a boot failure that names the port.
    sock = socket.socket(socket.AF_INET6 if ":" in q.host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((q.host, q.port))
        sock.listen(1024)
    except OSError as e:
        sock.close()
        raise BootError(f"cannot listen on {q.host}:{q.port} for the query API ({e.strerror or e}); "
                        "change query.port (--query-port)") from e
    server = uvicorn.Server(uvicorn.Config(
        create_app(cfg), host=cfg.query.host, port=cfg.query.port, loop="uvloop", log_config=None,
        access_log=False, lifespan="auto",
        ssl_certfile=cfg.tls.query_cert_file, ssl_keyfile=cfg.tls.query_key_file,
    ))

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def beat() -> None:
            status.beat(layout.query_slot, 0)
            if orphaned():
                server.should_exit = True
            loop.call_later(HEARTBEAT_S, beat)

        beat()
        await server.serve(sockets=[sock])

    asyncio.run(main())
    return EXIT_OK


ROLES = {"receiver": run_receiver, "writer": run_writer, "query": run_query}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] not in ROLES:
        print("usage: python -m otelingest.daemon.worker {receiver|writer|query} INDEX RUN_DIR", file=sys.stderr)
        return EXIT_CONFIG
    role, index, run_dir = args[0], int(args[1]), Path(args[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cfg, layout = read_worker_file(run_dir)
    except (OSError, ValueError, ConfigError) as e:
        print(f"otelingest {role} {index}: cannot read {run_dir / WORKER_FILE}: {e}", file=sys.stderr)
        return EXIT_CONFIG
    title = f"otelingest: {role}" if role == "query" else f"otelingest: {role} {index}"
    set_process_title(title)
    logsetup.configure(title.removeprefix("otelingest: "), cfg.log.format, cfg.log.level)
    try:
        return ROLES[role](index, cfg, layout)
    except BootError as e:
        log.error("%s %d failed to boot: %s", role, index, e)
        try:  # the supervisor names the cause in its last line
            layout.boot_failure_path.write_text(f"{title.removeprefix('otelingest: ')}: {e}")
        except OSError:
            pass
        return EXIT_BOOT
    except Exception:
        log.exception("%s %d crashed", role, index)
        return 1


if __name__ == "__main__":
    sys.exit(main())
