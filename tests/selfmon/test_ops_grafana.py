"""Grafana dashboards and provisioning: every query parses as PromQL and names only exported metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from promql_names import expand_grafana, metric_names, unknown_metrics

from otelingest.selfmon.catalog import exported_sample_names

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
SELF_DS_UID = "otelingest-self"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def panels(board: dict) -> list[dict]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def queries(board: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of a dashboard."""
    out = []
    for p in panels(board):
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", t["expr"]))
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q)
            assert m, f"variable {v['name']}: unexpected query {q}"
            out.append((f"variable {v['name']}", m.group(1)))
    return out


def test_the_three_dashboards_exist():
    titles = {load(p)["title"] for p in DASHBOARDS}
    assert titles == {"otelingest / Collector", "otelingest / Query", "otelingest / ClickHouse"}
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_parses_and_names_exported_metrics(path):
    board = load(path)
    qs = queries(board)
    assert len(qs) >= 8
    for where, expr in qs:
        bad = unknown_metrics(expand_grafana(expr))
        assert not bad, f"{path.name} {where}: metrics not exported by otelingest: {bad}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_use_the_datasource_variable_and_do_not_overlap(path):
    board = load(path)
    ds_var = next(v for v in board["templating"]["list"] if v["name"] == "datasource")
    assert ds_var["type"] == "datasource" and ds_var["query"] == "prometheus"
    assert ds_var["current"]["value"] == SELF_DS_UID
    cells: dict[tuple[int, int], str] = {}
    for p in panels(board):
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}", p["title"]
            assert p.get("description"), f"panel {p['title']!r} has no description"
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
    ids = [p["id"] for p in panels(board)]
    assert len(set(ids)) == len(ids)


def test_dashboards_cover_what_operators_ask_for():
    used: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        board = load(path)
        used[board["title"]] = set().union(*(metric_names(expand_grafana(e)) for _, e in queries(board)))
    collector = used["otelingest / Collector"]
    assert {
        "otel_received_spans_total", "otel_received_logs_total", "otel_received_metric_points_total",
        "otel_batch_size_bucket", "otel_memory_usage_bytes", "otel_memory_limit_bytes", "otel_queue_size",
        "otel_spill_bytes", "otel_storage_write_duration_seconds_bucket", "otel_storage_writes_total",
        "otel_refused_total",
    } <= collector
    assert {
        "otel_query_duration_seconds_bucket", "otel_query_errors_total",
        "otel_query_cache_hits_total", "otel_query_cache_misses_total",
    } <= used["otelingest / Query"]
    assert {
        "otel_clickhouse_table_parts", "otel_clickhouse_merges_running", "otel_clickhouse_table_compressed_bytes",
        "otel_clickhouse_table_uncompressed_bytes", "otel_clickhouse_table_bytes_on_disk", "otel_clickhouse_table_rows",
    } <= used["otelingest / ClickHouse"]
    # Everything the daemon exports is on some dashboard.
    everything = set().union(*used.values())
    missing = {n for n in exported_sample_names() if n not in everything and not n.endswith(("_sum", "_count"))}
    assert not missing, missing


def test_checker_rejects_unknown_metrics_and_bad_promql():
    assert unknown_metrics('rate(otel_received_spans_total[1m])') == set()
    assert unknown_metrics('rate(otel_spans_received_total[1m])') == {"otel_spans_received_total"}
    with pytest.raises(ValueError):
        metric_names("sum(rate(otel_received_spans_total[1m])")
    with pytest.raises(ValueError):
        metric_names('{__name__=~"otel_nope_.*"}')


def test_datasource_provisioning():
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "otelingest.yaml").read_text())
    assert doc["apiVersion"] == 1
    by_uid = {d["uid"]: d for d in doc["datasources"]}
    assert {by_uid[u]["type"] for u in ("otelingest-prometheus", "otelingest-jaeger", "otelingest-loki")} == {
        "prometheus", "jaeger", "loki"}
    # The three compatible APIs are served by the query service on one port.
    for uid in ("otelingest-prometheus", "otelingest-jaeger", "otelingest-loki"):
        assert by_uid[uid]["url"] == "http://otelingest.internal:8080"
        assert by_uid[uid]["access"] == "proxy"
    assert by_uid[SELF_DS_UID]["type"] == "prometheus"
    assert sum(1 for d in doc["datasources"] if d.get("isDefault")) == 1
    # Cross-links point at datasources that exist.
    assert by_uid["otelingest-jaeger"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] in by_uid
    for f in by_uid["otelingest-loki"]["jsonData"]["derivedFields"]:
        assert f["datasourceUid"] in by_uid


def test_dashboard_provisioning():
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "otelingest.yaml").read_text())
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


def test_catalog_matches_the_metrics_the_code_registers():
    """metrics_catalog is the one list: it names exactly the otel_ families the daemon's modules define."""
    import otelingest.selfmon.tablestats  # noqa: F401  (each import registers its metrics)
    import otelingest.selfmon.instruments  # noqa: F401
    import otelingest.query.cache  # noqa: F401
    import otelingest.query.store  # noqa: F401
    from prometheus_client import REGISTRY

    from otelingest.selfmon.catalog import FAMILIES

    registered = {}
    for fam in REGISTRY.collect():
        if fam.name.startswith("otel_"):
            registered[fam.name + ("_total" if fam.type == "counter" else "")] = fam.type
    assert registered == {f.name: f.kind for f in FAMILIES}
