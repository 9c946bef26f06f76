"""What a user installs: the wheel, in a fresh virtualenv outside the checkout, laid out as the systemd
unit expects (``python -m venv /opt/otelingest && /opt/otelingest/bin/pip install otelingest-*.whl``),
started by the unit's own ``ExecStart``: it boots on the embedded ClickHouse, stores an OTLP request,
answers it through the query API and stops cleanly. The same install without its SQL exits 3 at once."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_ports, http_request
from load import traces_json
from daemon import assert_nothing_left

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "otelingest.service"
UNIT_PREFIX = "/opt/otelingest"


def _clean_env() -> dict[str, str]:
    """The environment of a user's shell: nothing pointing into this checkout or its virtualenv."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTELINGEST_", "PYTHON", "VIRTUAL_ENV", "PROMETHEUS_MULTIPROC"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(ROOT)))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed into ``<tmp>/opt/otelingest``."""
    tmp = tmp_path_factory.mktemp("install")
    wheels = tmp / "wheels"
    # The interpreter `make install` built for: the release build is reused, not redone.
    subprocess.run([sys.executable, "-m", "maturin", "build", "--release", "--quiet", "-i", sys.executable,
                    "-o", str(wheels)],
                   cwd=ROOT, check=True, timeout=900)
    (wheel,) = wheels.glob("otelingest-*.whl")
    prefix = tmp / "opt" / "otelingest"
    env = _clean_env()
    subprocess.run([sys.executable, "-m", "venv", str(prefix)], check=True, env=env, cwd=tmp, timeout=120)
    subprocess.run([str(prefix / "bin" / "pip"), "install", "--quiet", str(wheel)], check=True, env=env, cwd=tmp,
                   timeout=900)
    return prefix


def _exec_start(prefix: Path) -> list[str]:
    """The unit's ExecStart with /opt/otelingest moved to ``prefix``."""
    (line,) = [x for x in UNIT.read_text().splitlines() if x.startswith("ExecStart=")]
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[0] == f"{UNIT_PREFIX}/bin/otelingest", argv
    return [str(prefix / "bin" / "otelingest"), *argv[1:]]


def test_the_wheel_installs_the_unit_and_its_documentation(installed: Path) -> None:
    """The unit's Documentation= path exists in the layout, and the installed unit and env file are the
    ones in deploy/ (docs/operations.md installs them from there)."""
    (doc,) = [x for x in UNIT.read_text().splitlines() if x.startswith("Documentation=")]
    doc_path = doc.removeprefix("Documentation=file://")
    assert doc_path.startswith(UNIT_PREFIX + "/")
    assert (installed / doc_path.removeprefix(UNIT_PREFIX + "/")).read_text() == (ROOT / "docs" / "operations.md").read_text()
    for name in ("otelingest.service", "otelingest.env"):
        assert (installed / "share" / "otelingest" / "systemd" / name).read_text() == (UNIT.parent / name).read_text()


@pytest.mark.timeout(900)
def test_the_installed_wheel_serves_stores_answers_and_stops(installed: Path, tmp_path: Path) -> None:
    env = _clean_env()
    out = subprocess.run([str(installed / "bin" / "python"), "-c", "import otelingest; print(otelingest.__file__)"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith(str(installed)), out.stdout  # not the checkout's package

    names = ("grpc", "http", "query", "metrics", "ch-http", "ch-tcp")
    ports = dict(zip(names, free_ports(len(names))))
    data = tmp_path / "var" / "lib" / "otelingest"
    argv = _exec_start(installed) + [
        "--data-dir", str(data), "--receivers", "1", "--writers", "1",
        "--grpc-port", str(ports["grpc"]), "--http-port", str(ports["http"]), "--query-port", str(ports["query"]),
        "--metrics-port", str(ports["metrics"]), "--clickhouse-http-port", str(ports["ch-http"]),
        "--clickhouse-tcp-port", str(ports["ch-tcp"])]
    env["OTELINGEST_WRITER_BATCH_TIMEOUT_S"] = "0.2"
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while http_request(f"http://127.0.0.1:{ports['metrics']}/ready")[0] != 200:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        body = traces_json("installed", 1, 25)
        deadline = time.monotonic() + 60
        while (status := http_request(f"http://127.0.0.1:{ports['http']}/v1/traces", body)[0]) != 200:
            assert time.monotonic() < deadline, (status, log_path.read_text())
            time.sleep(0.2)  # receivers still binding
        now = time.time_ns()
        query = json.dumps({"service_name": "installed", "start_time": now - 7200 * 10**9, "end_time": now,
                            "limit": 100}).encode()
        spans, answer = 0, b""
        deadline = time.monotonic() + 60
        while spans < 25 and time.monotonic() < deadline:
            status, answer = http_request(f"http://127.0.0.1:{ports['query']}/api/v1/traces", query)
            if status == 200:
                spans = sum(len(t["spans"]) for t in json.loads(answer)["traces"])
            time.sleep(0.3)
        assert spans == 25, (answer, log_path.read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(180)
    assert code == 0, log_path.read_text()
    assert_nothing_left(data)


@pytest.mark.timeout(900)
def test_an_installation_without_its_sql_exits_3_at_once(installed: Path, tmp_path: Path) -> None:
    """Run last in this module: it breaks the installation the module shares."""
    (site,) = installed.glob("lib/python*/site-packages")
    shutil.rmtree(site / "otelingest" / "sql")
    data = tmp_path / "data"
    p = subprocess.run(_exec_start(installed) + ["--data-dir", str(data)], env=_clean_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 3
    last = p.stderr.strip().splitlines()[-1]
    assert last == (f"otelingest: cannot boot: the sql/ directory is missing from the installation in "
                    f"{site / 'otelingest'}; reinstall the otelingest wheel"), p.stderr
    assert_nothing_left(data)
