"""The cluster path on loopback: ZooKeeper (Debian's package) and two embedded ClickHouse nodes.

What the embedded server (chdb's clickhouse-local code path) can and cannot show, checked here:
- it connects to ZooKeeper, and the rendered ReplicatedMergeTree DDL creates every ``*_local`` table
  with the documented ZooKeeper path, both nodes registering as replicas of one shard;
- Distributed tables from the rendered DDL read and write across two shards, and the materialized
  views fill the ``*_local`` targets on each shard;
- NOT: replication itself (clickhouse-local sets no interserver address, so replicas stay
  read-only) and ``ON CLUSTER`` DDL (it runs no distributed DDL worker: "Replicated DDL queries
  are disabled"). Both are strict xfails: they start failing loudly if a release gains them.
See docs/cluster.md.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from conftest import free_port, free_ports

from otelingest import config as config_mod
from otelingest.clickhouse import migrations as schema, sqlfiles
from otelingest.clickhouse.client import connect
from otelingest.clickhouse.embedded import EmbeddedClickHouse
from otelingest.ingest.writer.inserter import insert_settings
from otelingest.config import ClickHouseConfig
from otelingest.errors import StorageError
from otelingest.query import logql

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
RETENTION = {k: 30 for k in ("traces", "logs", "metrics", "metrics_5m", "metrics_1h", "span_stats", "dependencies")}
REPLICATED_CLUSTER = "otel_replicated"  # one shard, both nodes its replicas
SHARDED_CLUSTER = "otel_sharded"  # two shards, one node each
_REPLICATED_ENGINE = re.compile(r"Replicated(\w*MergeTree)\('[^']*', '\{replica\}'\)")


def _zk_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"ruok")
            return s.recv(16) == b"imok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    java = shutil.which("java")
    assert java and ZOOKEEPER_JAR.exists(), "ZooKeeper missing: run `make system-deps` (Debian package zookeeper)"
    root = tmp_path_factory.mktemp("zookeeper")
    port = free_port()
    (root / "data").mkdir()
    (root / "zoo.cfg").write_text(
        f"tickTime=500\ndataDir={root / 'data'}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        "admin.enableServer=false\n4lw.commands.whitelist=ruok\n"
    )
    with open(root / "zookeeper.log", "wb") as log:
        proc = subprocess.Popen(
            [java, "-Xmx256m", "-cp", str(ZOOKEEPER_JAR), "org.apache.zookeeper.server.ZooKeeperServerMain", str(root / "zoo.cfg")],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not _zk_ok(port):
            assert proc.poll() is None and time.monotonic() < deadline, (root / "zookeeper.log").read_text()[-2000:]
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _node_xml(index: int, zk_port: int, tcp_ports: list[int]) -> str:
    replicas = "".join(f"<replica><host>127.0.0.1</host><port>{p}</port></replica>" for p in tcp_ports)
    shards = "".join(f"<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>" for p in tcp_ports)
    return f"""<clickhouse>
  <zookeeper><node><host>127.0.0.1</host><port>{zk_port}</port></node></zookeeper>
  <macros><shard>01</shard><replica>node{index}</replica></macros>
  <remote_servers>
    <{REPLICATED_CLUSTER}><shard><internal_replication>true</internal_replication>{replicas}</shard></{REPLICATED_CLUSTER}>
    <{SHARDED_CLUSTER}>{shards}</{SHARDED_CLUSTER}>
  </remote_servers>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <profiles><default><distributed_ddl_task_timeout>10</distributed_ddl_task_timeout></default></profiles>
