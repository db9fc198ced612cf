"""Calls to other services: discovered, balanced, and resilient.

Per target service one load balancer (power of two choices, outlier ejection), one circuit
breaker, one retry budget and one bulkhead. A request picks an instance from the
registry's local cache, asks the breaker, holds a bulkhead slot, and sends with a timeout
no longer than the caller's deadline, which travels on in `X-Mercato-Deadline-Ms`.
Failures (connection errors, timeouts, 502/503/504) count against the instance and the
breaker; only idempotent methods, or requests carrying an idempotency key, are retried,
on another pick, within the budget.

aiohttp, not httpx: httpx's pool collapses under concurrency (DESIGN.md §8).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import structlog
from opentelemetry.trace import SpanKind, Status, StatusCode

from chassis.discovery import LoadBalancer, NoInstancesError, Registry, ServiceInstance
from chassis.resilience import (
    DEADLINE_HEADER,
    SYSTEM_CLOCK,
    Bulkhead,
    CircuitBreakerConfig,
    CircuitBreakerRegistry,
    Clock,
    Retrier,
    RetryBudget,
    RetryPolicy,
    current_deadline,
    timeout_for,
)
from chassis.tracing import TRACEPARENT, traceparent_of, tracer

__all__ = ["ServiceCallError", "ServiceClient", "ServiceResponse", "ServiceUnavailableError"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_FAILURE_STATUSES = frozenset({502, 503, 504})

log = structlog.get_logger("chassis.http")


@dataclass(frozen=True)
class ServiceResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    instance: str = ""

    def json(self) -> Any:
        return orjson.loads(self.body)


class ServiceCallError(Exception):
    """A call to another service failed without an HTTP answer worth passing on."""

    def __init__(self, service: str, detail: str, *, status: int | None = None) -> None:
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.detail = detail
        self.status = status


class ServiceUnavailableError(ServiceCallError):
    """No instance could answer: none registered, all failing, breaker open, bulkhead full."""


class _RetryableStatusError(ServiceCallError):
    def __init__(self, service: str, response: ServiceResponse) -> None:
        super().__init__(service, f"HTTP {response.status}", status=response.status)
        self.response = response


@dataclass
class _Target:
    balancer: LoadBalancer
    budget: RetryBudget
    bulkhead: Bulkhead
    retrier: Retrier = field(init=False)


class ServiceClient:
    """One per process; `request(service, method, path, …)` for every outgoing call."""

    def __init__(
        self,
        registry: Registry,
        *,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreakerConfig | None = None,
        max_concurrent: int = 200,
        connections: int = 200,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self.timeout = timeout
        self.retry = retry or RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.5)
        self.breakers = CircuitBreakerRegistry(
            breaker
            or CircuitBreakerConfig(
                minimum_number_of_calls=20,
                sliding_window_size=50,
                failure_rate_threshold=50,
                slow_call_duration_threshold=max(timeout, 2.0),
                wait_duration_in_open_state=5.0,
                permitted_number_of_calls_in_half_open_state=3,
                is_failure=_is_failure,
            ),
            clock=clock,
        )
        self.max_concurrent = max_concurrent
        self._connections = connections
        self._clock = clock
        self._rng = rng or random.Random()
        self._targets: dict[str, _Target] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connections, limit_per_host=0, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def target(self, service: str) -> _Target:
        found = self._targets.get(service)
        if found is None:
            found = _Target(
                balancer=LoadBalancer(service, rng=self._rng, clock=self._clock),
                budget=RetryBudget(service, clock=self._clock),
                bulkhead=Bulkhead(service, self.max_concurrent),
            )
            found.retrier = Retrier(
                service,
                self.retry,
                is_retryable=_is_retryable_failure,
                budget=found.budget,
                rng=self._rng,
            )
            self._targets[service] = found
        return found

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> ServiceResponse:
        """Send to one instance of `service`; retried on another only when safe.

        Returns any HTTP answer (4xx included) except a final 502/503/504 after retries,
        which raises `ServiceUnavailableError`, as do connection failures and timeouts.
        """
        method = method.upper()
        body = orjson.dumps(json) if json is not None else data
        sent_headers = dict(headers or {})
        if json is not None:
            sent_headers.setdefault("content-type", "application/json")
        if idempotency_key is not None:
            sent_headers["idempotency-key"] = idempotency_key
        target = self.target(service)
        safe = method in _IDEMPOTENT or "idempotency-key" in {k.lower() for k in sent_headers}

        tried: set[str] = set()  # a retry goes to another instance while there is one

        async def attempt() -> ServiceResponse:
            return await self._attempt(
                service, target, method, path, body, params, sent_headers, timeout,
                safe=safe, tried=tried,
            )  # fmt: skip

        try:
            return await target.retrier.call(attempt)
        except _RetryableStatusError as error:
            raise ServiceUnavailableError(
                service, f"answered HTTP {error.response.status}", status=error.response.status
            ) from None
        except ServiceCallError:
            raise
        except Exception as error:
            raise ServiceUnavailableError(service, _describe(error)) from None

    async def _attempt(
        self,
        service: str,
        target: _Target,
        method: str,
        path: str,
        body: bytes | None,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        timeout: float | None,
        *,
        safe: bool,
        tried: set[str],
    ) -> ServiceResponse:
        if self._session is None:
            raise RuntimeError("ServiceClient.start() was not called")
        instances = await self.registry.instances(service)
        if not instances:
            raise ServiceUnavailableError(service, "no instance is registered")
        instance = target.balancer.pick(instances, avoid=tried)
        tried.add(instance.instance_id)
        breaker = self.breakers.get(service)
        breaker.acquire_permission()
        started = self._clock.monotonic()
        target.balancer.acquire(instance)
        ok = False
        try:
            async with target.bulkhead.slot():
                response = await self._send(instance, method, path, body, params, headers, timeout)
            ok = response.status not in _FAILURE_STATUSES
        except BaseException as error:
            breaker.on_error(self._clock.monotonic() - started, error)
            connect_failed = isinstance(error, aiohttp.ClientConnectorError)
            if isinstance(error, (aiohttp.ClientError, TimeoutError)) and not (
                safe or connect_failed
            ):
                # The request may have reached the instance: never resend it.
                raise ServiceUnavailableError(service, _describe(error)) from None
            raise
        finally:
            target.balancer.release(instance, ok=ok)
        elapsed = self._clock.monotonic() - started
        if ok:
            breaker.on_success(elapsed)
            return response
        breaker.on_error(elapsed, None)
        if safe:
            raise _RetryableStatusError(service, response)
        return response

    async def _send(
        self,
        instance: ServiceInstance,
        method: str,
        path: str,
        body: bytes | None,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> ServiceResponse:
        assert self._session is not None
        seconds = timeout_for(timeout or self.timeout)
        deadline = current_deadline.get()
        if deadline is not None:
            headers = {**headers, DEADLINE_HEADER: deadline.to_header()}
        # One client span per attempt: a retry shows as a second call, to another instance.
        with tracer().start_as_current_span(
            f"{method} {instance.service}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "server.address": instance.host,
                "server.port": instance.port,
                "url.path": path,
                "peer.service": instance.service,
                "mercato.instance": instance.instance_id,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            traceparent = traceparent_of(span)
            if traceparent is not None:
                headers = {**headers, TRACEPARENT: traceparent}
            try:
                async with self._session.request(
                    method,
                    f"{instance.url}{path}",
                    data=body,
                    params=params,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=seconds),
                    allow_redirects=False,
                ) as response:
                    payload = await response.read()
            except BaseException as error:
                span.set_status(Status(StatusCode.ERROR, _describe(error)))
                raise
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {response.status}"))
            return ServiceResponse(
                response.status, response.headers, payload, instance=instance.instance_id
            )


def _is_failure(exc: BaseException) -> bool:
    # A breaker counts what says "this dependency is unwell", not a caller's bad request.
    return not isinstance(exc, asyncio.CancelledError)


def _is_retryable_failure(exc: Exception) -> bool:
    if isinstance(exc, _RetryableStatusError):
        return True
    if isinstance(exc, ServiceUnavailableError):
        return "no instance" in exc.detail
    return isinstance(exc, (aiohttp.ClientError, TimeoutError, NoInstancesError))


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
