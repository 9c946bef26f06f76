"""A real Prometheus server (Debian's 2.42, `make system-deps`) for tests: started on a free port with
a given configuration and TSDB directory, stopped (SIGTERM, then SIGKILL) on exit."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def prometheus(config: str, workdir: Path, tsdb: Path | None = None) -> Iterator[str]:
    """Runs Prometheus with ``config`` (YAML text); yields its URL once ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "prometheus.yml"
    path.write_text(config)
    port = free_port()
    log = open(workdir / "prometheus.log", "wb")
    proc = subprocess.Popen(["prometheus", f"--config.file={path}", f"--storage.tsdb.path={tsdb or workdir / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{(workdir / 'prometheus.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
