"""The tenant of each query request, resolved exactly as the receivers resolve it
(``otelingest.tenancy``): the one helper every API's handlers read (``tenant_of``).

Reads are not scoped by tenant yet (docs/tenancy.md, "Status"): until every query file filters on
``TenantId = {tenant:String}``, answering a tenant's query would show it every tenant's rows. So
with tenancy on, a request whose tenant resolves is answered 501, never with data: a tenant is a
security boundary, and a half-scoped read path would not be one.
"""

from __future__ import annotations

from typing import Any, Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth import Authenticator
from ..config import DEFAULT_TENANT
from ..tenancy import Problem, Tenancy

NOT_SCOPED_YET = "tenant-scoped reads are not built yet (issue 19): with [tenancy] on, the query API answers no data"


def tenant_of(request: Request) -> str:
    """The request's tenant (``default`` with tenancy off)."""
    return str(request.scope.get("state", {}).get("tenant", DEFAULT_TENANT))


class TenantMiddleware:
    """Resolves the tenant (401 missing, 400 malformed or disagreeing with the credential) in the
    API's error format, and puts it in the request's state."""

    def __init__(self, app: ASGIApp, tenancy: Tenancy, authenticator: Authenticator,
                 render: Callable[[str, int, str, str], Any]) -> None:
        self.app = app
        self.tenancy = tenancy
        self.auth = authenticator
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        authorization = next((v for k, v in pairs if k == "authorization"), None)
        credential = self.auth.identify(authorization) if self.auth.enabled else None
        tenant = self.tenancy.resolve_pairs(pairs, credential)
        if isinstance(tenant, Problem):
            error_type = "unauthorized" if tenant.status == 401 else "bad_data"
            await self.render(scope["path"], tenant.status, error_type, tenant.message)(scope, receive, send)
            return
        scope.setdefault("state", {})["tenant"] = tenant
        await self.render(scope["path"], 501, "unavailable", NOT_SCOPED_YET)(scope, receive, send)
