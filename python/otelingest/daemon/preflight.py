"""Checks ``otelingest serve`` makes before it starts anything, each failing with one line.

A daemon that cannot succeed must say so at once rather than stay up unready: the installation
lacks its SQL, a TLS certificate does not load, another daemon holds the data directory, or a port is taken (by a ClickHouse
server already on the host, another otelingest, anything). Each :class:`~otelingest.errors.BootError`
names the cause and the config key or flag to change; the CLI prints it and exits EXIT_BOOT.

Ports are probed by binding them *without* SO_REUSEPORT: the receivers share their ports between
workers with SO_REUSEPORT, so a second daemon binding that way would silently split the traffic
with the first instead of failing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import ssl
from pathlib import Path
from typing import IO

from ..auth import Authenticator
from ..clickhouse import sqlfiles
from ..tenancy import Tenancy
from ..config import Config
from ..errors import BootError

LOCK_NAME = "otelingest.lock"


def listeners(cfg: Config) -> list[tuple[str, str, int, str]]:
    """(what, host, port, key and flag) of every port ``serve`` listens on."""
    out = [
        ("OTLP/gRPC", cfg.receiver.host, cfg.receiver.grpc_port, "receiver.grpc_port (--grpc-port)"),
        ("OTLP/HTTP", cfg.receiver.host, cfg.receiver.http_port, "receiver.http_port (--http-port)"),
        ("the query API", cfg.query.host, cfg.query.port, "query.port (--query-port)"),
        ("/metrics", cfg.metrics.host, cfg.metrics.port, "metrics.port (--metrics-port)"),
    ]
    if cfg.clickhouse.embedded:
        out += [
            ("the embedded ClickHouse HTTP", "127.0.0.1", cfg.clickhouse.embedded_http_port,
             "clickhouse.embedded_http_port (--clickhouse-http-port)"),
            ("the embedded ClickHouse native TCP", "127.0.0.1", cfg.clickhouse.embedded_tcp_port,
             "clickhouse.embedded_tcp_port (--clickhouse-tcp-port)"),
        ]
    return out


def check_installation() -> None:
    try:
        migrations = sqlfiles.sql_dir() / "migrations"
    except FileNotFoundError:
        raise BootError(f"the sql/ directory is missing from the installation in {Path(sqlfiles.__file__).parent.parent}; "
                        "reinstall the otelingest wheel") from None
    if not any(migrations.glob("*.sql")):
        raise BootError(f"no migrations in {migrations}; reinstall the otelingest wheel")


def check_ports(cfg: Config) -> None:
    for what, host, port, key in listeners(cfg):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            # SO_REUSEADDR as every server sets it: a port in TIME_WAIT is free, a bound one is not.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise BootError(f"port {port} for {what} is already in use on {host} "
                                    f"(another ClickHouse or otelingest?); change {key}") from None
                raise BootError(f"cannot listen on {host}:{port} for {what} ({e.strerror}); change {key}") from None


def check_tls(cfg: Config) -> None:
    """Each configured certificate and key load together (else every worker would crash on them)."""
    for side in ("receiver", "query"):
        cert, key = getattr(cfg.tls, f"{side}_cert_file"), getattr(cfg.tls, f"{side}_key_file")
        if not (cert and key):
            continue
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            raise BootError(f"cannot load the TLS certificate {cert} with its key {key} ({e}); "
                            f"check tls.{side}_cert_file and tls.{side}_key_file") from None


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold ``data_dir/otelingest.lock`` for the life of the process (released by the kernel
    however it ends); returns the open file, which the caller keeps."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        f = open(data_dir / LOCK_NAME, "a+")
    except OSError as e:
        raise BootError(f"cannot use the data directory {data_dir} ({e.strerror}); change data_dir (--data-dir)") from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise BootError(f"the data directory {data_dir} is in use by another otelingest (pid {holder}); "
                        "stop it or change data_dir (--data-dir)") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def check_tenancy(cfg: Config) -> None:
    """In credential mode every credential, those in [auth]'s files too, maps to a tenant.

    Raises:
        ConfigError: names the unmapped credential.
    """
    for side in ("receiver", "query"):
        Tenancy(cfg.tenancy, Authenticator(cfg.auth, side))


def run(cfg: Config) -> IO[str]:
    """Every check, in order; returns the data-directory lock to keep.

    Raises:
        BootError: one line naming the cause and what to change.
    """
    check_installation()
    check_tls(cfg)
    check_tenancy(cfg)
    lock = lock_data_dir(cfg.data_path)
    try:
        check_ports(cfg)
    except BootError:
        lock.close()
        raise
    return lock
