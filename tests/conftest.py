"""Shared fixtures: one real embedded ClickHouse per test session (never a mock)."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

# The test folders import their shared helpers (tests/helpers/) by module name.
sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))

from otelingest import config as config_mod
from otelingest.bench.ports import free_port, free_ports  # noqa: F401  (the tests import them from here)
from otelingest.clickhouse.client import connect
from otelingest.clickhouse.embedded import EmbeddedClickHouse
from otelingest.config import Config


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(key.pem, cert.pem) in ``directory``, for localhost and 127.0.0.1, valid a day; skips without openssl."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert


def new_embedded_clickhouse(root: Path, extra_config_xml: str | None = None) -> EmbeddedClickHouse:
    """A server (not started) of its own in ``root``, on two distinct free ports."""
    http_port, tcp_port = free_ports(2)
    return EmbeddedClickHouse(root, http_port=http_port, tcp_port=tcp_port, extra_config_xml=extra_config_xml)


def running_clickhouse(root: Path, extra_config_xml: str | None = None) -> Iterator[EmbeddedClickHouse]:
    """A fixture body: a server of its own in ``root``, started and ready, stopped afterwards."""
    ch = new_embedded_clickhouse(root, extra_config_xml)
    ch.start()
    try:
        ch.wait_ready(timeout=120)
        yield ch
    finally:
        ch.stop()


def http_request(url: str, body: bytes | None = None, *, content_type: str = "application/json",
                 timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, body) of a GET, or a POST when ``body`` is given; (0, b"") when nothing answers."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedClickHouse]:
    """The session's embedded ClickHouse server."""
    yield from running_clickhouse(tmp_path_factory.mktemp("clickhouse"))


@pytest.fixture
def make_config(clickhouse: EmbeddedClickHouse, tmp_path: Path) -> Callable[..., Config]:
    """Config pointing at the session server, with a fresh database and data dir; overrides by section."""

    def make(**sections: Any) -> Config:
        over: dict[str, Any] = {"data_dir": str(tmp_path / "data")}
        over.update(sections)
        ch = dict(over.get("clickhouse", {}))
        ch.setdefault("url", clickhouse.url)
        ch.setdefault("database", f"t_{uuid.uuid4().hex[:12]}")
        over["clickhouse"] = ch
        return config_mod.load(None, overrides=over, environ={})

    return make


@pytest.fixture
def ch_client(clickhouse: EmbeddedClickHouse):
    """A clickhouse-connect client on the session server, not bound to a database."""
    from otelingest.config import ClickHouseConfig

    client = connect(ClickHouseConfig(url=clickhouse.url), with_database=False)
    yield client
    client.close()


@pytest.fixture
def migrated(make_config: Callable[..., Config]) -> Config:
    """A config whose (fresh) database holds the current schema."""
    from otelingest.clickhouse import migrations as schema

    cfg = make_config()
    schema.migrate(cfg)
    return cfg


@pytest.fixture(autouse=True, scope="module")
def _drop_daemon_rings() -> Iterator[None]:
    """Frees the daemons' ring files when their module is done (a run's daemons would fill the disk)."""
    yield
    from daemon import Daemon

    Daemon.drop_rings()
