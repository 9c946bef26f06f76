"""The ``otelingest`` command: serve, migrate, clickhouse, status, config."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .errors import EXIT_BOOT, EXIT_CONFIG, BootError, ConfigError, SchemaError, StorageError

DEFAULT_CONFIG_FILE = "otelingest.toml"
SECRET_KEYS = frozenset({
    "password", "read_only_password",
    "receiver_bearer_tokens", "receiver_basic_users", "query_bearer_tokens", "query_basic_users",
})


def _add_config_flags(p: argparse.ArgumentParser, *, ports: bool) -> None:
    p.add_argument("--config", metavar="FILE", help=f"TOML config file (default: ./{DEFAULT_CONFIG_FILE} if present)")
    p.add_argument("--data-dir", metavar="DIR", help="data directory (embedded ClickHouse, spill, runtime files)")
    p.add_argument("--clickhouse-url", metavar="URL", help="ClickHouse HTTP URL; absent = run the embedded server")
    p.add_argument("--clickhouse-http-port", type=int, metavar="PORT", help="HTTP port of the embedded ClickHouse")
    p.add_argument("--clickhouse-tcp-port", type=int, metavar="PORT", help="native TCP port of the embedded ClickHouse")
    if ports:
        p.add_argument("--grpc-port", type=int, metavar="PORT", help="OTLP/gRPC port (default 4317)")
        p.add_argument("--http-port", type=int, metavar="PORT", help="OTLP/HTTP port (default 4318)")
        p.add_argument("--query-port", type=int, metavar="PORT", help="query API port (default 8080)")
        p.add_argument("--metrics-port", type=int, metavar="PORT", help="/metrics, /health, /ready port (default 8888)")
        p.add_argument("--receivers", type=int, metavar="N", help="receiver worker processes (default: one per CPU)")
        p.add_argument("--writers", type=int, metavar="N", help="writer processes (default 1)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def put(section: str | None, key: str, value: Any) -> None:
        if value is None:
            return
        if section is None:
            out[key] = value
        else:
            out.setdefault(section, {})[key] = value

    get = lambda name: getattr(args, name, None)  # noqa: E731
    put(None, "data_dir", get("data_dir"))
    put("clickhouse", "url", get("clickhouse_url"))
    put("clickhouse", "embedded_http_port", get("clickhouse_http_port"))
    put("clickhouse", "embedded_tcp_port", get("clickhouse_tcp_port"))
    put("receiver", "grpc_port", get("grpc_port"))
    put("receiver", "http_port", get("http_port"))
    put("receiver", "workers", get("receivers"))
    put("writer", "workers", get("writers"))
    put("query", "port", get("query_port"))
    put("metrics", "port", get("metrics_port"))
    return out


def load_config(args: argparse.Namespace):  # -> Config
    from . import config

    path = args.config
    if path is None and Path(DEFAULT_CONFIG_FILE).exists():
        path = DEFAULT_CONFIG_FILE
    return config.load(path, overrides=_overrides(args))


def _redact(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: (("***" if isinstance(v, str) else ["***"]) if k in SECRET_KEYS and v else _redact(v))
                for k, v in d.items()}
    return d


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def to_toml(d: dict[str, Any]) -> str:
    """The effective config as TOML (None values, i.e. unset optional keys, are commented out)."""
    lines: list[str] = []
    _toml_table(d, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _toml_table(d: dict[str, Any], path: list[str], lines: list[str]) -> None:
    """Plain keys first, then each sub-table ([tenancy.tenants.<id>.retention] nests three deep)."""
    if path:
        lines.append(f"\n[{'.'.join(map(_toml_key, path))}]")
    for k, v in d.items():
        if not isinstance(v, dict):
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}" if v is not None else f"# {_toml_key(k)} =")
    for k, v in d.items():
        if isinstance(v, dict):
            _toml_table(v, path + [k], lines)


def cmd_config(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    sys.stdout.write(to_toml(_redact(cfg.to_dict())))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from .selfmon import logsetup
    from .clickhouse import migrations

    cfg = load_config(args)
    logsetup.configure("migrate", cfg.log.format, cfg.log.level)
    if cfg.clickhouse.embedded:
        from .clickhouse.embedded import EmbeddedClickHouse

        ch = EmbeddedClickHouse(
            cfg.data_path / "clickhouse",
            http_port=cfg.clickhouse.embedded_http_port,
            tcp_port=cfg.clickhouse.embedded_tcp_port,
        )
        ch.start()
        try:
            ch.wait_ready()
            applied, changed = migrations.migrate(cfg, target=args.target)
        finally:
            ch.stop()
    else:
        applied, changed = migrations.migrate(cfg, target=args.target)
    print(f"applied migrations: {', '.join(map(str, applied)) or 'none (schema current)'}")
    print(f"retention changed on: {', '.join(changed) or 'none'}")
    return 0


def cmd_clickhouse(args: argparse.Namespace) -> int:
    """Run the embedded ClickHouse alone in the foreground until Ctrl-C."""
    import signal
    import threading

    from .selfmon import logsetup
    from .clickhouse.embedded import EmbeddedClickHouse

    cfg = load_config(args)
    logsetup.configure("clickhouse", cfg.log.format, cfg.log.level)
    log = logging.getLogger("otelingest.clickhouse")
    ch = EmbeddedClickHouse(
        cfg.data_path / "clickhouse",
        http_port=cfg.clickhouse.embedded_http_port,
        tcp_port=cfg.clickhouse.embedded_tcp_port,
        max_memory_mib=cfg.clickhouse.embedded_max_memory_mib,
        merge_threads=cfg.clickhouse.embedded_merge_threads,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ch.start()
    ch.wait_ready()
    log.info("embedded ClickHouse ready: HTTP %s, native TCP 127.0.0.1:%d, data %s",
             ch.url, ch.tcp_port, ch.root / "data")
    while not stop.wait(0.5):
        if not ch.alive():
            log.error("embedded ClickHouse exited: %s", ch.stderr_tail())
            return EXIT_BOOT
    code = ch.stop()
    log.info("embedded ClickHouse stopped (code %s)", code)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    from .selfmon import logsetup
    from .daemon import preflight
    from .daemon.rundir import metrics_path
    from .selfmon.endpoint import prepare_multiprocess_dir

    with preflight.run(cfg):  # the data-directory lock, held until the daemon has stopped
        # Before anything imports prometheus_client: every process writes its metrics here.
        prepare_multiprocess_dir(metrics_path(cfg.data_path))
        logsetup.configure("supervisor", cfg.log.format, cfg.log.level)
        from .daemon.supervisor import Supervisor

        return Supervisor(cfg, reload=lambda: load_config(args)).run()


BENCH_EXTRA_HINT = "pip install 'otelingest[bench]'"


def _import_bench(name: str) -> Any:
    """``otelingest.bench.<name>``; None (after saying which module is missing) without the bench extra."""
    import importlib

    try:
        return importlib.import_module(f"otelingest.bench.{name}")
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "otelingest":
            raise
        print(f"otelingest: the benchmarks need the bench extra ({BENCH_EXTRA_HINT}): no module named {e.name!r}",
              file=sys.stderr)
        return None


def cmd_bench(args: argparse.Namespace) -> int:
    """Run a benchmark of the installed package (``otelingest.bench.<name>``)."""
    module = _import_bench(args.bench)
    if module is None:
        return EXIT_CONFIG
    return int(module.main(args) or 0)


def cmd_loadgen(args: argparse.Namespace) -> int:
    """The benchmark's load generator against any OTLP endpoint (``otelingest.bench.target``)."""
    module = _import_bench("target")
    if module is None:
        return EXIT_CONFIG
    return int(module.main(args) or 0)


