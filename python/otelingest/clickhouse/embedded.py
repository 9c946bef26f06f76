"""The embedded ClickHouse server: the real engine from ``chdb-core`` with HTTP and TCP listeners.

The engine's listeners exist only on the clickhouse-local code path (``chdb._chdb.query`` with a
data path): the server process runs ``SYSTEM START LISTEN`` followed by a read of a FIFO that blocks
and keeps the listeners up. Writing EOF to that FIFO ends the query and closes them cleanly. One
engine per process, and one process per data directory, so restarting means a new process.

The parent side (:class:`EmbeddedClickHouse`) owns the process: start, readiness by ``GET /ping``,
stop (EOF, then SIGTERM, then SIGKILL), and the tail of its stderr when it dies.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

from ..errors import StorageError

PROCESS_TITLE = "otelingest: clickhouse"
FIFO_NAME = "control.fifo"
CONFIG_NAME = "config.xml"
# Extra server settings (e.g. <zookeeper>, <remote_servers>, <macros>): ClickHouse merges every
# config.d/*.xml next to config.xml over it.
EXTRA_CONFIG_PATH = "config.d/otelingest-extra.xml"
# The free space the server keeps on its disk (keep_free_space_bytes): its inserts and merges fail
# cleanly with NOT_ENOUGH_SPACE before the filesystem is full, instead of ENOSPC mid-part.
DISK_CONFIG_PATH = "config.d/otelingest-disk.xml"
# Background merge threads (background_pool_size): chdb-core, made to run inside other programs,
# lowers ClickHouse's 16 to 2, and with 2 the merges of the nine tables one batch writes to fell
# behind the inserts (active parts +147/min in the soak, docs/benchmarks.md). The schedule pool
# runs each table's merge selection; chdb-core's 2 threads there delay it too.
MERGE_CONFIG_PATH = "config.d/otelingest-merges.xml"
DEFAULT_MERGE_THREADS = 16  # config.DEFAULT_EMBEDDED_MERGE_THREADS
SCHEDULE_POOL_THREADS = 16


def _merge_config_xml(merge_threads: int) -> str:
    return f"""<clickhouse>
  <background_pool_size>{merge_threads}</background_pool_size>
  <background_schedule_pool_size>{SCHEDULE_POOL_THREADS}</background_schedule_pool_size>
</clickhouse>
"""


def _disk_config_xml(keep_free_space_bytes: int) -> str:
    return f"""<clickhouse>
  <storage_configuration>
    <disks>
      <default>
        <keep_free_space_bytes>{keep_free_space_bytes}</keep_free_space_bytes>
      </default>
    </disks>
  </storage_configuration>
</clickhouse>
"""


def _config_xml(root: Path, http_port: int, tcp_port: int, max_memory_mib: int) -> str:
    log_dir = root / "log"
    memory = ""
    if max_memory_mib:
        # Merges take at most half the cap (ClickHouse's default is half the host's RAM, which a cap
        # makes meaningless): with 16 merge threads they otherwise left queries and INSERTs no room.
        memory = (f"<max_server_memory_usage>{max_memory_mib << 20}</max_server_memory_usage>"
                  f"<merges_mutations_memory_usage_soft_limit>{max_memory_mib << 19}"
                  "</merges_mutations_memory_usage_soft_limit>")
    return f"""<clickhouse>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  {memory}
  <logger>
    <level>warning</level>
    <console>0</console>
    <log>{escape(str(log_dir / "clickhouse.log"))}</log>
    <errorlog>{escape(str(log_dir / "clickhouse.err.log"))}</errorlog>
    <size>50M</size>
    <count>3</count>
  </logger>
  <profiles>
    <default>
      <max_partitions_per_insert_block>0</max_partitions_per_insert_block>
    </default>
  </profiles>
