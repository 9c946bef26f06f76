"""The metrics endpoint: ``/metrics`` (all processes, prometheus-client multiprocess mode),
``/health`` (liveness: 200 while the supervisor runs) and ``/ready`` (503 until ClickHouse
answers and the schema is current, with the reason).

Served by a thread of the supervisor so it answers even while every worker restarts.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(path: Path) -> None:
    """Empty the directory shared by every process's metric files; call before prometheus_client is imported."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)


def render_metrics() -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class HealthServer:
    """``readiness()`` returns (ready, reason); it is called per request and must be cheap."""

    def __init__(self, host: str, port: int, readiness: Callable[[], tuple[bool, str]]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # one line per event is ours
                pass

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, ctype = render_metrics()
                    self._send(200, body, ctype)
                elif path == "/health":
                    self._send(200, b'{"status":"ok"}', "application/json")
                elif path == "/ready":
                    ok, reason = outer.readiness()
                    body = json.dumps({"status": "ready" if ok else "not ready", "reason": reason}).encode()
                    self._send(200 if ok else 503, body, "application/json")
                else:
                    self._send(404, b'{"error":"not found"}', "application/json")

            do_HEAD = do_GET

        self.readiness = readiness
        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
