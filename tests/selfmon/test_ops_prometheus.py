"""Prometheus: the scrape config and alert rules pass promtool, and a real Prometheus scrapes a real daemon."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml
from conftest import free_port
from ops_daemon import clean_env, get, send_spans, serve, wait_for
from promql_names import expand_grafana, unknown_metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROM = DEPLOY / "prometheus"
CONFIG = PROM / "prometheus.yml"
RULES = PROM / "otelingest.rules.yml"
RULE_TESTS = PROM / "otelingest.rules.test.yml"
TARGETS_GLOB = "/etc/prometheus/otelingest-targets/*.json"
# A real Prometheus runs for at most this long in the scrape test.
PROMETHEUS_BUDGET_S = 50


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} missing: run `make system-deps`"
    return path


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_promtool_check_config():
    r = promtool("check", "config", str(CONFIG))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 1 rule files found" in r.stdout + r.stderr


def test_example_targets_file_is_what_prometheus_reads(tmp_path):
    """The example file_sd targets load in promtool (via a config pointing at a copy)."""
    targets = tmp_path / "targets"
    targets.mkdir()
    shutil.copy(PROM / "otelingest-targets.example.json", targets / "prod.json")
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(CONFIG.read_text().replace(TARGETS_GLOB, str(targets / "*.json")).replace(
        "  - otelingest.rules.yml", f"  - {RULES}"))
    r = promtool("check", "config", str(cfg))
    assert r.returncode == 0 and "WARNING" not in r.stdout + r.stderr, r.stdout + r.stderr
    doc = json.loads((targets / "prod.json").read_text())
    assert all(t.endswith(":8888") for group in doc for t in group["targets"])


def test_promtool_check_rules():
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 16 rules found" in r.stdout + r.stderr


def test_promtool_rule_unit_tests():
    r = promtool("test", "rules", RULE_TESTS.name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_rule_unit_tests_can_fail(tmp_path):
    """A rule whose threshold changed breaks its unit test (the tests above can fail)."""
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    (tmp_path / RULES.name).write_text(RULES.read_text().replace("> 300", "> 3000"))
    r = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert r.returncode != 0
    assert "OtelingestTooManyParts" in r.stdout + r.stderr


def rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_alerts_cover_the_failure_modes_and_name_exported_metrics():
    names = {r["alert"] for r in rules()}
    assert {
        "OtelingestIngestStalled", "OtelingestRefusalsRising", "OtelingestSpillGrowing", "OtelingestWriteErrors",
        "OtelingestQueryLatencyHigh", "OtelingestClickHouseUnreachable",
    } <= names
    for r in rules():
        assert not unknown_metrics(r["expr"]), (r["alert"], unknown_metrics(r["expr"]))
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"] and r["annotations"]["description"]
    # Every alert has a unit test.
    tested = set()
    for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        tested |= {a["alertname"] for a in t.get("alert_rule_test", []) if a.get("exp_alerts")}
    assert tested == names


def prometheus_config(tmp_path: Path, target: str) -> Path:
    """The checked-in config with a 1 s interval, the test's target file and absolute rule path."""
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "local.json").write_text(json.dumps([{"targets": [target], "labels": {"fleet": "test"}}]))
    text = CONFIG.read_text()
    for old, new in (
        ("scrape_interval: 15s", "scrape_interval: 1s"),
        ("evaluation_interval: 15s", "evaluation_interval: 1s"),
        ("scrape_timeout: 10s", "scrape_timeout: 1s"),
        (TARGETS_GLOB, str(targets / "*.json")),
        ("  - otelingest.rules.yml", f"  - {RULES}"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    return path


def api(base: str, path: str, **params: str) -> dict:
    code, body = get(f"{base}{path}?{urllib.parse.urlencode(params)}")
    assert code == 200, (code, body[:500])
    doc = json.loads(body)
    assert doc["status"] == "success", doc
    return doc["data"]


def instant(base: str, query: str) -> list[dict]:
    return api(base, "/api/v1/query", query=query)["result"]


@pytest.mark.timeout(180)
def test_real_prometheus_scrapes_the_daemon(tmp_path):
    with serve(tmp_path, env=clean_env(OTELINGEST_WRITER_BATCH_TIMEOUT_S="0.2")) as daemon:
        target = f"127.0.0.1:{daemon.ports['metrics']}"
        config = prometheus_config(tmp_path, target)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = open(tmp_path / "prometheus.log", "wb")
        prom = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        started = time.monotonic()
        try:
            budget = lambda: max(1.0, PROMETHEUS_BUDGET_S - (time.monotonic() - started))  # noqa: E731
            assert wait_for(lambda: get(base + "/-/ready")[0] == 200, budget(), 0.2), (tmp_path / "prometheus.log").read_text()
            up = f'up{{job="otelingest", instance="{target}"}} == 1'
            assert wait_for(lambda: len(instant(base, up)) == 1, budget(), 0.5), instant(base, "up")
            # The daemon's own series, scraped with the job label; the ClickHouse statistics of the
            # freshly migrated database (every table empty).
            got = lambda q: instant(base, q)  # noqa: E731
            assert wait_for(lambda: got('otel_clickhouse_up{job="otelingest"} == 1'), budget(), 0.5), got("otel_clickhouse_up")
            names = {s["metric"]["__name__"] for s in got('{__name__=~"otel_.+", job="otelingest"}')}
            assert {"otel_ready", "otel_clickhouse_up", "otel_clickhouse_table_rows", "otel_memory_limit_bytes"} <= names
            [ready] = got('otel_ready{job="otelingest"}')
            assert ready["value"][1] == "1" and ready["metric"]["fleet"] == "test"
            rows = {s["metric"]["table"]: s["value"][1] for s in got('otel_clickhouse_table_rows{job="otelingest"}')}
            assert rows["otel_traces"] == "0" and rows["otel_logs"] == "0"

            # Spans sent to the daemon show in Prometheus, as the Collector dashboard queries them.
            send_spans(daemon, 5)
            received = 'sum by (transport) (otel_received_spans_total{job="otelingest"})'
            assert wait_for(lambda: [(s["metric"], s["value"][1]) for s in got(received)] == [({"transport": "http"}, "5")],
                            budget(), 0.5), got(received)
            written = 'sum(otel_storage_writes_total{job="otelingest", table="otel_traces", status="ok"})'
            assert wait_for(lambda: got(written) and float(got(written)[0]["value"][1]) >= 1, budget(), 0.5), got(written)

            # The alert rules load and evaluate without errors against live data; none fires.
            assert wait_for(
                lambda: all(not r["lastEvaluation"].startswith("0001")  # zero time: never evaluated
                            for g in api(base, "/api/v1/rules")["groups"] for r in g["rules"]),
                budget(), 0.5,
            )
            groups = api(base, "/api/v1/rules")["groups"]
            evaluated = [r for g in groups for r in g["rules"]]
            assert len(evaluated) == 16
            assert all(r["health"] == "ok" for r in evaluated), [(r["name"], r.get("lastError")) for r in evaluated]
            assert wait_for(lambda: api(base, "/api/v1/alerts")["alerts"] == [], budget(), 0.5), api(base, "/api/v1/alerts")

            # Every dashboard query runs on a real Prometheus.
            for board in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
                for p in json.loads(board.read_text())["panels"]:
                    for t in p.get("targets", []):
                        api(base, "/api/v1/query", query=expand_grafana(t["expr"]))
        finally:
            prom.terminate()
            try:
                prom.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
            log.close()