</clickhouse>
"""


class EmbeddedClickHouse:
    """Parent-side handle of the embedded server process.

    Data lives in ``root/data``; ``root/etc`` holds the generated config and the control FIFO;
    ``root/log`` the server's logs and the process's stderr.
    """

    def __init__(
        self, root: Path, *, http_port: int, tcp_port: int, max_memory_mib: int = 0, extra_config_xml: str | None = None,
        keep_free_space_mib: int = 0, merge_threads: int = DEFAULT_MERGE_THREADS,
    ) -> None:
        """``extra_config_xml``: a whole ``<clickhouse>...</clickhouse>`` document merged over the
        generated config (cluster settings for tests of the cluster path); None adds nothing.
        ``keep_free_space_mib``: free space the server leaves on its disk (0: none).
        ``merge_threads``: background merge threads (``background_pool_size``)."""
        self.root = Path(root).resolve()
        self.http_port = http_port
        self.tcp_port = tcp_port
        self.max_memory_mib = max_memory_mib
        self.extra_config_xml = extra_config_xml
        self.keep_free_space_mib = keep_free_space_mib
        self.merge_threads = merge_threads
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def stderr_path(self) -> Path:
        return self.root / "log" / "stderr.log"

    def start(self) -> None:
        """Spawn the server process; returns at once (see :meth:`wait_ready`)."""
        for sub in ("data", "etc", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        extra = self.root / "etc" / EXTRA_CONFIG_PATH
        if self.extra_config_xml is not None:
            extra.parent.mkdir(exist_ok=True)
            extra.write_text(self.extra_config_xml)
        elif extra.exists():
            extra.unlink()
        disk = self.root / "etc" / DISK_CONFIG_PATH
        disk.parent.mkdir(exist_ok=True)
        disk.write_text(_disk_config_xml(self.keep_free_space_mib * 1024 * 1024))
        (self.root / "etc" / MERGE_CONFIG_PATH).write_text(_merge_config_xml(self.merge_threads))
        cmd = [
            sys.executable, "-m", "otelingest.clickhouse.embedded",
            str(self.root), str(self.http_port), str(self.tcp_port), str(self.max_memory_mib),
        ]
        with open(self.stderr_path, "ab") as err:
            # New session: Ctrl-C in the terminal reaches the supervisor, which stops this cleanly.
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ping(self, timeout: float = 1.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=timeout) as r:
                return r.status == 200 and r.read().strip() == b"Ok."
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until ``/ping`` answers.

        Raises:
            StorageError: the process exited (with the tail of its stderr) or the timeout passed.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping(timeout=0.5):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise StorageError(
                    f"embedded ClickHouse exited with code {self.proc.returncode}: {self.stderr_tail()}", retryable=False
                )
            time.sleep(0.05)
        raise StorageError(f"embedded ClickHouse did not answer /ping within {timeout:.0f}s: {self.stderr_tail()}", retryable=True)

    def stderr_tail(self, lines: int = 5) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """Stop cleanly: SIGTERM makes the server end its listening query; SIGKILL after ``timeout``."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode


# --- the server process ---------------------------------------------------------------------------


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def _release(fifo: Path, done: threading.Event) -> None:
    """Write EOF to the FIFO the listening query reads, which ends it."""
    while not done.is_set():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            # ENXIO: the query has not opened the FIFO yet; try again shortly.
            if e.errno != errno.ENXIO:
                raise
            time.sleep(0.05)
            continue
        os.close(fd)
        return


def _stop_with_parent() -> None:
    """SIGTERM this server when the process that started it dies, even by SIGKILL.

    Otherwise an orphan keeps the data directory locked and the ports bound, and the next
    supervisor's server cannot start. SIGTERM takes the clean path (EOF to the FIFO). The kernel
    ties this to the *thread* that spawned the server, so spawn it from a thread that outlives it
    (the supervisor's and the CLI's main thread do).
    """
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor's own stop still applies
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def serve(root: Path, http_port: int, tcp_port: int, max_memory_mib: int) -> int:
    try:
        import setproctitle

        setproctitle.setproctitle(PROCESS_TITLE)
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    _stop_with_parent()
    etc = root / "etc"
    fifo = etc / FIFO_NAME
    (etc / CONFIG_NAME).write_text(_config_xml(root, http_port, tcp_port, max_memory_mib))
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)
    # Import chdb from a directory without config.xml: its import-time probe would read it.
    os.chdir(root)
    import chdb._chdb as engine

    os.chdir(etc)
    # Set by the signal handler, which must take no lock: it runs in the main thread between any two
    # bytecodes, possibly while that thread holds the very lock an Event.set() would take.
    stopping: list[int] = []
    done = threading.Event()
    failure: list[BaseException] = []

    def listen() -> None:
        # Stop signals go to the main thread, which ends the query: the engine's threads, started
        # from this one, inherit the mask. Otherwise the kernel may hand SIGTERM to one of them, and
        # a main thread blocked in wait() never runs its handler (an orphan ignoring SIGTERM).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            engine.query(  # type: ignore[attr-defined]  # a C extension without stubs
                f"SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; SELECT count() FROM file('{fifo}', 'RawBLOB')",
                # The output format becomes the HTTP default; clickhouse-connect's handshake needs TSV.
                "TabSeparated",
                path=str(root / "data"),
            )
        except BaseException as e:  # reported by the main thread
            failure.append(e)
        finally:
            done.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    thread = threading.Thread(target=listen, name="clickhouse", daemon=True)
    thread.start()
    while not stopping and not done.wait(0.2):  # wakes often to see a signal's flag
        pass
    if not done.is_set():
        _release(fifo, done)
    thread.join()
    if failure:
        print(f"embedded ClickHouse failed: {failure[0]}", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root, http_port, tcp_port, max_memory_mib = Path(args[0]), int(args[1]), int(args[2]), int(args[3])
    return serve(root, http_port, tcp_port, max_memory_mib)


if __name__ == "__main__":
    raise SystemExit(main())
