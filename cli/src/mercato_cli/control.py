"""The supervisor's control API: what the operations console asks of `mercato up`.

A small HTTP server on 127.0.0.1 (a free port), started before the instances so its URL can
be handed to them (`MERCATO_SUPERVISOR_URL`); the gateway's console uses it. Every call
needs `Authorization: Bearer <internal secret>` (the secret every instance already holds).

- `GET /instances`: each supervised instance, its pid, whether it runs, its restarts;
- `POST /instances/{instance_id}/kill`: SIGKILL that instance, as a crash would. Nothing
  else happens here: the supervisor's usual watch sees the process die and restarts it with
  its backoff, which is the point of the demonstration.

Errors are problem+json, like every other Mercato API.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import signal
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson
from aiohttp import web

from chassis import PROBLEM_MEDIA_TYPE, problem_body

__all__ = ["SupervisorControl"]


class _Spec(Protocol):
    @property
    def name(self) -> str: ...


class Supervised(Protocol):
    """What the control API needs of a supervised instance (`supervisor.Instance`)."""

    @property
    def spec(self) -> _Spec: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def restarts(self) -> int: ...
    @property
    def process(self) -> asyncio.subprocess.Process | None: ...


def _problem(status: int, detail: str, slug: str, path: str) -> web.Response:
    return web.Response(
        body=problem_body(status, detail=detail, slug=slug, instance=path),
        status=status,
        content_type=PROBLEM_MEDIA_TYPE,
    )


class SupervisorControl:
    def __init__(
        self,
        *,
        secret: str,
        instances: Callable[[], Sequence[Supervised]],
        event: Callable[..., None] = lambda *_, **__: None,
    ) -> None:
        self._secret = secret
        self._instances = instances
        self._event = event
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._authorize])
        app.router.add_get("/instances", self._list)
        app.router.add_post("/instances/{instance_id}/kill", self._kill)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        self._port = listener.getsockname()[1]
        await web.SockSite(self._runner, listener).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _authorize(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._secret.encode()
        ):
            return _problem(401, "the internal secret is required", "unauthenticated", request.path)
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as error:  # 404/405 from the router, as problem+json too
            slug = "not-found" if error.status == 404 else "method-not-allowed"
            return _problem(error.status, error.reason, slug, request.path)
        return response

    def _describe(self, instance: Supervised) -> dict[str, Any]:
        process = instance.process
        running = process is not None and process.returncode is None
        return {
            "service": instance.spec.name,
            "instance_id": instance.instance_id,
            "url": instance.url,
            "pid": process.pid if running and process else None,
            "running": running,
            "restarts": instance.restarts,
        }

    async def _list(self, _: web.Request) -> web.Response:
        items = [self._describe(instance) for instance in self._instances()]
        return web.Response(body=orjson.dumps({"items": items}), content_type="application/json")

    async def _kill(self, request: web.Request) -> web.Response:
        wanted = request.match_info["instance_id"]
        found = next((i for i in self._instances() if i.instance_id == wanted), None)
        if found is None:
            return _problem(404, f"no instance {wanted!r} here", "instance-not-found", request.path)
        process = found.process
        if process is None or process.returncode is not None:
            return _problem(
                409, f"{wanted} is not running (it is being restarted)", "not-running", request.path
            )
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        self._event("killed", target=wanted, pid=process.pid, by="console")
        body = {**self._describe(found), "signal": "SIGKILL", "pid": process.pid}
        return web.Response(body=orjson.dumps(body), status=202, content_type="application/json")
