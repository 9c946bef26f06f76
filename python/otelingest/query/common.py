"""Small helpers shared by the API modules: request parameters, JSON responses, validation."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .errors import BadRequest
from .storage.store import TenantStore
from .storage.cache import TenantCache
from .tenant import QueryLimits, tenant_of
from .timeparse import NS

_encoder = msgspec.json.Encoder()
HEX_RE_16 = "0123456789abcdefABCDEF"
MAX_FORM_BYTES = 1 << 20


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def store_of(request: Request) -> TenantStore:
    """The store bound to the request's tenant: every query it runs reads only that tenant's rows."""
    return request.app.state.store.for_tenant(tenant_of(request))


def cache_of(request: Request) -> TenantCache:
    """The result cache as the request's tenant sees it (its own answers only)."""
    return request.app.state.cache.for_tenant(tenant_of(request))


def now_ns() -> int:
    return time.time_ns()


async def form_params(request: Request) -> dict[str, list[str]]:
    """Query-string and (for POST) form parameters, every value kept (``match[]`` repeats)."""
    out: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        out.setdefault(k, []).append(v)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            body = await request.body()
            if len(body) > MAX_FORM_BYTES:
                raise BadRequest("form body too large")
            for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
                out.setdefault(k, []).append(v)
    return out


def first(params: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    vals = params.get(name)
    return vals[-1] if vals else default


def check_window(start_ns: int, end_ns: int, limits: QueryLimits, field: str = "end") -> None:
    if end_ns < start_ns:
        raise BadRequest("end is before start", field=field)
    if end_ns - start_ns > limits.range_days * 86400 * NS:
        raise BadRequest(f"time range longer than {limits.range_days} days ({limits.range_key})", field=field)


def check_points(points: int, limits: QueryLimits, field: str = "step") -> None:
    if points > limits.points:
        raise BadRequest(f"{points} points exceed the maximum {limits.points} ({limits.points_key}): "
                         "increase step or shorten the window", field=field)


def check_limit(limit: int, max_limit: int, field: str = "limit") -> int:
    if limit < 0:
        raise BadRequest("must not be negative", field=field)
    if limit > max_limit:
        raise BadRequest(f"{limit} exceeds the maximum {max_limit} ([query] max_limit)", field=field)
    return limit


def trace_id_hex(value: str, field: str) -> str:
    v = value.strip()
    if not v or len(v) > 32 or any(c not in HEX_RE_16 for c in v):
        raise BadRequest(f"invalid trace id {value[:64]!r}: expected up to 32 hex digits", field=field)
    return v.rjust(32, "0").upper()
