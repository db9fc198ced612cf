"""The per-request work every service does, as one pure ASGI middleware.

One layer rather than several keeps the chassis cheap per request (no BaseHTTPMiddleware,
no extra task per request): request id, body size limit, metrics, access log, and a last
line of defence that turns any unexpected exception into a 500 problem without a traceback.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis._http_metrics import IN_FLIGHT, REQUEST_DURATION, REQUESTS, method_label
from chassis._problems import PROBLEM_MEDIA_TYPE, problem_body
from chassis.resilience import DEADLINE_HEADER, Deadline, deadline_scope

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

        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        request_id_bytes = request_id.encode("ascii")
        method = method_label(scope["method"])
        path = scope["path"]
        started = time.perf_counter()
        status = 500
        response_started = False
        refused = False  # we answered 413 ourselves; whatever the app sends is dropped

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if refused:
                return
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER, request_id_bytes),
                ]
            await send(message)

        async def send_problem(code: int, title: str, detail: str) -> None:
            body = problem_body(
                code, title=title, detail=detail, instance=path, request_id=request_id,
                slug={400: "invalid-deadline", 413: "payload-too-large", 500: "internal",
                      504: "deadline-exceeded"}.get(code),
            )  # fmt: skip
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [
                        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                        (b"content-length", str(len(body)).encode()),
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

        declared = _content_length(scope)
        deadline, deadline_error = _incoming_deadline(scope)
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
        except Exception:
            log.exception("unhandled_error", method=method, path=path)
            if not response_started:
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
            REQUESTS.labels(template, method, str(status)).inc()
            REQUEST_DURATION.labels(template, method).observe(elapsed)
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

    def _too_large(self) -> str:
        return f"The request body is larger than the limit of {self.max_body_bytes} bytes."


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            # A client-supplied id is echoed into logs and headers, so it must be tame.
            return value.decode("ascii") if _VALID_REQUEST_ID.match(value) else None
    return None


_DEADLINE_HEADER = DEADLINE_HEADER.lower().encode("ascii")


def _incoming_deadline(scope: Scope) -> tuple[Deadline | None, str | None]:
    """The caller's deadline from `X-Mercato-Deadline-Ms`, or why the header is unusable."""
    for name, value in scope["headers"]:
        if name == _DEADLINE_HEADER:
            try:
                return Deadline.from_header(value.decode("latin-1")), None
            except ValueError as error:
                return None, str(error)
    return None, None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
