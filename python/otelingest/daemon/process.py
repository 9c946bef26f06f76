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
