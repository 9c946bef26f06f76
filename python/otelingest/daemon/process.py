"""What a daemon process tells the operating system: its title in ``ps`` and systemd's notify socket."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("otelingest.supervisor")


def set_process_title(title: str) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(title)
    except ImportError:  # pragma: no cover - a declared dependency
        pass


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about readiness or stopping; a no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(addr)
            s.sendall(message.encode())
        except OSError as e:
            log.warning("sd_notify failed: %s", e)


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Requests' bodies, decoded blocks and ring records are 0.1-1 MB each and freed within the request:
# under these sizes glibc keeps them in its heaps instead of mapping fresh pages for each (mmap, a
# page fault per 4 KB, munmap) and handing them back as soon as they are freed. Bounds what each
# malloc arena may keep unused: at most TRIM_THRESHOLD_BYTES free at its top.
MMAP_THRESHOLD_BYTES = 8 << 20
TRIM_THRESHOLD_BYTES = 32 << 20


def keep_freed_memory() -> bool:
    """Set the thresholds above in this process (glibc only); False where there is no mallopt."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
