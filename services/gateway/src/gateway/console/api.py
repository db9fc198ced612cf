"""The console's API, `/api/v1/console/...`: JSON for the operations console, admins only.

Each call is authenticated like any API call at the edge (an access token, verified against
identity's keys), then refused unless the token carries the `admin` role: 401 without a
valid token, 403 for anyone else. Errors are problem+json. Nothing here has state of its
own: the gateway gathers what the platform already tells.

Routes (under the prefix), what they answer, and where it comes from:

- GET services: every service and instance, readiness, version, uptime, and the call edges
  (the registry, each instance's `/readyz`, the span files, the supervisor);
- GET resilience: breakers, outbox backlogs, consumer lag, dead letters stored (each
  instance's `/metrics`, as last scraped);
- GET metrics: request rate, 5xx rate and p99 per service, checkouts per second (`/metrics`
  scraped every few seconds, see `sampler`);
- GET sagas, sagas/{id}: checkout sagas by status, one saga's plan and timeline (orders'
  `/internal/sagas`);
- GET traces, traces/{id}: recent, slowest or failed traces, one trace's waterfall (the
  span files);
- GET dead-letters, POST dead-letters/{id}/replay and …/discard (the broker);
- GET and PUT faults/psp: the psp's latency/error/timeout knobs, on every psp instance;
- POST instances/{id}/kill: SIGKILL one instance, which the supervisor restarts (`mercato
  up`'s control API).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from chassis import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    PRINCIPAL_HEADER,
    InternalTokenCodec,
    Principal,
    method_label,
)
from chassis.discovery import Registry, ServiceInstance
from chassis.errors import (
    ForbiddenError,
    InvalidInputError,
    MercatoError,
    NotFoundError,
    UnauthenticatedError,
)
from chassis.http import ServiceClient, ServiceResponse, ServiceUnavailableError
from gateway.auth import AccessTokenVerifier
from gateway.console.dead_letters import DeadLetters
from gateway.console.errors import NotAvailableHereError, UpstreamUnavailableError, status_of
from gateway.console.history import Health, Snapshot
from gateway.console.sampler import Sampler, unsampled_traceparent
from gateway.console.supervisor import SupervisorClient
from gateway.console.topology import KNOWN_SERVICES, merge_edges
from gateway.console.traces import VIEWS, TraceIndex
from gateway.edge import problem
from gateway.ratelimit import RateLimiter

__all__ = ["PREFIX", "ConsoleApi"]

log = structlog.get_logger("gateway.console")

PREFIX = "/api/v1/console"
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SAGA_STATUSES = ("RUNNING", "COMPENSATING", "COMPLETED", "COMPENSATED")

Handler = Callable[[web.Request, Principal], Awaitable[web.Response]]


@contextlib.contextmanager
def _untraced() -> Iterator[None]:
    """Calls made in here carry an unsampled trace context: the services follow the
    decision and record nothing, so the console's polling never fills the trace store."""
    context = SpanContext(
        trace_id=secrets.randbits(128) or 1,
        span_id=secrets.randbits(64) or 1,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    with trace.use_span(NonRecordingSpan(context)):
        yield


def _iso(moment: datetime | float) -> str:
    if isinstance(moment, float):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidInputError(
            f"{name} must be a whole number from {low} to {high}",
            errors=[{"location": "query", "field": name, "message": f"{low}..{high}"}],
        )
    return value


def _path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.match(value):
        raise NotFoundError(f"there is no {name.replace('_', ' ')} {value[:40]!r}")
    return value


class ConsoleApi:
    def __init__(
        self,
        *,
        registry: Registry,
        client: ServiceClient,
        verifier: AccessTokenVerifier,
        limiter: RateLimiter,
        internal_tokens: InternalTokenCodec,
        sampler: Sampler,
        traces: TraceIndex | None,
        dead_letters: DeadLetters,
        supervisor: SupervisorClient,
        instance_id: str,
    ) -> None:
        self.registry = registry
        self.client = client
        self.verifier = verifier
        self.limiter = limiter
        self.internal_tokens = internal_tokens
        self.sampler = sampler
        self.traces = traces
        self.dead_letters = dead_letters
        self.supervisor = supervisor
        self.instance_id = instance_id

    def add_routes(self, router: web.UrlDispatcher) -> None:
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/services", self.services),
            ("GET", "/resilience", self.resilience),
            ("GET", "/metrics", self.metrics),
            ("GET", "/sagas", self.sagas),
            ("GET", "/sagas/{saga_id}", self.saga),
            ("GET", "/traces", self.trace_list),
            ("GET", "/traces/{trace_id}", self.trace),
            ("GET", "/dead-letters", self.dead_letter_list),
            ("POST", "/dead-letters/{letter_id}/replay", self.replay),
            ("POST", "/dead-letters/{letter_id}/discard", self.discard),
            ("GET", "/faults/psp", self.psp_faults),
            ("PUT", "/faults/psp", self.set_psp_faults),
            ("POST", "/instances/{instance_id}/kill", self.kill),
        ]
        for method, path, handler in routes:
            router.add_route(method, PREFIX + path, self._admin_only(PREFIX + path, handler))

    async def close(self) -> None:
        await self.sampler.close()
        await self.dead_letters.close()

    # -- the gate every route passes ---------------------------------------------------------

    def _admin_only(self, route: str, handler: Handler) -> Callable[[web.Request], Any]:
        async def guarded(request: web.Request) -> web.Response:
            started = time.perf_counter()
            request_id = uuid.uuid4().hex
            response: web.Response
            try:
                principal = await self._admin(request)
                wait = await self.limiter.acquire(f"user:{principal.subject}")
                if wait > 0:
                    response = problem(
                        429, "Too many requests; slow down and retry after the indicated time.",
                        request_id=request_id, instance=request.path, slug="rate-limited",
                        headers={"Retry-After": str(max(1, round(wait + 0.5)))},
                    )  # fmt: skip
                else:
                    self.sampler.touch()
                    response = await handler(request, principal)
            except MercatoError as error:
                status = status_of(error)
                headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                extra = error.extra or None
                response = problem(
                    status, error.detail, title=error.title, slug=error.slug,
                    request_id=request_id, instance=request.path, headers=headers, extra=extra,
                )  # fmt: skip
            except ServiceUnavailableError as error:
                response = problem(
                    503, f"{error.service} is unavailable right now; try again shortly.",
                    request_id=request_id, instance=request.path, slug="service-unavailable",
                    headers={"Retry-After": "1"},
                )  # fmt: skip
            except Exception:
                log.exception("console_error", path=request.path, request_id=request_id)
                response = problem(
                    500, f"Something went wrong on our side; quote request id {request_id}.",
                    request_id=request_id, instance=request.path, slug="internal",
                )  # fmt: skip
            method = method_label(request.method)
            HTTP_REQUESTS.labels(route, method, str(response.status)).inc()
            HTTP_REQUEST_DURATION.labels(route, method).observe(time.perf_counter() - started)
            response.headers.setdefault("x-request-id", request_id)
            return response

        return guarded

    async def _admin(self, request: web.Request) -> Principal:
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError("sign in: send 'Authorization: Bearer <access token>'")
        principal = await self.verifier.verify(token.strip())
        if "admin" not in principal.roles:
            raise ForbiddenError("the operations console is for admins only")
        return principal

    def _as(self, principal: Principal) -> dict[str, str]:
        """Headers that carry the admin's identity to a service, as the edge would."""
        return {
            PRINCIPAL_HEADER: self.internal_tokens.issue(principal),
            "traceparent": unsampled_traceparent(),
        }

    # -- the service map ---------------------------------------------------------------------

    async def services(self, _: web.Request, __: Principal) -> web.Response:
        instances = await self.registry.all_instances()
        session = self.sampler.session()
        health, supervised, scan = await asyncio.gather(
            asyncio.gather(*(self.sampler.readiness(i) for i in instances)),
            self.supervisor.instances(session),
            self.traces.current() if self.traces else _none(),
        )
        now = datetime.now(UTC)
        by_service: dict[str, list[dict[str, Any]]] = {name: [] for name in KNOWN_SERVICES}
        for instance, ready in sorted(
            zip(instances, health, strict=True), key=lambda pair: pair[0].instance_id
        ):
            by_service.setdefault(instance.service, []).append(
                self._instance(instance, ready, supervised.get(instance.instance_id), now)
            )
        return _json(
            {
                "generated_at": _iso(now),
                "this_instance": self.instance_id,
                "supervisor": {"available": self.supervisor.available},
                "traces": {"available": self.traces is not None},
                "services": [
                    {
                        "name": name,
                        "ready": sum(1 for i in items if i["ready"]),
                        "instances": items,
                    }
                    for name, items in by_service.items()
                ],
                "edges": merge_edges(scan.edges if scan else {}),
            }
        )

    def _instance(
        self,
        instance: ServiceInstance,
        health: Health,
        supervised: dict[str, Any] | None,
        now: datetime,
    ) -> dict[str, Any]:
        return {
            "instance_id": instance.instance_id,
            "url": instance.url,
            "version": instance.version,
            "started_at": _iso(instance.started_at),
            "uptime_seconds": round((now - instance.started_at).total_seconds(), 1),
            "last_heartbeat": _iso(instance.last_heartbeat),
            "heartbeat_age_seconds": round((now - instance.last_heartbeat).total_seconds(), 1),
            "ready": health.ready,
            "checks": dict(health.checks),
            "error": health.error,
            "pid": supervised.get("pid") if supervised else None,
            "restarts": supervised.get("restarts") if supervised else None,
        }

    # -- breakers, outboxes, consumers ------------------------------------------------------

    async def resilience(self, _: web.Request, __: Principal) -> web.Response:
        snapshot = await self.sampler.latest()
        return _json(resilience_of(snapshot))

    async def metrics(self, request: web.Request, _: Principal) -> web.Response:
        minutes = _int_param(request, "minutes", 15, 1, 60)
        await self.sampler.latest()  # at least one scrape, so the first visit is not empty
        series = self.sampler.history.series(since=time.time() - minutes * 60)
        return _json({"interval_seconds": self.sampler.interval, **series})

    # -- sagas (orders owns them) ------------------------------------------------------------

    async def sagas(self, request: web.Request, principal: Principal) -> web.Response:
        params: dict[str, str] = {"limit": str(_int_param(request, "limit", 25, 1, 100))}
        status = request.query.get("status", "")
        if status:
            if status not in _SAGA_STATUSES:
                raise InvalidInputError(
                    f"status is one of {', '.join(_SAGA_STATUSES)}",
                    errors=[{"location": "query", "field": "status", "message": "unknown"}],
                )
            params["status"] = status
        for name in ("cursor", "order_id"):
            if request.query.get(name):
                params[name] = request.query[name][:512]
        answer = await self._orders("/internal/sagas", principal, params)
        return _relay_json(answer)

    async def saga(self, request: web.Request, principal: Principal) -> web.Response:
        saga_id = _path_id(request, "saga_id")
        answer = await self._orders(f"/internal/sagas/{saga_id}", principal, {})
        if answer.status != 200:
            return _relay_json(answer)
        body = answer.json()
        scan = await self.traces.current() if self.traces else None
        body["trace_id"] = scan.saga_traces.get(saga_id) if scan else None
        return _json(body)

    async def _orders(
        self, path: str, principal: Principal, params: dict[str, str]
    ) -> ServiceResponse:
        with _untraced():
            return await self.client.request(
                "orders", "GET", path, params=params, headers=self._as(principal), timeout=5.0
            )

    # -- traces ------------------------------------------------------------------------------

    def _trace_index(self) -> TraceIndex:
        if self.traces is None:
            raise NotAvailableHereError(
                "This gateway reads no span files (MERCATO_TRACE_DIR is not set); "
                "spans go to the OpenTelemetry collector: look them up there."
            )
        return self.traces

    async def trace_list(self, request: web.Request, _: Principal) -> web.Response:
        view = request.query.get("view", "recent")
        if view not in VIEWS:
            raise InvalidInputError(
                f"view is one of {', '.join(VIEWS)}",
                errors=[{"location": "query", "field": "view", "message": "unknown"}],
            )
        limit = _int_param(request, "limit", 30, 1, 200)
        service = request.query.get("service") or None
        items = await self._trace_index().listing(view=view, limit=limit, service=service)
        return _json({"view": view, "items": items})

    async def trace(self, request: web.Request, _: Principal) -> web.Response:
        trace_id = request.match_info["trace_id"].lower()
        if not _TRACE_ID.match(trace_id):
            raise NotFoundError("a trace id is 32 hexadecimal digits")
        found = await self._trace_index().waterfall(trace_id)
        if found is None:
            raise NotFoundError(f"no spans of trace {trace_id} are stored (yet)")
        return _json(found)

    # -- dead letters ------------------------------------------------------------------------

    async def dead_letter_list(self, request: web.Request, _: Principal) -> web.Response:
        consumer = request.query.get("consumer") or None
        return _json({"items": await self.dead_letters.listing(consumer)})

    async def replay(self, request: web.Request, principal: Principal) -> web.Response:
        letter_id = _path_id(request, "letter_id")
        await self.dead_letters.replay(letter_id)
        log.info("console_action", action="replay_dead_letter", id=letter_id, by=principal.email)
        return _json({"id": letter_id, "replayed": True})

    async def discard(self, request: web.Request, principal: Principal) -> web.Response:
        letter_id = _path_id(request, "letter_id")
        await self.dead_letters.discard(letter_id)
        log.info("console_action", action="discard_dead_letter", id=letter_id, by=principal.email)
        return _json({"id": letter_id, "discarded": True})

    # -- fault injection ---------------------------------------------------------------------

    async def psp_faults(self, _: web.Request, principal: Principal) -> web.Response:
        return _json(await self._on_every_psp("GET", principal, None))

    async def set_psp_faults(self, request: web.Request, principal: Principal) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise InvalidInputError("send the knobs as a JSON object")
        found = await self._on_every_psp("PUT", principal, body)
        refused = next((i for i in found["instances"] if i.get("problem")), None)
        if refused is not None:  # the psp's own validation, passed on as it said it
            return _json(refused["problem"], status=int(refused["problem"].get("status", 422)))
        log.info("console_action", action="set_psp_faults", knobs=body, by=principal.email)
        return _json(found)

    async def _on_every_psp(
        self, method: str, principal: Principal, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The knobs are per process: the same call to every psp instance."""
        instances = await self.registry.instances("psp")
        if not instances:
            raise UpstreamUnavailableError("no psp instance is registered")
        session = self.sampler.session()

        async def one(instance: ServiceInstance) -> dict[str, Any]:
            try:
                async with session.request(
                    method, f"{instance.url}/v1/_faults", json=body, headers=self._as(principal)
                ) as answer:
                    document = await answer.json(content_type=None)
                    status = answer.status
            except (OSError, TimeoutError, ValueError) as error:
                return {"instance_id": instance.instance_id, "error": type(error).__name__}
            if status == 200:
                return {"instance_id": instance.instance_id, "knobs": document}
            return {"instance_id": instance.instance_id, "problem": document}

        results = await asyncio.gather(*(one(i) for i in instances))
        knobs = next((r["knobs"] for r in results if "knobs" in r), None)
        return {"knobs": knobs, "instances": sorted(results, key=lambda r: r["instance_id"])}

    async def kill(self, request: web.Request, principal: Principal) -> web.Response:
        instance_id = _path_id(request, "instance_id")
        killed = await self.supervisor.kill(self.sampler.session(), instance_id)
        log.info("console_action", action="kill_instance", instance=instance_id, by=principal.email)
        return _json(killed, status=202)


async def _none() -> None:
    return None


def _relay_json(answer: ServiceResponse) -> web.Response:
    content_type = answer.headers.get("content-type", "application/json").split(";")[0]
    return web.Response(
        body=answer.body,
        status=answer.status,
        content_type=content_type,
        headers={"Cache-Control": "no-store"},
    )


def resilience_of(snapshot: Snapshot) -> dict[str, Any]:
    """Breakers per calling instance; outbox backlogs per service and consumer lag per
    consumer group (replicas share a database and a group, so each reports the same
    number: the largest is shown); dead letters as the broker counts them."""
    breakers = []
    outboxes: dict[str, dict[str, Any]] = {}
    consumers: dict[tuple[str, str], float] = {}
    dead: float | None = None
    active: float | None = None
    for instance, reading in sorted(snapshot.readings.items()):
        service = snapshot.services.get(instance, "?")
        for target, state in sorted(reading.breakers.items()):
            breakers.append(
                {"service": service, "instance_id": instance, "target": target, "state": state}
            )
        # Every process importing the chassis' messaging exports the outbox gauges; only
        # those wired to the broker (a `broker` readiness check) run a relay.
        wired = "broker" in snapshot.health.get(instance, Health(ready=False)).checks
        if reading.outbox_backlog is not None and wired:
            known = outboxes.setdefault(
                service, {"service": service, "backlog": 0.0, "oldest_age_seconds": 0.0}
            )
            known["backlog"] = max(known["backlog"], reading.outbox_backlog)
            known["oldest_age_seconds"] = max(
                known["oldest_age_seconds"], reading.outbox_oldest_age or 0.0
            )
        for consumer, lag in reading.consumer_lag.items():
            consumers[(service, consumer)] = max(consumers.get((service, consumer), 0.0), lag)
        if reading.dead_letters_stored is not None:
            dead = max(dead or 0.0, reading.dead_letters_stored)
        if reading.sagas_active is not None:
            active = max(active or 0.0, reading.sagas_active)
    return {
        "at": _iso(snapshot.at),
        "breakers": breakers,
        "outboxes": sorted(outboxes.values(), key=lambda o: o["service"]),
        "consumers": [
            {"service": service, "consumer": consumer, "lag": lag}
            for (service, consumer), lag in sorted(consumers.items())
        ],
        "dead_letters_stored": dead,
        "sagas_active": active,
        "not_scraped": sorted(set(snapshot.services) - set(snapshot.readings)),
    }
