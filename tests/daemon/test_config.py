import subprocess
import sys

import pytest

from otelingest import config
from otelingest.cli import main
from otelingest.errors import EXIT_CONFIG, ConfigError


def load(toml: str | None = None, tmp_path=None, **kw):
    path = None
    if toml is not None:
        path = tmp_path / "c.toml"
        path.write_text(toml)
    return config.load(path, environ=kw.pop("environ", {}), **kw)


def test_defaults_are_the_designs():
    cfg = load()
    assert (cfg.receiver.grpc_port, cfg.receiver.http_port) == (4317, 4318)
    assert (cfg.writer.batch_max_items, cfg.writer.batch_timeout_s, cfg.writer.insert_workers) == (50_000, 10.0, 4)
    assert (cfg.clickhouse.pool_min, cfg.clickhouse.pool_max) == (5, 50)
    assert cfg.query.cache_ttl_s == 900
    assert cfg.clickhouse.embedded
    assert cfg.memory.effective_soft_limit_mib == cfg.memory.hard_limit_mib * 80 // 100
    assert cfg.retention.metrics_1h == 365


def test_rings_share_a_quarter_of_the_hard_limit_unless_sized():
    def ring_mib(**sections):
        return config.load(None, overrides=sections, environ={}).writer.ring_mib

    two_by_one = {"receiver": {"workers": 2}, "writer": {"workers": 1}}
    assert ring_mib(**two_by_one) == 256  # 2048 / 4 / 2 rings
    assert ring_mib(receiver={"workers": 4}, writer={"workers": 2}) == 64  # 2048 / 4 / 8 rings
    assert ring_mib(memory={"hard_limit_mib": 512}, **two_by_one) == 64  # never below 64 MiB
    assert ring_mib(receiver={"workers": 2}, writer={"workers": 1, "ring_mib": 32}) == 32


def test_file_then_env_then_flags(tmp_path):
    toml = '[receiver]\ngrpc_port = 5000\nhttp_port = 5001\n[clickhouse]\ndatabase = "fromfile"\n'
    cfg = load(toml, tmp_path, environ={"OTELINGEST_RECEIVER_HTTP_PORT": "6001", "OTELINGEST_WRITER_BATCH_TIMEOUT_S": "2.5"},
               overrides={"receiver": {"grpc_port": 7000}})
    assert cfg.receiver.grpc_port == 7000  # flag beats file
    assert cfg.receiver.http_port == 6001  # env beats file
    assert cfg.writer.batch_timeout_s == 2.5
    assert cfg.clickhouse.database == "fromfile"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[receiver]\ngrpc_port = 70000\n", "receiver.grpc_port = 70000: expected `int` <= 65535"),
        ('[receiver]\ngrpc_port = "abc"\n', "receiver.grpc_port = 'abc': expected `int`, got `str`"),
        ("[receiver]\ngrcp_port = 1\n", "receiver.grcp_port: unknown key; allowed: host, grpc_port, http_port"),
        ('[clickhouse]\ndatabase = "otel; DROP"\n', "clickhouse.database = 'otel; DROP': expected `str` matching regex"),
        ('[log]\nformat = "xml"\n', "log.format = 'xml': invalid enum value 'xml'"),
        ("[memory]\nhard_limit_mib = 100\nsoft_limit_mib = 200\n", "memory.soft_limit_mib = 200: must be below memory.hard_limit_mib (100)"),
        ("[query]\nport = 4317\n", "query.port = 4317: already used by receiver.grpc_port"),
        ('[clickhouse]\nurl = "localhost:8123"\n', "clickhouse.url = 'localhost:8123': expected http://host:port"),
        ('[clickhouse]\ncluster = "c1"\n', "clickhouse.cluster = 'c1': a cluster needs clickhouse.url"),
        ("receiver = 1\n", "receiver = 1: expected `object`, got `int`"),
    ],
)
def test_bad_config_names_key_value_and_allowed(tmp_path, toml, message):
    with pytest.raises(ConfigError) as e:
        load(toml, tmp_path)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_env_value_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"writer.batch_max_items = '0': expected `int` >= 1"):
        load(environ={"OTELINGEST_WRITER_BATCH_MAX_ITEMS": "0"})


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml", environ={})
    (tmp_path / "bad.toml").write_text("[receiver\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        config.load(tmp_path / "bad.toml", environ={})


def test_secret_from_file(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = load(f'[clickhouse]\nurl = "http://db:8123"\npassword_file = "{tmp_path / "pw"}"\n', tmp_path)
    assert cfg.clickhouse.resolved_password() == "s3cret"


def test_cli_bad_config_exits_78_with_one_line(tmp_path, capsys):
    (tmp_path / "c.toml").write_text("[writer]\ninsert_workers = -1\n")
    assert main(["config", "--config", str(tmp_path / "c.toml")]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["otelingest: config error: writer.insert_workers = -1: expected `int` >= 1"]


def test_cli_config_prints_effective_config_without_secrets(tmp_path):
    (tmp_path / "c.toml").write_text('[clickhouse]\nurl = "http://db:8123"\npassword = "hunter2"\n')
    out = subprocess.run(
        [sys.executable, "-m", "otelingest", "config", "--config", str(tmp_path / "c.toml"), "--grpc-port", "5317"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "hunter2" not in out
    assert 'password = "***"' in out
    assert "grpc_port = 5317" in out
    # What it prints is itself a valid config file.
    (tmp_path / "again.toml").write_text(out.replace('password = "***"', ""))
    assert config.load(tmp_path / "again.toml", environ={}).receiver.grpc_port == 5317


def test_spill_floor_must_cover_the_embedded_servers_reserve():
    """Sharing the data dir's filesystem, the spill must stop before the space ClickHouse keeps free."""
    with pytest.raises(ConfigError, match=r"spill.min_free_disk_mib = 100: must be at least half of clickhouse.min_free_disk_mib \(1024\)"):
        load(None, overrides={"spill": {"min_free_disk_mib": 100}}, environ={})
    # An external ClickHouse keeps its own disks: no constraint.
    load(None, overrides={"spill": {"min_free_disk_mib": 100}, "clickhouse": {"url": "http://ch:8123"}}, environ={})
    cfg = load(None, environ={})
    assert (cfg.clickhouse.min_free_disk_mib, cfg.spill.min_free_disk_mib) == (1024, 1024)
