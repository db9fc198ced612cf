"""The gateway's request path, on aiohttp.web.

Kept off FastAPI's per-request routing and validation (DESIGN.md §8): one handler matches
the precompiled route table, authenticates, rate-limits and forwards through the chassis
`ServiceClient` (discovery, balancing, breaker, retries where safe, deadlines).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import structlog
from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from chassis import (
    HTTP_IN_FLIGHT,
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    PRINCIPAL_HEADER,
    PROBLEM_MEDIA_TYPE,
    InternalTokenCodec,
    Principal,
    method_label,
    problem_body,
)
from chassis.errors import MercatoError, UnauthenticatedError
from chassis.http import ServiceClient, ServiceResponse, ServiceUnavailableError
from chassis.resilience import Deadline, deadline_scope
from chassis.tracing import TRACE_ID_HEADER, context_from_traceparent, current_trace_id, tracer
from gateway.auth import AccessTokenVerifier
from gateway.order_events import EventStreamPolicy, stream_order
from gateway.ratelimit import RateLimiter
from gateway.routing import Route, RouteTable, route_label

log = structlog.get_logger("gateway")

# Never forwarded: connection-level headers, and identity a client must not assert itself.
_HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "host", "content-length",
        PRINCIPAL_HEADER, "x-forwarded-for", "x-forwarded-proto", "x-mercato-deadline-ms",
    }
)  # fmt: skip
_RESPONSE_DROP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
)
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_PRODUCT_PATH = re.compile(r"^/api/v1/products/(?P<id>[A-Za-z0-9-]{1,64})$")
_ORDER_PATH = re.compile(r"^/api/v1/orders/(?P<id>[A-Za-z0-9-]{1,64})$")
_ORDER_EVENTS_PATH = re.compile(r"^/api/v1/orders/(?P<id>[A-Za-z0-9-]{1,64})/events$")

Composer = Callable[["Edge", web.Request, dict[str, str]], Awaitable[web.Response]]


def problem(
    status: int,
    detail: str,
    *,
    request_id: str,
    instance: str,
    title: str | None = None,
    slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    body = problem_body(
        status, title=title, detail=detail, slug=slug, instance=instance,
        request_id=request_id, extra=extra,
    )  # fmt: skip
    return web.Response(
        body=body,
        status=status,
        content_type=PROBLEM_MEDIA_TYPE,
        headers={"x-request-id": request_id, **(headers or {})},
    )


class Edge:
    """Everything one request needs; built once by the composition root."""

    def __init__(
        self,
        *,
        routes: RouteTable,
        client: ServiceClient,
        upstreams: ServiceClient,
        verifier: AccessTokenVerifier,
        limiter: RateLimiter,
        internal_tokens: InternalTokenCodec,
        request_timeout: float,
        cors_origins: frozenset[str],
        max_body_bytes: int,
        order_events: EventStreamPolicy | None = None,
    ) -> None:
        self.routes = routes
        self.client = client
        self.upstreams = upstreams
        self.verifier = verifier
        self.limiter = limiter
        self.internal_tokens = internal_tokens
        self.request_timeout = request_timeout
        self.cors_origins = cors_origins
        self.max_body_bytes = max_body_bytes
        self.order_events = order_events or EventStreamPolicy()
        self._internal_cache: dict[Principal, tuple[str, float]] = {}

    # -- the request path ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        incoming_id = request.headers.get("x-request-id", "")
        request_id = incoming_id if _VALID_REQUEST_ID.match(incoming_id) else uuid.uuid4().hex
        path = request.path
        route = self.routes.match(path)
        template = route_label(route, path)
        span = tracer().start_span(
            f"{request.method} {template}",
            context=context_from_traceparent(
                request.headers.get("traceparent"), request.headers.get("tracestate")
            ),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": path},
        )
        with trace.use_span(span, end_on_exit=True, record_exception=False):
            HTTP_IN_FLIGHT.inc()
            response: web.StreamResponse
            try:
                response = await self._handle(request, route, request_id)
            except MercatoError as error:
                response = self._error(error, request_id, path)
            except ServiceUnavailableError as error:
                response = problem(
                    503,
                    f"{error.service} is unavailable right now; try again shortly.",
                    request_id=request_id, instance=path, slug="service-unavailable",
                    headers={"Retry-After": "1"},
                )  # fmt: skip
            except web.HTTPRequestEntityTooLarge:
                response = problem(
                    413,
                    f"The request body is larger than the limit of {self.max_body_bytes} bytes.",
                    request_id=request_id, instance=path, slug="payload-too-large",
                )  # fmt: skip
            except Exception:
                log.exception("unhandled_error", path=path, request_id=request_id)
                response = problem(
                    500, f"Something went wrong on our side; quote request id {request_id}.",
                    request_id=request_id, instance=path, slug="internal",
                )  # fmt: skip
            finally:
                HTTP_IN_FLIGHT.dec()
            self._cors(request, response)
            elapsed = time.perf_counter() - started
            method = method_label(request.method)
            HTTP_REQUESTS.labels(template, method, str(response.status)).inc()
            HTTP_REQUEST_DURATION.labels(template, method).observe(elapsed)
            log.info(
                "request", method=method, path=path, route=template, status=response.status,
                duration_ms=round(elapsed * 1000, 3), request_id=request_id,
            )  # fmt: skip
            span.set_attribute("http.route", template)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {response.status}"))
            trace_id = current_trace_id()
            if trace_id and not response.prepared:
                response.headers[TRACE_ID_HEADER] = trace_id
            return response

    async def _handle(
        self, request: web.Request, route: Route | None, request_id: str
    ) -> web.StreamResponse:
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return web.Response(status=204, headers={"x-request-id": request_id})
        principal = await self._authenticate(request)
        peer = request.remote or "unknown"
        wait = await self.limiter.acquire(
            f"user:{principal.subject}" if principal else f"ip:{peer}"
        )
        if wait > 0:
            return problem(
                429, "Too many requests; slow down and retry after the indicated time.",
                request_id=request_id, instance=request.path, slug="rate-limited",
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
            )  # fmt: skip
        if route is None:
            return problem(
                404, f"There is no resource at {request.path}.",
                request_id=request_id, instance=request.path, slug="not-found",
            )  # fmt: skip
        headers = self._forward_headers(request, principal, request_id, peer)
        if request.method == "GET" and route.service == "catalog":
            match = _PRODUCT_PATH.match(request.path)
            if match:
                return await self._compose_product(match["id"], headers, request_id)
        if request.method == "GET" and route.service == "orders":
            match = _ORDER_PATH.match(request.path)
            if match:
                return await self._compose_order(match["id"], headers, request_id)
            match = _ORDER_EVENTS_PATH.match(request.path)
            if match:
                return await self._order_events(request, match["id"], principal, headers)
        return await self._forward(request, route, headers, request_id)

    async def _authenticate(self, request: web.Request) -> Principal | None:
        authorization = request.headers.get("authorization")
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError("use 'Authorization: Bearer <access token>'")
        return await self.verifier.verify(token.strip())

    def _forward_headers(
        self, request: web.Request, principal: Principal | None, request_id: str, peer: str
    ) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["x-request-id"] = request_id
        forwarded = request.headers.get("x-forwarded-for")
        # The gateway is the edge: a client's own X-Forwarded-For is not trusted, only kept
        # in front of the address we saw, which services read as the last hop.
        headers["x-forwarded-for"] = f"{forwarded}, {peer}" if forwarded else peer
        headers["x-forwarded-proto"] = request.scheme
        if principal is not None:
            headers[PRINCIPAL_HEADER] = self._internal_token(principal)
        return headers

    def _internal_token(self, principal: Principal) -> str:
        now = time.monotonic()
        cached = self._internal_cache.get(principal)
        if cached is not None and cached[1] > now:
            return cached[0]
        token = self.internal_tokens.issue(principal)
        # Reused for half its life: signing per request would cost more than the proxying.
        self._internal_cache[principal] = (token, now + 30.0)
        if len(self._internal_cache) > 50_000:
            self._internal_cache.clear()
        return token

    async def _forward(
        self, request: web.Request, route: Route, headers: dict[str, str], request_id: str
    ) -> web.Response:
        body = await request.read() if request.can_read_body else None
        # Static upstreams (legacy systems being strangled) sit in their own static registry.
        client = self.upstreams if route.upstream is not None else self.client
        # The path as the client encoded it: decoded, `%3F` or `%23` would become the start of
        # a query or a fragment upstream, and the service would answer another request.
        with deadline_scope(Deadline.after(self.request_timeout)):
            answer = await client.request(
                route.service or "", request.method, request.rel_url.raw_path, data=body,
                params=request.rel_url.query, headers=headers,
            )  # fmt: skip
        return _relay(answer, request_id)

    # -- aggregation -------------------------------------------------------------------------

    async def _compose_product(
        self, product_id: str, headers: dict[str, str], request_id: str
    ) -> web.Response:
        """The product from catalog with live availability; availability null when the
        inventory service cannot say (an explicit, documented fallback)."""
        with deadline_scope(Deadline.after(self.request_timeout)):
            product = await self.client.request(
                "catalog", "GET", f"/api/v1/products/{product_id}", headers=headers
            )
            if product.status != 200:
                return _relay(product, request_id)
            document = product.json()
            document["availability"] = await self._availability(document.get("sku"), headers)
        return web.Response(
            body=orjson.dumps(document),
            content_type="application/json",
            headers={"x-request-id": request_id},
        )

    async def _compose_order(
        self, order_id: str, headers: dict[str, str], request_id: str
    ) -> web.Response:
        document = await self._order_document(order_id, headers)
        if isinstance(document, ServiceResponse):
            return _relay(document, request_id)
        return web.Response(
            body=orjson.dumps(document),
            content_type="application/json",
            headers={"x-request-id": request_id},
        )

    async def _order_document(
        self, order_id: str, headers: dict[str, str]
    ) -> dict[str, Any] | ServiceResponse:
        """The order from orders with its payment status from payments (null when payments
        cannot say), or orders' answer when it is not 200. Both services check that the
        caller owns the order."""
        with deadline_scope(Deadline.after(self.request_timeout)):
            order = await self.client.request(
                "orders", "GET", f"/api/v1/orders/{order_id}", headers=headers
            )
            if order.status != 200:
                return order
            document: dict[str, Any] = order.json()
            document["payment"] = await self._optional(
                "payments", "/api/v1/payments", {"order_id": order_id}, headers
            )
        return document

    async def _order_events(
        self,
        request: web.Request,
        order_id: str,
        principal: Principal | None,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        """The order's changes as Server-Sent Events (gateway.order_events). The first
        document is fetched exactly as GET /api/v1/orders/{id} is, so a caller who may not
        read the order gets the same problem answer and no stream."""
        request_id = headers["x-request-id"]
        first = await self._order_document(order_id, headers)
        if isinstance(first, ServiceResponse):
            return _relay(first, request_id)

        async def fetch() -> dict[str, Any] | None:
            if principal is not None:  # internal tokens are short-lived; the stream is not
                headers[PRINCIPAL_HEADER] = self._internal_token(principal)
            try:
                found = await self._order_document(order_id, headers)
            except (ServiceUnavailableError, TimeoutError):
                return None
            return None if isinstance(found, ServiceResponse) else found

        response_headers = {"x-request-id": request_id}
        origin = request.headers.get("origin")
        if origin and origin in self.cors_origins:  # headers go out before the first event
            response_headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin"})
        return await stream_order(
            request, first, fetch, policy=self.order_events, headers=response_headers
        )

    async def _optional(
        self, service: str, path: str, params: dict[str, str], headers: dict[str, str]
    ) -> Any:
        """A secondary document for a composition, or None: a part may be missing, the
        whole must still answer."""
        try:
            answer = await asyncio.wait_for(
                self.client.request(
                    service, "GET", path, params=params, headers=headers, timeout=0.5
                ),
                timeout=0.75,
            )
        except (ServiceUnavailableError, TimeoutError):
            return None
        return answer.json() if answer.status == 200 else None

    async def _availability(self, sku: object, headers: dict[str, str]) -> Any:
        if not isinstance(sku, str):
            return None
        found = await self._optional(
            "inventory", "/api/v1/inventory/availability", {"skus": sku}, headers
        )
        items = found.get("items", []) if isinstance(found, dict) else []
        return items[0] if items else None

    # -- helpers -----------------------------------------------------------------------------

    def _error(self, error: MercatoError, request_id: str, path: str) -> web.Response:
        status = (
            401
            if isinstance(error, UnauthenticatedError)
            else 403
            if error.slug == "forbidden"
            else 400
        )
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
        return problem(
            status, error.detail, title=error.title, slug=error.slug,
            request_id=request_id, instance=path, headers=headers,
        )  # fmt: skip

    def _cors(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("origin")
        if not origin or origin not in self.cors_origins:
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, PUT, DELETE"
            response.headers["Access-Control-Allow-Headers"] = (
                "authorization, content-type, idempotency-key, x-request-id"
            )
            response.headers["Access-Control-Max-Age"] = "600"


def _relay(answer: ServiceResponse, request_id: str) -> web.Response:
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in _RESPONSE_DROP}
    headers["x-request-id"] = request_id
    return web.Response(body=answer.body, status=answer.status, headers=headers)
