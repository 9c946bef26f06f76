"""OTLP/HTTP receiver: a small HTTP/1.1 server on an asyncio Protocol (run on uvloop).

Why not uvicorn/h11: the receiver needs only POST with a body, and wants exact control of the
limits: the request-size check happens on the headers (413 before reading a byte of an oversized
body), chunked bodies are counted as they arrive, and one timer bounds the time a client may take to
send a whole request (408, connection closed) so no client can hold a worker.

Per connection: requests are handled one at a time (reading pauses while a request is decoded and
stored), keep-alive by default, ``Connection: close`` honoured, ``Expect: 100-continue`` answered.
Any framing error answers 400 and closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from concurrent.futures import Executor
from typing import Any

from ...selfmon import instruments
from . import otlp, prometheus
from ...config import DEFAULT_TENANT
from ...tenancy import HEADER as TENANT_HEADER, Problem, Tenancy
from .intake import BAD, FULL, MEMORY, OK, TENANT_LIMIT, TOO_LARGE, Intake, Outcome

log = logging.getLogger("otelingest.receiver")

MAX_HEADER_BYTES = 64 * 1024
# A keep-alive connection with no request for this long is closed (exporters reconnect at will).
IDLE_TIMEOUT_S = 120.0
REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
           429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           503: "Service Unavailable"}
CONTENT_TYPES = {"application/x-protobuf": "protobuf", "application/protobuf": "protobuf", "application/json": "json"}
ENCODINGS = {"": None, "identity": None, "gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}
MEDIA = {"protobuf": b"application/x-protobuf", "json": b"application/json", "text": b"text/plain; charset=utf-8"}
# Prometheus remote write 1.0 (prometheus.py): its own path, body encoding and replies.
REMOTE_WRITE = "prometheus"
GRPC_CODE = {BAD: 3, MEMORY: 8, FULL: 14, TOO_LARGE: 3, TENANT_LIMIT: 8}  # google.rpc.Code in HTTP error bodies
# An uncompressed body up to this size is decoded on the event loop's thread (a few hundred us,
# the GIL released): the hand-off to a decode thread and back cost more CPU than the decode itself.
# Larger or compressed bodies (which may inflate up to max_decompressed_bytes) go to the pool.
INLINE_DECODE_BYTES = 256 * 1024


class HttpError(Exception):
    def __init__(self, status: int, message: str, fmt: str = "json", extra: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.fmt = fmt
        self.extra = extra


class Request:
    __slots__ = ("method", "path", "headers", "body", "chunks", "remaining", "chunked", "fmt", "signal", "keep_alive",
                 "rw_version", "rw_written", "tenant")

    def __init__(self) -> None:
        self.method = ""
        self.path = ""
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.body = b""
        # Content-Length bytes still to come; in a chunked body the current chunk's, -1 after the last.
        self.remaining = 0
        self.chunked = False
        self.fmt = "json"
        self.signal = ""
        self.keep_alive = True
        self.rw_version = 1
        # Remote write 2.0: (samples, exemplars) of the request, for the reply's headers.
        self.rw_written: tuple[int, int] | None = None
        self.tenant = DEFAULT_TENANT


class HttpReceiver:
    """Owns the listening socket and the connections of one worker process."""

    def __init__(self, intake: Intake, executor: Executor, *, host: str, port: int, max_body: int,
                 timeout_s: float, retry_after_s: int, max_concurrent: int = 1 << 30,
                 auth: Any = None, ssl: Any = None, tenancy: Tenancy | None = None) -> None:
        self.intake = intake
        self.tenancy = tenancy
        self.max_concurrent = max_concurrent
        self.auth = auth
        self.ssl = ssl
        self.executor = executor
        self.host, self.port = host, port
        self.max_body = max_body
        self.timeout_s = timeout_s
        self.retry_after = str(retry_after_s).encode()
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[HttpProtocol] = set()
        self.inflight = 0
        self.inflight_bytes = 0
        self.stopping = False

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        sock.listen(1024)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: HttpProtocol(self), sock=sock, ssl=self.ssl)

    async def stop(self, grace_s: float) -> None:
        """Stop accepting, close idle connections, let in-flight requests finish (up to grace_s)."""
        self.stopping = True
        if self.server is not None:
            self.server.close()
        for c in list(self.connections):
            c.close_if_idle()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while (self.inflight or any(c.busy for c in self.connections)) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for c in list(self.connections):
            c.abort()


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server: HttpReceiver) -> None:
        self.srv = server
        self.transport: Any = None
        self.buf = bytearray()
        self.req: Request | None = None
        self.handling = False
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()

    @property
    def busy(self) -> bool:
        return self.handling or self.req is not None or bool(self.buf)

    # --- transport events --------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.srv.connections.add(self)
        self._start_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        self._cancel_idle()
        self.srv.connections.discard(self)

    def _start_idle(self) -> None:
        self._cancel_idle()
        self.idle_timer = self.loop.call_later(IDLE_TIMEOUT_S, self.close_if_idle)

    def _cancel_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def data_received(self, data: bytes) -> None:
        self._cancel_idle()
        self.buf += data
        if self.timer is None and not self.handling:
            self.timer = self.loop.call_later(self.srv.timeout_s, self._timed_out)
        if not self.handling:
            self._advance()

    def close_if_idle(self) -> None:
        if not self.busy and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self) -> None:
        self.timer = None
        if self.handling or self.closed:
            return
        instruments.refused.labels("timeout", "").inc()
        self._respond(408, b"application/json", otlp.status_json(4, "request not received in time"), close=True)

    # --- parsing -----------------------------------------------------------------------------------

    def _advance(self) -> None:
        try:
            while not self.handling and not self.closed:
                if self.req is None:
                    if not self._parse_head():
                        return
                if not self._parse_body():
                    return
                req, self.req = self.req, None
                assert req is not None
                self._cancel_timer()
                self.handling = True
                self.transport.pause_reading()
                asyncio.ensure_future(self._handle(req))
        except HttpError as e:
            instruments.refused.labels(_refusal_reason(e.status), "").inc()
            code = 16 if e.status == 401 else 3
            self._respond(e.status, MEDIA[e.fmt], _error_body(e.fmt, code, str(e)), close=True, extra=e.extra)

    def _parse_head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEADER_BYTES:
                raise HttpError(431, "request headers too large")
            return False
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400, "malformed request line")
        req = Request()
        req.method, target, version = parts
        req.path = target.split("?", 1)[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise HttpError(400, "malformed header line")
            key = name.strip().lower()
            # The tenant header twice is two tenants (refused), not the last one.
            headers[key] = headers[key] + "|" + value.strip() if key == TENANT_HEADER and key in headers else value.strip()
        req.headers = headers
        conn = headers.get("connection", "").lower()
        req.keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        fmt = CONTENT_TYPES.get(ctype)
        req.fmt = fmt or "json"
        signal = otlp.HTTP_PATHS.get(req.path)
        if req.path == prometheus.PATH:
            signal = REMOTE_WRITE
            req.fmt = fmt = "text"
        if signal is None:
            raise HttpError(404, f"unknown path {req.path}", req.fmt)
        if req.method != "POST":
            raise HttpError(405, "only POST is supported", req.fmt)
        if signal == REMOTE_WRITE:
            problem, req.rw_version = prometheus.check_headers(headers)
            if problem is not None:
                raise HttpError(415, problem, req.fmt)
        elif fmt is None:
            raise HttpError(415, f"unsupported content type {ctype!r}; use application/x-protobuf or application/json")
        elif headers.get("content-encoding", "").lower() not in ENCODINGS:
            raise HttpError(415, f"unsupported content encoding {headers['content-encoding']!r}", fmt)
        fmt = req.fmt
        req.signal = signal
        auth = self.srv.auth
        if auth is not None and auth.enabled and not auth.check(headers.get("authorization")):
            raise HttpError(401, "missing or invalid credentials", fmt,
                            extra=b"WWW-Authenticate: " + auth.challenge().encode() + b"\r\n")
        tenancy = self.srv.tenancy
        if tenancy is not None and tenancy.enabled:
            # Before the body is read: a request without a tenant costs nothing more.
            credential = auth.identify(headers.get("authorization")) if auth is not None else None
            tenant = tenancy.resolve_headers(headers, credential)
            if isinstance(tenant, Problem):
                raise HttpError(tenant.status, tenant.message, fmt)
            req.tenant = tenant
        te = headers.get("transfer-encoding", "").lower()
        if te:
            if te != "chunked":
                raise HttpError(400, f"unsupported transfer encoding {te!r}", fmt)
            req.chunked = True
        elif "content-length" in headers:
            try:
                req.remaining = int(headers["content-length"])
            except ValueError:
                raise HttpError(400, "invalid Content-Length", fmt) from None
            if req.remaining < 0:
                raise HttpError(400, "invalid Content-Length", fmt)
            if req.remaining > self.srv.max_body:
                raise HttpError(413, f"request body of {req.remaining} bytes is over the {self.srv.max_body} byte limit", fmt)
        else:
            raise HttpError(411, "a body with Content-Length or chunked transfer encoding is required", fmt)
        if headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.req = req
        return True

    def _parse_body(self) -> bool:
        req = self.req
        assert req is not None
        if not req.chunked:
            if len(self.buf) < req.remaining:
                return False
            with memoryview(self.buf) as view:  # one copy (a bytearray slice would be a second)
                req.body = bytes(view[:req.remaining])
            del self.buf[:req.remaining]
            return True
        while True:
            if req.remaining > 0:  # inside a chunk's data (+ its CRLF)
                need = req.remaining + 2
                if len(self.buf) < need:
                    return False
                if self.buf[req.remaining:need] != b"\r\n":
                    raise HttpError(400, "malformed chunk", req.fmt)
                req.chunks.append(bytes(self.buf[:req.remaining]))
                del self.buf[:need]
                req.remaining = 0
            if req.remaining == -1:  # after the last chunk: trailers up to an empty line
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return False
                del self.buf[:end + 2]
                if end == 0:
                    req.body = b"".join(req.chunks)
                    req.chunks = []
                    return True
                continue
            end = self.buf.find(b"\r\n")
            if end < 0:
                if len(self.buf) > 1024:
                    raise HttpError(400, "malformed chunk size", req.fmt)
                return False
            size_text = bytes(self.buf[:end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpError(400, "malformed chunk size", req.fmt) from None
            del self.buf[:end + 2]
            if size == 0:
                req.remaining = -1
                continue
            if sum(map(len, req.chunks)) + size > self.srv.max_body:
                raise HttpError(413, f"request body is over the {self.srv.max_body} byte limit", req.fmt)
            req.remaining = size

    # --- handling ----------------------------------------------------------------------------------

    async def _handle(self, req: Request) -> None:
        srv = self.srv
        srv.inflight += 1
        srv.inflight_bytes += len(req.body)
        close = not req.keep_alive or srv.stopping
        try:
            outcome = srv.intake.admit(req.tenant)
            if outcome is None and srv.inflight > srv.max_concurrent:
                instruments.refused.labels("concurrency", instruments.tenant_label(req.tenant)).inc()
                outcome = Outcome(FULL, message="too many concurrent requests, retry later")
            if outcome is None:
                try:
                    if req.signal == REMOTE_WRITE and req.rw_version == 2:
                        decoded, samples, exemplars = await self.loop.run_in_executor(
                            srv.executor, srv.intake.decode_remote_write_v2, req.body, req.tenant)
                        req.rw_written = (samples, exemplars)
                    elif req.signal == REMOTE_WRITE:
                        decoded = await self.loop.run_in_executor(
                            srv.executor, srv.intake.decode_remote_write, req.body, "snappy", req.tenant)
                    else:
                        compression = ENCODINGS[req.headers.get("content-encoding", "").lower()]
                        if compression is None and len(req.body) <= INLINE_DECODE_BYTES:
                            decoded = srv.intake.decode(req.signal, req.body, req.fmt, None, req.tenant)
                        else:
                            decoded = await self.loop.run_in_executor(
                                srv.executor, srv.intake.decode, req.signal, req.body, req.fmt, compression, req.tenant
                            )
                except srv.intake.DecodeError as e:
                    instruments.refused.labels("bad_request", instruments.tenant_label(req.tenant)).inc()
                    outcome = Outcome(BAD, message=str(e))
                else:
                    if req.signal == REMOTE_WRITE:
                        outcome = srv.intake.store("metrics", decoded, prometheus.TRANSPORT, req.tenant)
                    else:
                        outcome = srv.intake.store(req.signal, decoded, "http", req.tenant)
            self._send_outcome(req, outcome, close)
        except Exception:  # a bug must not leave the client hanging
            log.exception("request handling failed")
            self._respond(500, b"application/json", otlp.status_json(13, "internal error"), close=True)
        finally:
            srv.inflight -= 1
            srv.inflight_bytes -= len(req.body)
            self.handling = False
            if not self.closed:
                self.transport.resume_reading()
                if self.buf:
                    self.timer = self.loop.call_later(srv.timeout_s, self._timed_out)
                    self._advance()
                else:
                    self._start_idle()

    def _send_outcome(self, req: Request, outcome: Outcome, close: bool) -> None:
        fmt = req.fmt
        if req.signal == REMOTE_WRITE:
            status, body = prometheus.reply(outcome)
            extra = b"Retry-After: " + self.srv.retry_after + b"\r\n" if status == 503 else b""
            if outcome.kind == TENANT_LIMIT:
                extra = b"Retry-After: %d\r\n" % outcome.retry_after_s
            if outcome.kind == OK and req.rw_written is not None:
                extra += prometheus.written_headers(req.rw_written[0] - outcome.over_limit, req.rw_written[1])
            self._respond(status, MEDIA["text"], body, close=close, extra=extra)
            return
        if outcome.kind == OK:
            if fmt == "json":
                body = otlp.response_json(req.signal, outcome.rejected, outcome.message if outcome.rejected else None)
            else:
                body = otlp.response_protobuf(outcome.rejected, outcome.message if outcome.rejected else None)
            self._respond(200, MEDIA[fmt], body, close=close)
            return
        status = {BAD: 400, MEMORY: 429, FULL: 503, TOO_LARGE: 413, TENANT_LIMIT: 429}[outcome.kind]
        body = _error_body(fmt, GRPC_CODE[outcome.kind], outcome.message or "")
        extra = b"" if outcome.kind in (BAD, TOO_LARGE) else b"Retry-After: " + self.srv.retry_after + b"\r\n"
        if outcome.kind == TENANT_LIMIT:
            extra = b"Retry-After: %d\r\n" % outcome.retry_after_s
        self._respond(status, MEDIA[fmt], body, close=close, extra=extra)

    def _respond(self, status: int, ctype: bytes, body: bytes, *, close: bool, extra: bytes = b"") -> None:
        if self.closed:
            return
        head = (
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            % (status, REASONS.get(status, "Error").encode(), ctype, len(body))
        ) + extra + (b"Connection: close\r\n\r\n" if close else b"\r\n")
        self.transport.write(head + body)
        if close:
            self.closed = True
            self._cancel_timer()
            self.transport.close()


def _error_body(fmt: str, code: int, message: str) -> bytes:
    if fmt == "text":
        return message.encode() + b"\n"
    return otlp.status_json(code, message) if fmt == "json" else otlp.rpc_status(code, message)


def _refusal_reason(status: int) -> str:
    return {413: "too_large", 415: "unsupported", 404: "not_found", 405: "not_found", 408: "timeout",
            401: "unauthenticated"}.get(status, "bad_request")