</clickhouse>
"""


@pytest.fixture(scope="module")
def nodes(zookeeper: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EmbeddedClickHouse]]:
    ports = free_ports(4)
    http, tcp = ports[:2], ports[2:]
    out = [
        EmbeddedClickHouse(
            tmp_path_factory.mktemp(f"node{i}"), http_port=http[i], tcp_port=tcp[i],
            extra_config_xml=_node_xml(i, zookeeper, tcp),
        )
        for i in range(2)
    ]
    try:
        for n in out:
            n.start()
        for n in out:
            n.wait_ready(timeout=120)
        yield out
    finally:
        for n in out:
            n.stop()


@pytest.fixture(scope="module")
def clients(nodes):
    cs = [connect(ClickHouseConfig(url=n.url), with_database=False) for n in nodes]
    yield cs
    for c in cs:
        c.close()


REPLICATED_DB = "otel_rep"


@pytest.fixture(scope="module")
def replicated_schema(clients) -> list[schema.Statement]:
    """The rendered replicated schema created on both nodes (each node runs the DDL, no ON CLUSTER)."""
    stmts = rendered(REPLICATED_DB, REPLICATED_CLUSTER)
    for c in clients:
        for s in stmts:
            if s.sql.startswith("ALTER"):
                continue  # a metadata change needs an active replica, which this server has not
            if "TenantId" in s.sql:
                continue  # reads the column 0014's ALTERs add (a view of 0015): not added here
            c.command(without_on_cluster(s.sql, REPLICATED_CLUSTER))
    return stmts


def rendered(database: str, cluster: str) -> list[schema.Statement]:
    ctx = schema.RenderContext(database, cluster, RETENTION)
    stmts = schema.bootstrap_statements(ctx)
    for mig in schema.available_migrations():
        stmts += schema.render(mig.text, ctx)
    return stmts


def without_on_cluster(sql: str, cluster: str) -> str:
    """The statement as each node runs it when the DDL is not distributed by ON CLUSTER."""
    assert f" ON CLUSTER '{cluster}'" in sql, sql
    return sql.replace(f" ON CLUSTER '{cluster}'", "")


def test_embedded_nodes_see_the_cluster_and_zookeeper(clients):
    for i, c in enumerate(clients):
        assert dict(c.query("SELECT macro, substitution FROM system.macros").result_rows) == {"shard": "01", "replica": f"node{i}"}
        rows = c.query(
            "SELECT cluster, shard_num, replica_num, is_local FROM system.clusters WHERE cluster IN ({a:String}, {b:String}) "
            "ORDER BY cluster, shard_num, replica_num", parameters={"a": REPLICATED_CLUSTER, "b": SHARDED_CLUSTER},
        ).result_rows
        assert rows == [
            (REPLICATED_CLUSTER, 1, 1, int(i == 0)), (REPLICATED_CLUSTER, 1, 2, int(i == 1)),
            (SHARDED_CLUSTER, 1, 1, int(i == 0)), (SHARDED_CLUSTER, 2, 1, int(i == 1)),
        ]


def test_rendered_replicated_tables_register_both_replicas_in_zookeeper(clients, replicated_schema):
    db = REPLICATED_DB
    stmts = replicated_schema
    replicated = {s.table + "_local" for s in stmts if "ENGINE = Replicated" in s.sql and s.table}
    assert {"otel_traces_local", "otel_logs_local", "otel_metrics_local", "otel_trace_index_local",
            "otel_span_stats_1h_local", "otelingest_schema_migrations_local"} <= replicated
    for i, c in enumerate(clients):
        assert c.query("SELECT value FROM system.metrics WHERE metric = 'ZooKeeperSession'").result_rows == [(1,)]
        rows = c.query(
            "SELECT table, zookeeper_path, replica_name, total_replicas FROM system.replicas WHERE database = {db:String} ORDER BY table",
            parameters={"db": db},
        ).result_rows
        assert {r[0] for r in rows} == replicated
        for table, path, replica, total in rows:
            assert path == f"/clickhouse/tables/01/{db}/{table}"
            assert replica == f"node{i}"
            # Both nodes registered under the same ZooKeeper path: one shard, two replicas.
            assert total == 2, (table, total)
        distributed = c.query(
            "SELECT name FROM system.tables WHERE database = {db:String} AND engine = 'Distributed'", parameters={"db": db}
        ).result_rows
        assert {r[0] + "_local" for r in distributed} == replicated


@pytest.mark.xfail(
    strict=True, raises=DatabaseError,
    reason="clickhouse-local sets no interserver address: replicated tables stay read-only (TABLE_IS_READ_ONLY)",
)
def test_replication_between_the_two_embedded_nodes(clients, replicated_schema):
    db = REPLICATED_DB
    clients[0].command(
        f"INSERT INTO {db}.otel_logs_local (Timestamp, ServiceName, Body) VALUES (now64(9), 's', 'replicated')",
        settings={"max_execution_time": 5, "insert_keeper_max_retries": 0},
    )
    assert clients[1].query(f"SELECT Body FROM {db}.otel_logs_local").result_rows == [("replicated",)]


def test_distributed_tables_read_and_write_across_two_shards(nodes, clients):
    """The rendered Distributed tables and materialized views over non-replicated local tables."""
    db = "otel_dist"
    for c in clients:
        for s in rendered(db, SHARDED_CLUSTER):
            sql = _REPLICATED_ENGINE.sub(r"\1", without_on_cluster(s.sql, SHARDED_CLUSTER))
            c.command(sql)
    # Rows written on each shard's local table are all read through the Distributed table.
    clients[0].command(f"INSERT INTO {db}.otel_logs_local (Timestamp, ServiceName, Body) SELECT now64(9), 'a', toString(number) FROM numbers(3)")
    clients[1].command(f"INSERT INTO {db}.otel_logs_local (Timestamp, ServiceName, Body) SELECT now64(9), 'b', toString(number) FROM numbers(2)")
    for c in clients:
        assert c.query(f"SELECT ServiceName, count() FROM {db}.otel_logs GROUP BY ServiceName ORDER BY ServiceName").result_rows == [("a", 3), ("b", 2)]
    # Log records written through the Distributed table get their ResourceHash (migration 0005) on
    # their shard, and the Distributed table reads it.
    clients[0].command(
        f"INSERT INTO {db}.otel_logs (Timestamp, ServiceName, ResourceAttributes, Body) "
        "SELECT now64(9), 'c', map('host.name', toString(number % 2)), 'x' FROM numbers(10)",
        settings=insert_settings("cluster-test-logs", cluster=True),
    )
    for c in clients:
        rows = c.query(f"SELECT uniqExact(ResourceHash), countIf(ResourceHash = cityHash64(mapSort(ResourceAttributes))) "
                       f"FROM {db}.otel_logs WHERE ServiceName = 'c'").result_rows
        assert rows == [(2, 10)]
    # Loki's filters through the Distributed table: a resource matcher (GLOBAL IN subqueries, built
    # once over both shards) and the streams' attributes read at one record each, whichever shard
    # holds it.
    clients[0].command(f"INSERT INTO {db}.otel_logs_local (Timestamp, ServiceName, ResourceAttributes, Body) "
                       "SELECT now64(9), 'd', map('host.name', toString(number % 2)), 'x' FROM numbers(5)")
    clients[1].command(f"INSERT INTO {db}.otel_logs_local (Timestamp, ServiceName, ResourceAttributes, Body) "
                       "SELECT now64(9), 'd', map('host.name', '1'), 'x' FROM numbers(3)")
    f = logql.compile_filter(logql.parse('{service_name="d", host_name="1"}'))
    streams_sql = "\n".join(sqlfiles.query(n) for n in ["loki/streams_select", *f.fragments, "loki/streams_group"])
    for node in nodes:
        c = connect(ClickHouseConfig(url=node.url, database=db))
        try:
            ((service, _, h, first, n),) = c.query(
                streams_sql, parameters={**f.params, "start_ns": 0, "end_ns": 2**62, "limit": 10,
                                       "tenant": "default"}).result_rows
            assert (service, n) == ("d", 5)
            res = c.query(sqlfiles.query("loki/stream_resources"),
                          parameters={"services": ["d"], "times": [first], "hashes": [h], "tenant": "default"}).result_rows
            assert res == [(h, {"host.name": "1"})]
        finally:
            c.close()

    # Spans written through the Distributed table on node 1: sharded by TraceId (a trace stays on
    # one shard), and the materialized views fill each shard's trace index.
    clients[1].command(
        f"INSERT INTO {db}.otel_traces (Timestamp, TraceId, SpanId, ServiceName, SpanName, Duration) "
        "SELECT now64(9), unhex(lpad(hex(intDiv(number, 2) + 1), 32, '0')), unhex(lpad(hex(number + 1), 16, '0')), 'svc', 'op', 1000 "
        "FROM numbers(40)",
        # The writers' own settings: the INSERT answers only once the rows are on their shards.
        settings=insert_settings("cluster-test", cluster=True),
    )
    local = [c.query(f"SELECT count() FROM {db}.otel_traces_local").result_rows[0][0] for c in clients]
    assert sum(local) == 40 and all(n > 0 for n in local), local
    for c in clients:
        assert c.query(f"SELECT count(), uniqExact(TraceId) FROM {db}.otel_traces").result_rows == [(40, 20)]
        per_trace = c.query(f"SELECT max(shards) FROM (SELECT TraceId, uniqExact(_shard_num) AS shards FROM {db}.otel_traces GROUP BY TraceId)")
        assert per_trace.result_rows == [(1,)]
        assert c.query(f"SELECT count(), uniqExact(TraceId) FROM {db}.otel_trace_index").result_rows == [(40, 20)]
    index_local = [c.query(f"SELECT count() FROM {db}.otel_trace_index_local").result_rows[0][0] for c in clients]
    assert index_local == local


@pytest.mark.xfail(
    strict=True, raises=StorageError,
    reason="clickhouse-local runs no distributed DDL worker: ON CLUSTER is refused (Replicated DDL queries are disabled)",
)
def test_on_cluster_migration_creates_the_schema_on_both_nodes(nodes, clients):
    cfg = config_mod.load(None, environ={}, overrides={
        "clickhouse": {"url": nodes[0].url, "cluster": SHARDED_CLUSTER, "database": "otel_oc"}})
    schema.migrate(cfg)
    for c in clients:
        assert c.query("SELECT count() FROM system.tables WHERE database = 'otel_oc'").result_rows[0][0] > 0
