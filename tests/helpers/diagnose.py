"""What a failed daemon test shows about the daemon, so a flaky failure explains itself.

``with explain_on_failure(d, fs):`` around a test's body prints, when anything raises inside:
``/ready``, the self-metrics that say why data was refused or held, free space on ``fs``, the tails
of the daemon's log and of the embedded ClickHouse's error log, active parts per table and running
merges. Read while the daemon still runs (before ``stop()``, before a test filesystem is unmounted).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from daemon import Daemon

METRICS = ("otel_refused_total", "otel_disk_low", "otel_memory_usage_bytes", "otel_storage_writes_total",
           "otel_spilled_items_total", "otel_clickhouse_detached", "otel_received_spans_total", "otel_queue_size")


def _section(title: str, body: str) -> str:
    return f"--- {title} ---\n{body.rstrip()}\n"


def _ready(d: Daemon) -> str:
    try:
        with urllib.request.urlopen(d.metrics_url + "/ready", timeout=5) as r:
            return f"{r.status} {r.read().decode(errors='replace')}"
    except urllib.error.HTTPError as e:
        return f"{e.code} {e.read().decode(errors='replace')}"
    except OSError as e:
        return f"no answer: {e}"


def _metrics(d: Daemon) -> str:
    try:
        text = d.metrics_text()
    except OSError as e:
        return f"no answer: {e}"
    return "\n".join(line for line in text.splitlines() if line.startswith(METRICS))


def _free(path: Path) -> str:
    try:
        st = os.statvfs(path)
    except OSError as e:
        return f"{path}: {e}"
    return (f"{path}: {st.f_bavail * st.f_frsize / 2**20:.1f} MiB free of {st.f_blocks * st.f_frsize / 2**20:.1f} MiB")


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"{path}: {e}"


def _clickhouse(d: Daemon) -> str:
    try:
        parts = d.client().query(
            "SELECT table, count(), sum(rows) FROM system.parts WHERE database = {db:String} AND active "
            "GROUP BY table ORDER BY table", parameters={"db": d.database}).result_rows
        merges = d.client().query("SELECT table, round(elapsed, 1), round(progress, 2) FROM system.merges").result_rows
        detached = d.client().query("SELECT table, name, reason FROM system.detached_parts").result_rows
    except Exception as e:  # noqa: BLE001 - a diagnosis never hides the failure it explains
        return f"no answer: {type(e).__name__}: {str(e)[:300]}"
    return (f"active parts (table, parts, rows): {parts}\nmerges running: {merges}\ndetached parts: {detached}")


def explain(d: Daemon, fs: Path | None = None, log_lines: int = 80) -> str:
    out = [_section("/ready", _ready(d)), _section("self-metrics", _metrics(d))]
    if fs is not None:
        out.append(_section("free space", _free(fs)))
    out.append(_section("ClickHouse", _clickhouse(d)))
    out.append(_section(f"daemon log, last {log_lines} lines", d.log_tail(log_lines)))
    ch_err = d.data_dir / "clickhouse" / "log" / "clickhouse.err.log"
    if ch_err.exists():
        out.append(_section("ClickHouse error log, last 30 lines", _tail(ch_err, 30)))
    return "".join(out)


@contextmanager
def explain_on_failure(d: Daemon, fs: Path | None = None) -> Iterator[None]:
    try:
        yield
    except BaseException:
        try:
            text = explain(d, fs)
        except Exception as e:  # noqa: BLE001
            text = f"(diagnosis failed: {type(e).__name__}: {e})"
        print(f"\n===== daemon state at the failure =====\n{text}", flush=True)
        raise
