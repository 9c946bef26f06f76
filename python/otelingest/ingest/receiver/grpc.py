"""OTLP/gRPC receiver: a grpc.aio server on the receiver's event loop, generic handlers, bytes in and out.

The raw request bytes go straight to the native decoder (gRPC itself undoes ``grpc-encoding:
gzip``), on the loop's thread up to ``INLINE_DECODE_BYTES`` as OTLP/HTTP does, in the decode pool
above; the response is the Export*ServiceResponse encoded by hand. Refusals carry a retry hint
both ways clients read it: the ``google.rpc.retryinfo-bin`` trailer (OTel Python, Java) and a
``google.rpc.Status`` with a RetryInfo detail in ``grpc-status-details-bin`` (OTel Go, the
Collector). grpcio's threaded server cost a quarter more CPU per request, its poll thread
handing each call to a pool thread and back (docs/benchmarks.md, "Sixth pass").
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Any, Awaitable, Callable

import grpc  # type: ignore[import-untyped]

from . import otlp
from ...config import DEFAULT_TENANT
from ...tenancy import Problem, Tenancy
from .intake import BAD, FULL, INLINE_DECODE_BYTES, MEMORY, OK, TENANT_LIMIT, TOO_LARGE, Intake, Outcome

log = logging.getLogger("otelingest.receiver")

_CODES = {BAD: grpc.StatusCode.INVALID_ARGUMENT, TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT, MEMORY: grpc.StatusCode.RESOURCE_EXHAUSTED, FULL: grpc.StatusCode.UNAVAILABLE,
          TENANT_LIMIT: grpc.StatusCode.RESOURCE_EXHAUSTED}

Method = Callable[[bytes, Any], Awaitable[bytes]]


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, methods: dict[str, Method]) -> None:
        self.methods = methods

    def service(self, handler_call_details: Any) -> Any:
        fn = self.methods.get(handler_call_details.method)
        if fn is None:
            return None  # UNIMPLEMENTED
        return grpc.unary_unary_rpc_method_handler(fn)  # no (de)serializers: bytes in, bytes out


class GrpcReceiver:
    def __init__(self, intake: Intake, executor: Executor, *, host: str, port: int, max_message_bytes: int,
                 max_concurrent: int, retry_after_s: int, auth: Any = None, tls: tuple[bytes, bytes] | None = None,
                 tenancy: Tenancy | None = None) -> None:
        """Call from the running loop. ``executor`` decodes the large requests; ``tls`` is (private key
        PEM, certificate chain PEM); ``auth`` an otelingest.auth.Authenticator."""
        self.intake = intake
        self.executor = executor
        self.tenancy = tenancy if tenancy is not None and tenancy.enabled else None
        self.auth = auth if auth is not None and auth.enabled else None
        self.retry_after_s = retry_after_s
        self.server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 1),
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", 4 << 20),
            ],
            maximum_concurrent_rpcs=max_concurrent,
        )
        methods = {path: self._method(signal) for path, signal in otlp.GRPC_METHODS.items()}
        self.server.add_generic_rpc_handlers((_Handler(methods),))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if tls is not None:
            creds = grpc.ssl_server_credentials([tls])
            self.bound = self.server.add_secure_port(address, creds)
        else:
            self.bound = self.server.add_insecure_port(address)
        if not self.bound:
            raise OSError(f"cannot bind OTLP/gRPC on {address}")

    def _method(self, signal: str) -> Method:
        intake = self.intake

        async def export(request: bytes, context: Any) -> bytes:
            given = None
            if self.auth is not None:
                given = next((v for k, v in context.invocation_metadata() if k == "authorization"), None)
                if not self.auth.check(given):
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid credentials")
            tenant = DEFAULT_TENANT
            if self.tenancy is not None:
                metadata = [(k, v) for k, v in context.invocation_metadata() if isinstance(v, str)]
                credential = self.auth.identify(given) if self.auth is not None else None
                resolved = self.tenancy.resolve_pairs(metadata, credential)
                if isinstance(resolved, Problem):
                    await context.abort(getattr(grpc.StatusCode, resolved.grpc), resolved.message)
                tenant = str(resolved)
            outcome = intake.admit(tenant) or await self._decode_and_store(signal, request, tenant)
            if outcome.kind == OK:
                return otlp.response_protobuf(outcome.rejected, outcome.message if outcome.rejected else None)
            code = _CODES[outcome.kind]
            msg = outcome.message or code.name
            trailers: tuple[tuple[str, bytes], ...] = ()
            if outcome.kind in (MEMORY, FULL, TENANT_LIMIT):
                hint = otlp.retry_info(outcome.retry_after_s or self.retry_after_s)
                status = otlp.rpc_status(code.value[0], msg, [(otlp.RETRY_INFO_TYPE, hint)])
                trailers = (("google.rpc.retryinfo-bin", hint), ("grpc-status-details-bin", status))
            await context.abort(code, msg, trailing_metadata=trailers)
            raise AssertionError("unreachable")  # abort raises

        return export

    async def _decode_and_store(self, signal: str, request: bytes, tenant: str) -> Outcome:
        intake = self.intake
        try:
            if len(request) <= INLINE_DECODE_BYTES:
                decoded = intake.decode(signal, request, "protobuf", None, tenant)
            else:
                decoded = await asyncio.get_running_loop().run_in_executor(
                    self.executor, intake.decode, signal, request, "protobuf", None, tenant)
        except intake.DecodeError as e:
            return intake.refuse_bad(str(e), tenant)
        return intake.store(signal, decoded, "grpc", tenant)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self, grace_s: float) -> None:
        """Stop accepting; in-flight RPCs get ``grace_s`` to finish."""
        await self.server.stop(grace_s)
