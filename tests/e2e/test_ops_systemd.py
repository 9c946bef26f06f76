"""The systemd unit and its EnvironmentFile: systemd itself accepts them, and every variable is a real key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otelingest import config as config_mod
from otelingest.errors import EXIT_CONFIG

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNIT = DEPLOY / "otelingest.service"
ENV_FILE = DEPLOY / "otelingest.env"
INSTALLED_BINARY = "/opt/otelingest/bin/otelingest"


def _unit_for_verify(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's binary (verify checks that it exists)."""
    binary = Path(sys.executable).parent / "otelingest"
    assert binary.exists(), binary
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_BINARY} serve" in text
    out = tmp_path / "otelingest.service"
    out.write_text(text.replace(INSTALLED_BINARY, str(binary)).replace("/etc/otelingest/otelingest.env", str(ENV_FILE)))
    return out


def _service_section() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Service":
            k, _, v = line.partition("=")
            values.setdefault(k, []).append(v)
    return values


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze missing: run `make system-deps`"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)


def test_unit_passes_systemd_analyze_verify(tmp_path):
    unit = _unit_for_verify(tmp_path)
    r = _analyze("verify", str(unit))
    # verify exits 0 even for unknown keys or bad values; it only warns. Any output is a defect.
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "" and r.stdout.strip() == "", r.stderr + r.stdout


def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt directive is reported."""
    unit = _unit_for_verify(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict"))
    r = _analyze("verify", str(unit))
    assert "Unknown key 'ProtectSystm'" in r.stderr


def test_unit_is_hardened_and_does_not_restart_on_bad_config(tmp_path):
    s = _service_section()
    assert s["Type"] == ["notify"]
    assert s["User"] == ["otelingest"] and s["Group"] == ["otelingest"]
    assert s["ProtectSystem"] == ["strict"]
    assert s["ReadWritePaths"] == ["/var/lib/otelingest"]
    assert s["Restart"] == ["on-failure"]
    assert s["RestartPreventExitStatus"] == [str(EXIT_CONFIG)]
    assert int(s["LimitNOFILE"][0]) >= 65536
    assert s["EnvironmentFile"] == ["/etc/otelingest/otelingest.env"]
    # systemd's own exposure score (0 = locked down, 10 = unprotected); 2.0 and below rates "OK".
    unit = _unit_for_verify(tmp_path)
    r = _analyze("security", "--offline=true", "--threshold=20", str(unit))
    assert r.returncode == 0, r.stdout[-2000:]
    overall = [line for line in r.stdout.splitlines() if "Overall exposure level" in line]
    assert overall, r.stdout[-2000:]
    score = float(overall[0].split(":", 1)[1].split()[0])
    assert score <= 2.0, overall[0]


def _env_file() -> dict[str, str]:
    env: dict[str, str] = {}
    for raw in ENV_FILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and name.startswith("OTELINGEST_"), line
        env[name] = value
    return env


def test_environment_file_names_only_real_keys_and_loads():
    env = _env_file()
    # config ignores unknown OTELINGEST_* names, so check each maps to a key of a section.
    known = {"OTELINGEST_DATA_DIR"}
    for section, typ in config_mod._section_types().items():
        for f in config_mod.msgspec.structs.fields(typ):
            known.add(f"OTELINGEST_{section}_{f.name}".upper())
    assert set(env) <= known, sorted(set(env) - known)
    cfg = config_mod.load(None, environ=env)
    assert cfg.data_dir == "/var/lib/otelingest"
    assert cfg.clickhouse.url == "http://clickhouse.internal:8123"
    assert cfg.clickhouse.password is None
    assert cfg.clickhouse.password_file == "/etc/otelingest/clickhouse.password"
    assert cfg.log.format == "json"
    assert cfg.writer.workers == 2 and cfg.memory.hard_limit_mib == 4096
    # The example keeps secrets in files, never inline.
    assert not any(k.endswith("_PASSWORD") for k in env)


def test_environment_file_secret_is_read_from_the_file(tmp_path):
    secret = tmp_path / "clickhouse.password"
    secret.write_text("s3cret\n")
    env = dict(_env_file(), OTELINGEST_CLICKHOUSE_PASSWORD_FILE=str(secret))
    assert config_mod.load(None, environ=env).clickhouse.resolved_password() == "s3cret"


@pytest.mark.parametrize("line", ["OTELINGEST_CLICKHOUSE_CLUSTER=otel_cluster"])
def test_commented_cluster_setting_is_valid(line):
    name, _, value = line.partition("=")
    assert f"#{line}" in ENV_FILE.read_text()
    cfg = config_mod.load(None, environ=dict(_env_file(), **{name: value}))
    assert cfg.clickhouse.cluster == "otel_cluster"



def test_serve_speaks_the_notify_protocol_the_unit_expects(tmp_path):
    """Type=notify: READY=1 only once /ready answers 200, STOPPING=1 on SIGTERM, exit 0."""
    import signal
    import socket

    from ops_daemon import clean_env, get, serve

    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(90)
        with serve(tmp_path, env=clean_env(NOTIFY_SOCKET=str(sock_path)), ready=False) as daemon:
            first = sock.recv(4096).decode()
            assert "READY=1" in first.split("\n"), first
            # systemd would now consider the unit started: it must really be ready.
            assert get(daemon.metrics_url + "/ready")[0] == 200
            daemon.proc.send_signal(signal.SIGTERM)
            assert "STOPPING=1" in sock.recv(4096).decode().split("\n")
            assert daemon.proc.wait(timeout=60) == 0


def test_bad_config_exits_with_the_status_the_unit_does_not_restart(tmp_path):
    from ops_daemon import clean_env

    env = clean_env(**dict(_env_file(), OTELINGEST_DATA_DIR=str(tmp_path), OTELINGEST_MEMORY_HARD_LIMIT_MIB="lots"))
    r = subprocess.run([sys.executable, "-m", "otelingest", "serve"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == int(_service_section()["RestartPreventExitStatus"][0]) == EXIT_CONFIG
    assert r.stderr.strip() == "otelingest: config error: memory.hard_limit_mib = 'lots': expected `int`, got `str`"
