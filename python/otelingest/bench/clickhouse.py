"""ClickHouse's CPU per item of one signal, by INSERT, view and merge, with schema variants side by side.

``otelingest bench clickhouse [--signal traces|logs|metrics] [--items N] [--rounds R] [--variant NAME=FILE ...]``
starts an embedded ClickHouse with its query, view and part logs on, builds ``--items`` items from the
load generator's templates (``loadgen.build_templates`` + ``Patcher``, decoded by ``otelingest._native``
as the receivers do), and for every round:

1. a fresh database per variant, migrated to the current schema, then the variant's statements (a FILE
   of SQL with the migrations' placeholders, ``${db}``, ``${table:otel_traces}``, ...; lines
   ``-- @insert-setting KEY=VALUE`` add to the INSERTs' settings); the variant ``base`` (nothing)
   always runs;
2. the items' blocks in INSERTs of ``--batch`` rows with the writer's settings (``insert_settings``),
   each INSERT body into every variant's database in turn, the order rotated from body to body;
3. ``--settle`` seconds for background merges, then ``OPTIMIZE TABLE ... FINAL`` of every table;
4. CPU from ``system.query_log`` (the INSERTs, views included), ``system.query_views_log`` (each
   view) and ``system.part_log`` (the merges), and bytes per item of each table's parts.

Items per ClickHouse CPU-second = items / (INSERT CPU + merge CPU). The variants share each moment of
the run (the machine's speed drifts by tens of percent within a minute, so variants run one after
the other compared that drift more than themselves); compare each round's pair (the JSON's
``ratios``), not figures of different runs. The method of docs/benchmarks.md, "ClickHouse's work per
span".
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from otelingest import _native
from otelingest.clickhouse import sqlfiles

from . import loadgen
from .ingest import ITEM_NAMES
from .ports import free_ports

SETTING_PREFIX = "-- @insert-setting "
# Marks the measured INSERTs in system.query_log (the migrations' INSERTs are not measured).
LOG_COMMENT = "otelingest bench clickhouse"
# The system logs this measurement reads, flushed often so a round need not wait for them.
LOGS_CONFIG = "<clickhouse>" + "".join(
    f"<{t}><database>system</database><table>{t}</table><flush_interval_milliseconds>500</flush_interval_milliseconds></{t}>"
    for t in ("query_log", "query_views_log", "part_log")) + "</clickhouse>"


class Variant:
    """A schema variant: statements run after migrating, and settings added to the INSERTs."""

    def __init__(self, name: str, text: str = "") -> None:
        self.name = name
        self.text = text
        self.settings: dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith(SETTING_PREFIX):
                key, _, value = line.removeprefix(SETTING_PREFIX).partition("=")
                self.settings[key.strip()] = value.strip()

    @classmethod
    def parse(cls, spec: str) -> "Variant":
        name, sep, path = spec.partition("=")
        if not sep or not name or name == "base":
            raise ValueError(f"--variant {spec!r}: expected NAME=FILE, NAME not 'base'")
        return cls(name, Path(path).read_text())


def build_blocks(signal: str, items: int) -> tuple[int, dict[str, list[tuple[int, bytes]]]]:
    """At least ``items`` items as the receivers decode them: (items, table -> [(rows, block)])."""
    templates = loadgen.build_templates(signal)
    patcher = loadgen.Patcher(0)
    decode = getattr(_native, f"decode_{signal}")
    blocks: dict[str, list[tuple[int, bytes]]] = {}
    n = i = 0
    while n < items:
        d = decode(patcher.render(templates[i % len(templates)]))
        i += 1
        n += d.items
        for table, rows, block in d.blocks:
            blocks.setdefault(table, []).append((rows, block))
    return n, blocks


def _inserts(blocks: list[tuple[int, bytes]], batch: int) -> list[bytes]:
    out, cur, rows = [], [], 0
    for r, b in blocks:
        cur.append(b)
        rows += r
        if rows >= batch:
            out.append(b"".join(cur))
            cur, rows = [], 0
    if cur:
        out.append(b"".join(cur))
    return out


def prepare(client: Any, url: str, data_dir: Path, variant: Variant, db: str) -> None:
    """A fresh database ``db`` migrated to the current schema, then the variant's statements."""
    from otelingest import config as config_mod
    from otelingest.clickhouse import migrations

    cfg = config_mod.load(None, overrides={"data_dir": str(data_dir), "clickhouse": {"url": url, "database": db}}, environ={})
    migrations.migrate(cfg)
    for st in migrations.render(variant.text, migrations.RenderContext.from_config(cfg)):
        client.command(st.sql)


def insert_interleaved(client: Any, targets: list[tuple[Variant, str]], blocks: dict[str, list[tuple[int, bytes]]],
                       batch: int) -> None:
    """Each INSERT body into every target database in turn, the order rotated from one body to the next,
    so the variants share the machine's moments alike (its speed drifts within seconds)."""
    from otelingest.ingest.writer.inserter import insert_settings

    token = 0
    for table, table_blocks in blocks.items():
        for body in _inserts(table_blocks, batch):
            token += 1
            shift = token % len(targets)
            for variant, db in targets[shift:] + targets[:shift]:
                settings = {**insert_settings(f"bench-{token}", table=f"{db}.{table}"), "log_comment": LOG_COMMENT,
                            **variant.settings}
                client.raw_insert(f"{db}.{table}", insert_block=body, fmt="Native", settings=settings)


def optimize(client: Any, db: str) -> list[str]:
    """``OPTIMIZE TABLE ... FINAL`` of every table of ``db``, so each variant pays its whole merge work."""
    tables = [t for (t,) in client.query(sqlfiles.query("bench/clickhouse_tables"), parameters={"db": db}).result_rows]
    for t in tables:
        client.command(sqlfiles.query("bench/clickhouse_optimize"), parameters={"db": db, "table": t})
    return tables


