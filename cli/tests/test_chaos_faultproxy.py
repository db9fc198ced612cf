"""The chaos fault proxy on real sockets: pass, delay with jitter, blackhole, reset, control."""

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from mercato_cli.chaos.faultproxy import FaultProxy, FaultProxyHub, LinkFault


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, int]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(4096):
            writer.write(chunk)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield "127.0.0.1", server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def proxy(echo: tuple[str, int]) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy("test", echo, seed=7)
    await proxy.start()
    yield proxy
    await proxy.close()


async def round_trip(port: int, payload: bytes = b"ping") -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(payload)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    elapsed = time.monotonic() - started
    writer.close()
    return answer, elapsed


async def test_pass_carries_bytes_both_ways(proxy: FaultProxy) -> None:
    answer, _ = await round_trip(proxy.port, b"hello world")
    assert answer == b"hello world"
    assert proxy.connections_total == 1


async def test_delay_holds_each_direction_and_keeps_order(proxy: FaultProxy) -> None:
    proxy.set_fault(LinkFault("delay", delay_ms=150, jitter_ms=50))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    started = time.monotonic()
    for n in range(20):
        writer.write(f"{n:03d}".encode())
        await writer.drain()
    answer = await asyncio.wait_for(reader.readexactly(60), 5)
    elapsed = time.monotonic() - started
    writer.close()
    assert answer == b"".join(f"{n:03d}".encode() for n in range(20))  # jitter never reorders
    assert elapsed >= 2 * 0.100  # at least (delay - jitter) each way


async def test_blackhole_holds_bytes_until_healed_then_delivers_them(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"a")
    assert await asyncio.wait_for(reader.readexactly(1), 5) == b"a"
    proxy.set_fault(LinkFault("blackhole"))
    writer.write(b"bc")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(2), 0.5)
    # a new connection is accepted but goes nowhere while the link is cut
    _, other = await asyncio.open_connection("127.0.0.1", proxy.port)
    proxy.set_fault(LinkFault())
    assert await asyncio.wait_for(reader.readexactly(2), 5) == b"bc"
    writer.close()
    other.close()


async def test_reset_cuts_open_connections_and_refuses_new_ones(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"x")
    await reader.readexactly(1)
    proxy.set_fault(LinkFault("reset"))
    writer.write(b"y")
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(1), 5)
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await round_trip(proxy.port)
    proxy.set_fault(LinkFault())
    assert (await round_trip(proxy.port))[0] == b"ping"


async def test_an_unreachable_upstream_fails_the_client_connection() -> None:
    proxy = FaultProxy("dead", ("127.0.0.1", 1))
    await proxy.start()
    try:
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await round_trip(proxy.port)
    finally:
        await proxy.close()


def test_faults_are_validated() -> None:
    with pytest.raises(ValueError):
        LinkFault("nonsense")
    with pytest.raises(ValueError):
        LinkFault("delay", delay_ms=-1)


async def test_the_control_api_needs_the_token_and_sets_links(echo: tuple[str, int]) -> None:
    hub = FaultProxyHub.in_front_of(["orders", "payments"], echo, token="s3cret")
    await hub.start()
    try:
        async with aiohttp.ClientSession() as session:
            url = hub.control_url
            async with session.get(f"{url}/links") as answer:
                assert answer.status == 401
            auth = {"authorization": "Bearer s3cret"}
            body = {"mode": "delay", "delay_ms": 100}
            async with session.put(f"{url}/links/orders", json=body, headers=auth) as answer:
                assert answer.status == 200
            async with session.put(f"{url}/links/nope", json=body, headers=auth) as answer:
                assert answer.status == 404
            async with session.put(f"{url}/links", json={"mode": "x"}, headers=auth) as answer:
                assert answer.status == 400
            async with session.get(f"{url}/links", headers=auth) as answer:
                links = await answer.json()
        assert links["orders"]["fault"]["mode"] == "delay"
        assert links["payments"]["fault"]["mode"] == "pass"
        assert hub.describe()["links"]["orders"] == hub.links["orders"].url
        assert (await round_trip(hub.links["payments"].port))[0] == b"ping"
    finally:
        await hub.close()
