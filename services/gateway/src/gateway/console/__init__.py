"""The operations console's back end: what the gateway gathers for `/console`.

    api.py           the admin-only JSON API under /api/v1/console (the route table is there)
    sampler.py       scrapes every instance's /readyz and /metrics, lazily, every few seconds
    readings.py      a /metrics text down to the console's numbers
    history.py       the ring of snapshots, and rates and p99s from their differences
    traces.py        the span files: trace lists, waterfalls, call edges, saga → trace
    topology.py      who calls whom: from traces, else as designed
    dead_letters.py  the broker's dead letters, with replay
    supervisor.py    `mercato up`'s control API (kill an instance)

The page itself is plain files under `gateway/web/console/`, served by `gateway.sites`.
"""

from __future__ import annotations

from chassis.discovery import Registry
from chassis.http import ServiceClient
from gateway.console.api import PREFIX, ConsoleApi
from gateway.console.dead_letters import DeadLetters
from gateway.console.sampler import Sampler
from gateway.console.supervisor import SupervisorClient
from gateway.console.traces import TraceIndex
from gateway.edge import Edge
from gateway.settings import GatewaySettings

__all__ = ["PREFIX", "ConsoleApi", "build_console"]


def build_console(
    settings: GatewaySettings,
    *,
    registry: Registry,
    client: ServiceClient,
    edge: Edge,
    sampler: Sampler | None = None,
) -> ConsoleApi:
    """The console's API, sharing the edge's token verifier, rate limits and internal
    tokens (an admin is the same caller here as on the public API)."""
    return ConsoleApi(
        registry=registry,
        client=client,
        verifier=edge.verifier,
        limiter=edge.limiter,
        internal_tokens=edge.internal_tokens,
        sampler=sampler or Sampler(registry),
        traces=TraceIndex(settings.trace_dir) if settings.trace_dir else None,
        dead_letters=DeadLetters.on_broker(settings.broker_url),
        supervisor=SupervisorClient(
            settings.supervisor_url, secret=settings.internal_secret.get_secret_value()
        ),
        instance_id=settings.instance_id,
    )
