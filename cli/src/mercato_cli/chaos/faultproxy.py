"""A userspace TCP fault proxy (in the spirit of Toxiproxy) for links to the broker.

This kernel has no `tc netem`, so network faults are made here, between a service and its
dependency: `mercato up --fault-proxy` starts one `FaultProxy` per service in front of
nats-server and hands each service its own link's URL (MERCATO_BROKER_URL and
MERCATO_REGISTRY_URL), so a link can be slowed or cut for one service while the others
carry on. A small HTTP control API (`FaultProxyHub`, 127.0.0.1 only, bearer token from the
data dir) sets each link's fault; `mercato chaos` drives it.

Faults, applied to the link's open connections and to new ones:

- `pass`: bytes flow as they come;
- `delay`: every chunk, in each direction, is held `delay_ms` ± `jitter_ms` (order kept);
- `blackhole`: nothing flows either way and new connections are accepted but not carried
  to the upstream, like a partition: TCP keeps the bytes, so when the link heals the held
  bytes arrive in order (the protocol stream stays intact) unless an end gave up meanwhile;
- `reset`: every connection is cut with a TCP RST (SO_LINGER 0), and new ones are reset as
  soon as they are accepted, for as long as the fault holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import random
import socket
import struct
import time
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

__all__ = ["MODES", "FaultProxy", "FaultProxyHub", "LinkFault"]

MODES = ("pass", "delay", "blackhole", "reset")
_CHUNK = 65536
_QUEUE = 64  # chunks held per direction before the reader stops reading (backpressure)


@dataclass(frozen=True)
class LinkFault:
    mode: str = "pass"
    delay_ms: float = 0.0
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown fault mode {self.mode!r} (known: {', '.join(MODES)})")
        if self.delay_ms < 0 or self.jitter_ms < 0 or self.delay_ms > 600_000:
            raise ValueError("delay_ms and jitter_ms are 0..600000")

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> LinkFault:
        return cls(
            mode=str(body.get("mode", "pass")),
            delay_ms=float(body.get("delay_ms", 0)),
            jitter_ms=float(body.get("jitter_ms", 0)),
        )


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Connection:
    def __init__(self, proxy: FaultProxy, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                _reset(writer)
        for task in self.tasks:
            task.cancel()

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None and not writer.is_closing():
                writer.close()


class FaultProxy:
    """Listens on 127.0.0.1 and carries each connection to `upstream`, with the fault set."""

    def __init__(
        self,
        name: str,
        upstream: tuple[str, int],
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        seed: int | None = None,
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.fault = LinkFault()
        self.connections_total = 0
        self._rng = random.Random(seed)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start the proxy first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"nats://{self.listen_host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, self.listen_port, reuse_address=True
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.reset()
        self._connections.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def set_fault(self, fault: LinkFault) -> None:
        self.fault = fault
        if fault.mode == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()
        if fault.mode == "reset":
            for connection in list(self._connections):
                connection.reset()

    def describe(self) -> dict[str, Any]:
        return {
            "listen": f"{self.listen_host}:{self.port}",
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "fault": asdict(self.fault),
            "open_connections": len(self._connections),
            "connections_total": self.connections_total,
        }

    def _delay(self) -> float:
        fault = self.fault
        if fault.mode != "delay":
            return 0.0
        jitter = self._rng.uniform(-fault.jitter_ms, fault.jitter_ms) if fault.jitter_ms else 0
        return max(0.0, fault.delay_ms + jitter) / 1000

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        connection = _Connection(self, writer)
        if self.fault.mode == "reset":
            _reset(writer)
            return
        self._connections.add(connection)
        try:
            await self._flowing.wait()  # a partitioned link does not reach the upstream
            if self.fault.mode == "reset":
                connection.reset()
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.upstream), 5
                )
            except (OSError, TimeoutError):
                _reset(writer)  # the upstream is down: the client sees its connection fail
                return
            connection.upstream = up_writer
            connection.tasks = [
                asyncio.create_task(self._pump(reader, up_writer)),
                asyncio.create_task(self._pump(up_reader, writer)),
            ]
            # When one direction ends, the other has nothing to talk to: end both.
            _, pending = await asyncio.wait(connection.tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            connection.close()
        except asyncio.CancelledError:
            connection.reset()
        finally:
            self._connections.discard(connection)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE)

        async def read() -> None:
            due = 0.0
            while True:
                try:
                    chunk = await reader.read(_CHUNK)
                except (ConnectionError, OSError):
                    chunk = b""
                # Due times never go backwards: jitter delays, it does not reorder.
                due = max(due, time.monotonic() + self._delay())
                await queue.put((due, chunk))
                if not chunk:
                    return

        async def write() -> None:
            while True:
                due, chunk = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._flowing.wait()
                if not chunk:
                    with contextlib.suppress(OSError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()

        reading = asyncio.create_task(read())
        try:
            await write()
        except (ConnectionError, OSError):
            pass
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)


class FaultProxyHub:
    """One `FaultProxy` per link name, and the HTTP control API that sets their faults.

    `GET /links` describes every link; `PUT /links/{name}` with `{"mode", "delay_ms",
    "jitter_ms"}` sets one (`PUT /links` with the same body sets all). Every call needs
    `Authorization: Bearer <token>`.
    """

    def __init__(self, links: dict[str, FaultProxy], *, token: str) -> None:
        self.links = links
        self._token = token
        self._runner: web.AppRunner | None = None
        self._site_port = 0

    @classmethod
    def in_front_of(
        cls, names: list[str], upstream: tuple[str, int], *, token: str
    ) -> FaultProxyHub:
        return cls({name: FaultProxy(name, upstream) for name in names}, token=token)

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self._site_port}"

    def url_for(self, name: str) -> str:
        return self.links[name].url

    async def start(self) -> None:
        for proxy in self.links.values():
            await proxy.start()
        app = web.Application()
        app.router.add_get("/links", self._list)
        app.router.add_put("/links", self._set_all)
        app.router.add_put("/links/{name}", self._set_one)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        self._site_port = listener.getsockname()[1]
        await web.SockSite(self._runner, listener).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for proxy in self.links.values():
            await proxy.close()

    def describe(self) -> dict[str, Any]:
        return {
            "control_url": self.control_url,
            "links": {name: proxy.url for name, proxy in self.links.items()},
        }

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token, self._token)

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"detail": "unauthorized"}, status=401)
        return web.json_response({n: p.describe() for n, p in self.links.items()})

    async def _parse(self, request: web.Request) -> LinkFault | web.Response:
        if not self._authorized(request):
            return web.json_response({"detail": "unauthorized"}, status=401)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise TypeError("a JSON object")
            return LinkFault.from_dict(body)
        except (ValueError, TypeError) as error:
            return web.json_response({"detail": str(error)}, status=400)

    async def _set_one(self, request: web.Request) -> web.Response:
        fault = await self._parse(request)
        if isinstance(fault, web.Response):
            return fault
        proxy = self.links.get(request.match_info["name"])
        if proxy is None:
            return web.json_response({"detail": "no such link"}, status=404)
        proxy.set_fault(fault)
        return web.json_response(proxy.describe())

    async def _set_all(self, request: web.Request) -> web.Response:
        fault = await self._parse(request)
        if isinstance(fault, web.Response):
            return fault
        for proxy in self.links.values():
            proxy.set_fault(fault)
        return web.json_response({n: p.describe() for n, p in self.links.items()})