def collect(client: Any, variant: Variant, db: str, tables: list[str], items: int) -> dict[str, Any]:
    """One database's figures from the system logs (flushed before), then the database dropped."""
    insert_s, inserts = client.query(sqlfiles.query("bench/clickhouse_insert_cpu"),
                                    parameters={"db": db, "comment": LOG_COMMENT}).result_rows[0]
    views = {v: round(s, 3) for v, s in client.query(sqlfiles.query("bench/clickhouse_view_cpu"), parameters={"db": db}).result_rows}
    merges = {t: round(s, 3) for t, s, _ in client.query(sqlfiles.query("bench/clickhouse_merge_cpu"), parameters={"db": db}).result_rows}
    sizes = client.query(sqlfiles.query("bench/table_bytes"), parameters={"db": db, "tables": tables}).result_rows
    merge_s = sum(merges.values())
    client.command(sqlfiles.query("bench/clickhouse_drop"), parameters={"db": db})
    return {
        "variant": variant.name, "tables": tables, "inserts": int(inserts), "insert_cpu_s": round(insert_s, 3), "merge_cpu_s": round(merge_s, 3),
        "view_cpu_s": views, "merge_cpu_s_by_table": merges,
        "bytes_per_item": {t: round(on_disk / items, 2) for t, _, _, _, _, on_disk in sizes if on_disk},
        "items_per_clickhouse_cpu_s": round(items / (insert_s + merge_s)) if insert_s + merge_s else 0,
        "load_average": round(os.getloadavg()[0], 2),
    }


def run(signal: str, items: int, rounds: int, variants: list[Variant], batch: int = 50_000,
        settle_s: float = 10.0, progress: bool = True) -> dict[str, Any]:
    from otelingest.clickhouse.client import connect
    from otelingest.clickhouse.embedded import EmbeddedClickHouse
    from otelingest.config import ClickHouseConfig

    variants = [Variant("base"), *variants]
    n, blocks = build_blocks(signal, items)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="otelingest-bench-ch-") as tmp:
        http_port, tcp_port = free_ports(2)
        ch = EmbeddedClickHouse(Path(tmp) / "ch", http_port=http_port, tcp_port=tcp_port, extra_config_xml=LOGS_CONFIG)
        ch.start()
        try:
            ch.wait_ready(timeout=120)
            client = connect(ClickHouseConfig(url=ch.url), with_database=False)
            try:
                for r in range(rounds):
                    targets = [(v, f"bench_ch_{r}_{i}") for i, v in enumerate(variants if r % 2 == 0 else variants[::-1])]
                    for v, db in targets:
                        prepare(client, ch.url, Path(tmp) / "data", v, db)
                    insert_interleaved(client, targets, blocks, batch)
                    time.sleep(settle_s)
                    tables = {db: optimize(client, db) for _, db in targets}
                    client.command(sqlfiles.query("bench/clickhouse_flush_logs"))
                    for v, db in targets:
                        out = collect(client, v, db, tables[db], n)
                        out["round"] = r
                        runs.append(out)
                        if progress:
                            print(f"[clickhouse] round {r} {v.name:>12}: {out['items_per_clickhouse_cpu_s']:>9,} "
                                  f"{ITEM_NAMES[signal]}/CPU-s  INSERT {out['insert_cpu_s']:.2f} s (views "
                                  f"{sum(out['view_cpu_s'].values()):.2f}), merges {out['merge_cpu_s']:.2f} s, "
                                  f"load {out['load_average']}", flush=True)
            finally:
                client.close()
        finally:
            ch.stop()
    return summarize(signal, n, batch, variants, runs)


def summarize(signal: str, items: int, batch: int, variants: list[Variant], runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_round: dict[int, dict[str, int]] = {}
    for out in runs:
        by_round.setdefault(out["round"], {})[out["variant"]] = out["items_per_clickhouse_cpu_s"]
    ratios = {v.name: [round(rr[v.name] / rr["base"], 3) for rr in by_round.values() if rr.get("base")]
              for v in variants[1:]}
    medians = {v.name: statistics.median(o["items_per_clickhouse_cpu_s"] for o in runs if o["variant"] == v.name)
               for v in variants}
    return {"signal": signal, "items": items, "batch": batch, "item": ITEM_NAMES[signal], "runs": runs,
            "median_items_per_clickhouse_cpu_s": medians, "ratios": ratios}


def main(args: Any) -> int:
    signal = getattr(args, "signal", None) or "traces"
    try:
        variants = [Variant.parse(s) for s in getattr(args, "variant", None) or []]
    except (ValueError, OSError) as e:
        print(f"otelingest bench clickhouse: {e}", file=sys.stderr)
        return 2
    settle = getattr(args, "settle", None)
    results = run(signal, int(getattr(args, "items", None) or 300_000), int(getattr(args, "rounds", None) or 3),
                  variants, batch=int(getattr(args, "batch", None) or 50_000),
                  settle_s=10.0 if settle is None else float(settle))
    print(f"\notelingest bench clickhouse: {results['items']:,} {results['item']} in INSERTs of {results['batch']:,}")
    for name, median in results["median_items_per_clickhouse_cpu_s"].items():
        ratio = results["ratios"].get(name)
        print(f"  {name:>12}  median {median:>9,.0f} {results['item']} per ClickHouse CPU-second"
              + (f"  (against base, each round: {', '.join(f'{x:.2f}x' for x in ratio)})" if ratio else ""))
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0
