"""`otelingest serve` logs one structured line per event, in the configured format, naming the role."""

from __future__ import annotations

import json
import re

import pytest
from ops_daemon import clean_env, serve

LOGFMT_PAIR = r'[A-Za-z_][A-Za-z0-9_.]*=(?:"(?:[^"\\]|\\.)*"|[^\s"=]+)'
LOGFMT_LINE = re.compile(rf"^{LOGFMT_PAIR}(?: {LOGFMT_PAIR})*$")
# The role is the process title without "otelingest: ".
ROLE = re.compile(r"^(supervisor|clickhouse|query|(receiver|writer) \d+)$")


def logfmt(line: str) -> dict[str, str]:
    assert LOGFMT_LINE.match(line), f"not logfmt: {line!r}"
    out = {}
    for pair in re.findall(LOGFMT_PAIR, line):
        k, _, v = pair.partition("=")
        out[k] = json.loads(v) if v.startswith('"') else v
    return out


@pytest.mark.parametrize("fmt", ["json", "logfmt"])
def test_serve_writes_only_structured_lines_with_the_role(tmp_path, fmt):
    with serve(tmp_path, env=clean_env(OTELINGEST_LOG_FORMAT=fmt)) as daemon:
        pass  # ready, then SIGTERM: start-up, migration and shutdown events are all logged
    assert daemon.proc.returncode == 0
    lines = [line for line in daemon.log().splitlines() if line.strip()]
    events = []
    for line in lines:
        if fmt == "json":
            event = json.loads(line)
            assert isinstance(event, dict), line
        else:
            assert not line.lstrip().startswith("{"), line
            event = logfmt(line)
        assert ROLE.match(str(event["role"])), line
        assert {"ts", "level", "msg", "pid", "logger"} <= set(event), line
        events.append(event)
    msgs = [e["msg"] for e in events]
    assert msgs[-1] == "stopped"
    assert any(m.startswith("applying migration 0001") for m in msgs)
    # Every process of the daemon logged something, each under its own role.
    assert {e["role"] for e in events} >= {"supervisor", "receiver 0", "writer 0", "query"}


def test_logfmt_parser_rejects_json_and_free_text():
    with pytest.raises(AssertionError):
        logfmt('{"msg": "x"}')
    with pytest.raises(AssertionError):
        logfmt("Traceback (most recent call last):")
    assert logfmt('a=1 msg="two words" b=x') == {"a": "1", "msg": "two words", "b": "x"}


def test_logfmt_escapes_control_characters_and_drops_color_message():
    import logging

    from otelingest.selfmon.logsetup import JsonFormatter, LogfmtFormatter

    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "started \x1b[36m%d\x1b[0m\r\n", (7,), None)
    record.color_message = "Started \x1b[36m%d\x1b[0m"
    line = LogfmtFormatter("query").format(record)
    assert not any(c < " " or c == "\x7f" for c in line), repr(line)
    event = logfmt(line)
    assert event["msg"] == "started \x1b[36m7\x1b[0m\r\n" and event["role"] == "query"
    assert "color_message" not in event
    assert "color_message" not in json.loads(JsonFormatter("query").format(record))
