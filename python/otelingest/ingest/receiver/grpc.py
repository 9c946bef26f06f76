"""OTLP/gRPC receiver: grpcio with generic handlers and identity (de)serializers.

The raw request bytes go straight to the native decoder (gRPC itself undoes ``grpc-encoding:
gzip``); the response is the Export*ServiceResponse encoded by hand. Refusals carry a retry hint
both ways clients read it: the ``google.rpc.retryinfo-bin`` trailer (OTel Python, Java) and a
``google.rpc.Status`` with a RetryInfo detail in ``grpc-status-details-bin`` (OTel Go, the
Collector).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import grpc  # type: ignore[import-untyped]

from . import otlp
from ...config import DEFAULT_TENANT
from ...tenancy import Problem, Tenancy
from .intake import BAD, FULL, MEMORY, OK, TENANT_LIMIT, TOO_LARGE, Intake

log = logging.getLogger("otelingest.receiver")

_CODES = {BAD: grpc.StatusCode.INVALID_ARGUMENT, TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT, MEMORY: grpc.StatusCode.RESOURCE_EXHAUSTED, FULL: grpc.StatusCode.UNAVAILABLE,
          TENANT_LIMIT: grpc.StatusCode.RESOURCE_EXHAUSTED}


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, methods: dict[str, Callable[[bytes, Any], bytes]]) -> None:
        self.methods = methods

    def service(self, handler_call_details: Any) -> Any:
        fn = self.methods.get(handler_call_details.method)
        if fn is None:
            return None  # UNIMPLEMENTED
        return grpc.unary_unary_rpc_method_handler(fn)  # no (de)serializers: bytes in, bytes out


class GrpcReceiver:
    def __init__(self, intake: Intake, *, host: str, port: int, max_message_bytes: int, threads: int,
                 retry_after_s: int, auth: Any = None, tls: tuple[bytes, bytes] | None = None,
                 tenancy: Tenancy | None = None) -> None:
        """``tls`` is (private key PEM, certificate chain PEM); ``auth`` an otelingest.auth.Authenticator."""
        self.intake = intake
        self.tenancy = tenancy if tenancy is not None and tenancy.enabled else None
        self.auth = auth if auth is not None and auth.enabled else None
        self.retry_after_s = retry_after_s
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="grpc")
        self.server = grpc.server(
            self.executor,
            options=[
                ("grpc.so_reuseport", 1),
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", 4 << 20),
            ],
            maximum_concurrent_rpcs=threads * 4,
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
        self.inflight = 0

    def _method(self, signal: str) -> Callable[[bytes, Any], bytes]:
        def export(request: bytes, context: Any) -> bytes:
            given = None
            if self.auth is not None:
                given = next((v for k, v in context.invocation_metadata() if k == "authorization"), None)
                if not self.auth.check(given):
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid credentials")
            tenant = DEFAULT_TENANT
            if self.tenancy is not None:
                metadata = [(k, v) for k, v in context.invocation_metadata() if isinstance(v, str)]
                credential = self.auth.identify(given) if self.auth is not None else None
                resolved = self.tenancy.resolve_pairs(metadata, credential)
                if isinstance(resolved, Problem):
                    context.abort(getattr(grpc.StatusCode, resolved.grpc), resolved.message)
                tenant = str(resolved)
            self.inflight += 1
            try:
                outcome = self.intake.handle(signal, request, "protobuf", None, "grpc", tenant)
            finally:
                self.inflight -= 1
            if outcome.kind == OK:
                return otlp.response_protobuf(outcome.rejected, outcome.message if outcome.rejected else None)
            code = _CODES[outcome.kind]
            msg = outcome.message or code.name
            if outcome.kind in (MEMORY, FULL, TENANT_LIMIT):
                hint = otlp.retry_info(outcome.retry_after_s or self.retry_after_s)
                status = otlp.rpc_status(code.value[0], msg, [(otlp.RETRY_INFO_TYPE, hint)])
                context.set_trailing_metadata((("google.rpc.retryinfo-bin", hint), ("grpc-status-details-bin", status)))
            context.abort(code, msg)
            raise AssertionError("unreachable")  # abort raises

        return export

    def start(self) -> None:
        self.server.start()

    def stop(self, grace_s: float) -> None:
        """Stop accepting; in-flight RPCs get ``grace_s`` to finish."""
        self.server.stop(grace_s).wait()
        self.executor.shutdown(wait=True)
