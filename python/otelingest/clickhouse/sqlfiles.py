"""Access to the SQL in ``sql/``: migrations and the named queries the services run.

SQL lives only in ``sql/``. Named queries use ClickHouse server-side parameters
(``{name:Type}``) so that values are always bound, never concatenated.
"""

from __future__ import annotations

import functools
from pathlib import Path


def sql_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "sql", package.parent.parent / "sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise FileNotFoundError("otelingest: the sql/ directory is missing from the installation")


@functools.cache
def query(name: str) -> str:
    """The text of ``sql/queries/<name>.sql``."""
    return (sql_dir() / "queries" / f"{name}.sql").read_text()


@functools.cache
def fragments(name: str) -> dict[str, str]:
    """The ``-- @fragment NAME`` sections of ``sql/queries/<name>.sql``, comment lines removed
    (a fragment is composed inline, where a trailing comment would swallow what follows)."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in query(name).splitlines():
        stripped = line.strip()
        if stripped.startswith("-- @fragment "):
            current = out.setdefault(stripped.removeprefix("-- @fragment ").strip(), [])
        elif current is not None and stripped and not stripped.startswith("--"):
            current.append(line)
    return {k: "\n".join(v) for k, v in out.items()}