def _add_loadgen_parser(sub: Any) -> None:
    p = sub.add_parser("loadgen", help="the benchmark's OTLP load generator against any endpoint "
                                       f"(needs the bench extra: {BENCH_EXTRA_HINT})")
    p.add_argument("--endpoint", required=True, metavar="HOST:PORT", help="OTLP receiver to load (e.g. 127.0.0.1:4317)")
    p.add_argument("--protocol", choices=["grpc", "http"], default="grpc",
                   help="OTLP/gRPC or OTLP/HTTP protobuf (default grpc)")
    p.add_argument("--rate", type=float, metavar="N",
                   help="target items/s over all connections, open loop (default 10000; 0 = closed loop)")
    p.add_argument("--duration", type=float, metavar="S", help="seconds of load (default 30)")
    p.add_argument("--warmup", type=float, default=0.0, metavar="S",
                   help="seconds of load before the measured window, on top of --duration (default 0)")
    p.add_argument("--signals", default="traces", metavar="SIGNAL[:W],...",
                   help="signals sent in turn, optionally weighted: traces,logs,metrics (default traces)")
    p.add_argument("--connections", type=int, default=4, metavar="N", help="connections per process (default 4)")
    p.add_argument("--processes", type=int, default=1, metavar="N", help="sender processes (default 1)")
    p.add_argument("--headers", action="append", metavar="KEY=VALUE",
                   help="header (gRPC metadata) on every request, e.g. authorization='Bearer T' (repeatable)")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--insecure", action="store_true", help="plain TCP, no TLS (the default)")
    tls.add_argument("--ca", metavar="FILE", help="TLS, verifying the server's certificate with this CA (PEM)")
    p.add_argument("--json", metavar="PATH", help="write the summary (per signal accepted/refused/failed, latency "
                                                  "p50/p95/p99, per-second timeline) as JSON")
    p.add_argument("--seed", type=int, metavar="N", help="payload generator seed (default: the fixed bench seed)")
    p.set_defaults(func=cmd_loadgen)


