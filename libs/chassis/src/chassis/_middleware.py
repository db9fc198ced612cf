"""The per-request work every service does, as one pure ASGI middleware.

One layer rather than several keeps the chassis cheap per request (no BaseHTTPMiddleware,
no extra task per request): request id, body size limit, metrics, access log, and a last
line of defence that turns any unexpected exception into a 500 problem without a traceback.
Each request is a server span, the child of the caller's `traceparent` when it sends one.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis._database import database_unavailable
from chassis._http_metrics import IN_FLIGHT, method_label, observe_request
from chassis._problems import PROBLEM_MEDIA_TYPE, problem_body
from chassis.resilience import DEADLINE_HEADER, Deadline, deadline_scope
from chassis.tracing import TRACE_ID_HEADER, context_from_traceparent, tracer

__all__ = ["ServiceMiddleware"]

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_QUIET_PATHS = frozenset({"/livez", "/readyz", "/metrics"})

log = structlog.get_logger("chassis.http")


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        incoming = _Incoming(scope["headers"])
        method = method_label(scope["method"])
        path = scope["path"]
        status = 500
        response_started = False
        refused = False  # we answered 413 ourselves; whatever the app sends is dropped
        # Probes and scrapes every few seconds would bury real traces: they get none.
        span = (
            trace.INVALID_SPAN
            if path in _QUIET_PATHS
            else tracer().start_span(
                f"{method} {path}",
                context=context_from_traceparent(incoming.traceparent, incoming.tracestate),
                kind=SpanKind.SERVER,
            )
        )
        span_context = span.get_span_context()
        trace_id = b"%032x" % span_context.trace_id if span_context.is_valid else None
        # Without an id from the caller, the trace id serves: one id to quote, not two.
        request_id_bytes = incoming.request_id or trace_id or uuid.uuid4().hex.encode()
        request_id = request_id_bytes.decode("ascii")
        scope.setdefault("state", {})["request_id"] = request_id
        response_headers = [(REQUEST_ID_HEADER, request_id_bytes)]
        if trace_id is not None:
            response_headers.append((_TRACE_ID_HEADER, trace_id))
        attached = otel_context.attach(trace.set_span_in_context(span))

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if refused:
                return
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *response_headers]
            await send(message)

        async def send_problem(
            code: int, title: str, detail: str, *extra: tuple[bytes, bytes]
        ) -> None:
            body = problem_body(
                code, title=title, detail=detail, instance=path, request_id=request_id,
                slug={400: "invalid-deadline", 413: "payload-too-large", 500: "internal",
                      503: "database-unavailable", 504: "deadline-exceeded"}.get(code),
            )  # fmt: skip
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [
                        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                        (b"content-length", str(len(body)).encode()),
                        *extra,
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})

        received = 0

        async def limited_receive() -> Message:
            # A body without Content-Length (chunked) is counted as it arrives; past the
            # limit the client gets 413 and the app sees a disconnect.
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes and not response_started:
                    await send_problem(413, "Payload too large", self._too_large())
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        declared = incoming.content_length
        deadline, deadline_error = incoming.deadline()
        IN_FLIGHT.inc()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            if deadline_error is not None:
                await send_problem(400, "Invalid deadline", deadline_error)
            elif deadline is not None and deadline.expired:
                # The caller has given up already: doing the work would only waste it.
                await send_problem(
                    504, "Deadline exceeded", "The caller's deadline passed before we started."
                )
            elif declared is not None and declared > self.max_body_bytes:
                await send_problem(413, "Payload too large", self._too_large())
            elif deadline is not None:
                with deadline_scope(deadline):
                    await self.app(scope, limited_receive, send_with_id)
            else:
                await self.app(scope, limited_receive, send_with_id)
        except Exception as error:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            unavailable = database_unavailable(error)
            if unavailable:  # transient (restarting, out of connections): one line, no trace
                first_line = str(error).splitlines()[0][:200] if str(error) else ""
                log.warning("database_unavailable", method=method, path=path,
                            error=f"{type(error).__name__}: {first_line}")  # fmt: skip
            else:
                log.exception("unhandled_error", method=method, path=path)
            if response_started:
                pass
            elif unavailable:
                await send_problem(
                    503,
                    "Service unavailable",
                    "The service cannot reach its database right now; retry shortly.",
                    (b"retry-after", b"1"),
                )
            else:
                await send_problem(
                    500,
                    "Internal error",
                    f"Something went wrong on our side; quote request id {request_id}.",
                )
        finally:
            IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            observe_request(template, method, status, elapsed)
            span.update_name(f"{method} {template}")
            span.set_attributes(
                {
                    "http.request.method": method,
                    "url.path": path,
                    "http.route": template,
                    "http.response.status_code": status,
                }
            )
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
            if path not in _QUIET_PATHS:
                log.info(
                    "request",
                    method=method,
                    path=path,
                    route=template,
                    status=status,
                    duration_ms=round(elapsed * 1000, 3),
                )
            structlog.contextvars.unbind_contextvars("request_id")
            span.end()
            otel_context.detach(attached)

    def _too_large(self) -> str:
        return f"The request body is larger than the limit of {self.max_body_bytes} bytes."


_DEADLINE_HEADER = DEADLINE_HEADER.lower().encode("ascii")
_TRACE_ID_HEADER = TRACE_ID_HEADER.encode("ascii")


class _Incoming:
    """The request headers the middleware acts on, found in one pass."""

    __slots__ = ("_deadline", "content_length", "request_id", "traceparent", "tracestate")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.request_id: bytes | None = None
        self.content_length: int | None = None
        self.traceparent: str | None = None
        self.tracestate: str | None = None
        self._deadline: bytes | None = None
        for name, value in headers:
            if name == b"content-length":
                try:
                    self.content_length = int(value)
                except ValueError:
                    self.content_length = None
            elif name == b"traceparent":
                self.traceparent = value.decode("latin-1")
            elif name == REQUEST_ID_HEADER:
                # A client-supplied id is echoed into logs and headers, so it must be tame.
                self.request_id = value if _VALID_REQUEST_ID.match(value) else None
            elif name == _DEADLINE_HEADER:
                self._deadline = value
            elif name == b"tracestate":
                self.tracestate = value.decode("latin-1")

    def deadline(self) -> tuple[Deadline | None, str | None]:
        """The caller's deadline from `X-Mercato-Deadline-Ms`, or why it is unusable."""
        if self._deadline is None:
            return None, None
        try:
            return Deadline.from_header(self._deadline.decode("latin-1")), None
        except ValueError as error:
            return None, str(error)
