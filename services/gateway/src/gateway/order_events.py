"""`GET /api/v1/orders/{id}/events`: an order's progress as Server-Sent Events.

The checkout saga settles an order a moment after it is placed; a page showing the order
should see that without reloading. The orders service publishes its changes on the broker,
but a browser is not a broker consumer, and the gateway holds no state: so the gateway polls
the composed order (the same document, and the same authorization, as
`GET /api/v1/orders/{id}`) on behalf of one client and streams each change:

    retry: 1000

    event: order
    data: {"id": "…", "status": "PENDING", …, "payment": null}

    event: order
    data: {"id": "…", "status": "CONFIRMED", …, "payment": {"status": "captured", …}}

The first event is the order as it is now, so a client that reconnects misses nothing. Polls
start fast (the saga takes a few hundred milliseconds) and back off while nothing changes.
The stream ends when the order is settled (see `settled`), or after `max_duration`, when the
client reconnects (with a fresh access token): a stream never outlives its caller's rights
by more than that. Comments (`: keep-alive`) keep idle connections open through proxies.
The body is read with `fetch()` rather than `EventSource`, which cannot send an
`Authorization` header.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

# The order as the gateway composes it, or None when it cannot be told this time (a service
# briefly unavailable): the stream keeps the last state and asks again later.
OrderFetcher = Callable[[], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class EventStreamPolicy:
    first_poll: float = 0.15  # seconds until the first poll, and after each change
    max_poll: float = 2.0  # polls slow down to this while nothing changes
    growth: float = 1.5
    heartbeat: float = 15.0  # a comment line after this long without writing
    max_duration: float = 60.0  # then the stream ends and the client reconnects
    reconnect_ms: int = 1000  # the `retry:` advice to clients


# A payment still on its way: authorized but not yet captured (the saga captures just after
# confirming) or voided, or still waiting for the provider.
_PAYMENT_IN_FLIGHT = frozenset({"pending", "pending_unknown", "authorized"})


def settled(order: Mapping[str, Any]) -> bool:
    """Nothing more happens to the order unless its owner acts: it left PENDING, no
    cancellation is being carried out (a CONFIRMED order being cancelled moves again), and
    its payment (when payments could say) is not midway either."""
    payment = order.get("payment")
    return (
        order.get("status") != "PENDING"
        and order.get("cancellation") != "requested"
        and not (isinstance(payment, Mapping) and payment.get("status") in _PAYMENT_IN_FLIGHT)
    )


def _event(order: Mapping[str, Any]) -> bytes:
    return b"event: order\ndata: " + orjson.dumps(order) + b"\n\n"


async def stream_order(
    request: web.Request,
    first: dict[str, Any],
    fetch: OrderFetcher,
    *,
    policy: EventStreamPolicy,
    headers: Mapping[str, str],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            **headers,
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # tell nginx-style proxies not to buffer the stream
        }
    )
    await response.prepare(request)
    started = last_write = clock()
    current, interval = first, policy.first_poll
    try:
        await response.write(f"retry: {policy.reconnect_ms}\n\n".encode() + _event(first))
        sent = orjson.dumps(first)
        while not settled(current) and clock() - started < policy.max_duration:
            if request.transport is None or request.transport.is_closing():
                return response  # the client left
            await sleep(interval)
            found = await fetch()
            if found is not None and (body := orjson.dumps(found)) != sent:
                await response.write(_event(found))
                current, sent, interval, last_write = found, body, policy.first_poll, clock()
                continue
            interval = min(interval * policy.growth, policy.max_poll)
            if clock() - last_write >= policy.heartbeat:
                await response.write(b": keep-alive\n\n")
                last_write = clock()
        await response.write_eof()
    except ConnectionResetError:  # the client left while we wrote
        pass
    return response
