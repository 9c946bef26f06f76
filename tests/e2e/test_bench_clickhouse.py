"""``otelingest bench clickhouse``: ClickHouse's CPU per item by INSERT, view and merge, variants side by side."""

from __future__ import annotations

import json

from otelingest.cli import main


def test_measures_each_view_and_merge_of_every_variant(tmp_path):
    variant = tmp_path / "probe.sql"
    variant.write_text("-- @insert-setting optimize_on_insert=1\n"
                       "CREATE TABLE ${db}.bench_probe (x UInt8) ENGINE = MergeTree ORDER BY x;\n")
    out = tmp_path / "ch.json"
    assert main(["bench", "clickhouse", "--signal", "metrics", "--items", "5000", "--batch", "2000", "--rounds", "2",
                 "--settle", "0", "--variant", f"probe={variant}", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert (r["signal"], r["item"], r["items"]) == ("metrics", "points", 5000)
    # Each variant once per round, alternated: base first, then reversed.
    assert [(x["round"], x["variant"]) for x in r["runs"]] == [(0, "base"), (0, "probe"), (1, "probe"), (1, "base")]
    for x in r["runs"]:
        assert x["inserts"] == 3  # 5,000 points in INSERTs of 2,000
        assert x["insert_cpu_s"] > 0 and x["items_per_clickhouse_cpu_s"] > 0
        assert set(x["view_cpu_s"]) >= {"otel_metrics_5m_mv", "otel_metrics_1h_mv", "otel_metrics_series_mv"}
        assert x["merge_cpu_s_by_table"].get("otel_metrics", 0) > 0  # OPTIMIZE FINAL merged the three parts
        assert x["bytes_per_item"]["otel_metrics"] > 0
        assert ("bench_probe" in x["tables"]) == (x["variant"] == "probe")
    assert len(r["ratios"]["probe"]) == 2


def test_a_bad_variant_is_one_line_and_exit_2(tmp_path, capsys):
    for spec, says in [("novalue", "expected NAME=FILE"), ("base=x.sql", "NAME not 'base'"),
                       (f"gone={tmp_path / 'missing.sql'}", "missing.sql")]:
        assert main(["bench", "clickhouse", "--variant", spec]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("otelingest bench clickhouse: ") and says in err and "\n" not in err