def cmd_status(args: argparse.Namespace) -> int:
    from .selfmon import status

    cfg = load_config(args)
    report = status.collect(cfg, interval_s=args.interval)
    sys.stdout.write(report.to_json() + "\n" if args.json else status.render(report))
    return report.exit_code()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otelingest", description="OpenTelemetry ingestion daemon for ClickHouse")
    parser.add_argument("--version", action="version", version=f"otelingest {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the daemon in the foreground")
    _add_config_flags(p, ports=True)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="create or upgrade the schema and apply retention, then exit")
    _add_config_flags(p, ports=False)
    p.add_argument("--target", type=int, metavar="VERSION", help="stop at this schema version")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("clickhouse", help="run the embedded ClickHouse server alone")
    _add_config_flags(p, ports=False)
    p.set_defaults(func=cmd_clickhouse)

    p = sub.add_parser("status", help="one screen about the running daemon: processes, rates, memory, queues, ClickHouse")
    _add_config_flags(p, ports=True)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="between the two /metrics samples that give rates")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("config", help="print the effective configuration (secrets redacted)")
    _add_config_flags(p, ports=True)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("bench", help=f"run a benchmark (needs the bench extra: {BENCH_EXTRA_HINT})")
    p.add_argument("bench", choices=["ingest", "native", "query", "remote_write", "clickhouse"],
                   help="ingest: otelingest serve end to end under load vs a Python pipeline; clickhouse: ClickHouse's "
                        "CPU per item by INSERT, view and merge, schema variants side by side; remote_write: Prometheus "
                        "remote write closed loop (samples/s, per daemon CPU-second); native: decode+encode "
                        "throughput vs a Python baseline; query: query API latency per query type")
    p.add_argument("--duration", type=float, metavar="S",
                   help="seconds measured (ingest: 60 after the warm-up; native/query: 3 per measurement)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON (ingest: default bench-ingest.json, "
                                                  "and a PNG beside it)")
    p.add_argument("--seed", type=int, metavar="N", help="payload generator seed (default: the fixed bench seed)")
    g = p.add_argument_group("ingest")
    g.add_argument("--rate", type=float, metavar="N", help="target items/s, open loop (default 100000; 0 = closed loop)")
    g.add_argument("--warmup", type=float, default=5.0, metavar="S",
                   help="seconds of load before measuring (default 5; also bench query --with-ingest's)")
    g.add_argument("--connections", type=int, default=8, metavar="N", help="connections per sender process (default 8)")
    g.add_argument("--senders", type=int, default=1, metavar="N", help="sender processes (default 1)")
    g.add_argument("--transport", choices=["grpc", "http", "both"], default="both",
                   help="OTLP transport; both = half the connections each (default)")
    g.add_argument("--mix", metavar="SIGNAL:W,...", help="signals and weights, e.g. traces:2,logs:1,metrics:1 "
                                                         "(default traces)")
    g.add_argument("--tenants", type=int, default=0, metavar="N",
                   help="tenancy on (mode header) and each request a tenant's (X-Scope-OrgID / gRPC metadata), "
                        "round robin over N tenants; 0 = tenancy off (default)")
    g.add_argument("--receivers", type=int, default=2, metavar="N", help="daemon receiver processes (default 2)")
    g.add_argument("--writers", type=int, default=1, metavar="N", help="daemon writer processes (default 1)")
    g.add_argument("--baseline-seconds", type=float, default=15.0, metavar="S",
                   help="seconds of the Python baseline pipeline (default 15)")
    g.add_argument("--sample-rows", type=int, default=2_000_000, metavar="N",
                   help="spans copied into both schemas for the storage comparison (default 2000000)")
    g.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="daemon config knob, passed as OTELINGEST_SECTION_KEY (e.g. writer.batch_max_items=50000)")
    g.add_argument("--profile", action="store_true", help="py-spy the receivers and writers during the run")
    g.add_argument("--keep", action="store_true", help="keep the daemon's temporary data dir")
    g = p.add_argument_group("query")
    g.add_argument("--scale", type=float, default=1.0, metavar="F",
                   help="fraction of the full dataset (10M spans, 10M logs, 5M points over 24 h) to load (default 1)")
    g.add_argument("--dataset", metavar="DIR",
                   help="keep the loaded ClickHouse data in DIR and reuse it on the next run (default: a temporary dir)")
    g.add_argument("--only", metavar="SUBSTR", action="append",
                   help="time only the query types whose name contains SUBSTR (repeatable)")
    g.add_argument("--with-ingest", type=float, metavar="RATE",
                   help="while the queries run, a daemon stores RATE spans/s (and RATE/2 log records/s and metric "
                        "points/s) from the load generator into the same ClickHouse, as in production; the report "
                        "adds what it stored per second, its CPU and its loss")
    g = p.add_argument_group("clickhouse")
    g.add_argument("--signal", choices=["traces", "logs", "metrics"], default="traces", help="items of this signal (default traces)")
    g.add_argument("--items", type=int, default=300_000, metavar="N", help="items per measurement (default 300000)")
    g.add_argument("--rounds", type=int, default=3, metavar="N", help="measurements of each variant, alternated (default 3)")
    g.add_argument("--batch", type=int, default=50_000, metavar="N", help="rows per INSERT (default 50000, the writer's batch)")
    g.add_argument("--settle", type=float, default=10.0, metavar="S", help="seconds of background merges before OPTIMIZE FINAL (default 10)")
    g.add_argument("--variant", action="append", metavar="NAME=FILE",
                   help="a schema variant: FILE's SQL (the migrations' placeholders) after migrating; its lines "
                        "'-- @insert-setting KEY=VALUE' add INSERT settings (repeatable; 'base' always runs)")
    p.set_defaults(func=cmd_bench)

    _add_loadgen_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"otelingest: config error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except BootError as e:
        print(f"otelingest: cannot boot: {e}", file=sys.stderr)
        return EXIT_BOOT
    except (StorageError, SchemaError) as e:
        print(f"otelingest: {e}", file=sys.stderr)
        return EXIT_BOOT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
