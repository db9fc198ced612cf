"""The supervisor's control API on a real port, in front of real processes: who may ask,
what it lists, and a kill that is a real SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession

from mercato_cli.control import SupervisorControl
from mercato_cli.supervisor import Instance
from mercato_cli.topology import SERVICES_BY_NAME

SECRET = "control-test-secret"


@pytest.fixture
async def sleeper() -> AsyncIterator[Instance]:
    """An instance of `notifications` whose process only sleeps (bounded to a minute)."""
    instance = Instance(SERVICES_BY_NAME["notifications"], 1, port=12345, restarts=3)
    instance.process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)"
    )
    try:
        yield instance
    finally:
        if instance.process.returncode is None:
            instance.process.kill()
        await instance.process.wait()


@pytest.fixture
async def control(sleeper: Instance) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []
    server = SupervisorControl(
        secret=SECRET,
        instances=lambda: [sleeper],
        event=lambda name, **fields: events.append({"event": name, **fields}),
    )
    await server.start()
    try:
        yield server.url, events
    finally:
        await server.close()


async def call(url: str, method: str, path: str, token: str | None = SECRET) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    async with ClientSession() as http, http.request(method, url + path, headers=headers) as r:
        return r.status, orjson.loads(await r.read())


async def test_only_the_holder_of_the_internal_secret_is_answered(
    control: tuple[str, list[dict[str, Any]]], sleeper: Instance
) -> None:
    url, _ = control
    assert url.startswith("http://127.0.0.1:")
    for token in (None, "wrong", SECRET + "x", ""):
        for method, path in (("GET", "/instances"), ("POST", "/instances/notifications-1/kill"),
                             ("GET", "/nowhere")):  # fmt: skip
            status, body = await call(url, method, path, token)
            assert status == 401 and body["type"] == "/problems/unauthenticated"
    assert sleeper.process is not None and sleeper.process.returncode is None


async def test_it_lists_the_instances_it_runs(
    control: tuple[str, list[dict[str, Any]]], sleeper: Instance
) -> None:
    url, _ = control
    status, body = await call(url, "GET", "/instances")
    assert status == 200
    assert sleeper.process is not None
    assert body == {"items": [{
        "service": "notifications", "instance_id": "notifications-1",
        "url": "http://127.0.0.1:12345", "pid": sleeper.process.pid, "running": True,
        "restarts": 3,
    }]}  # fmt: skip
    status, body = await call(url, "GET", "/nowhere")
    assert status == 404 and body["status"] == 404


async def test_a_kill_is_a_sigkill_and_said_once(
    control: tuple[str, list[dict[str, Any]]], sleeper: Instance
) -> None:
    url, events = control
    assert sleeper.process is not None
    pid = sleeper.process.pid
    status, body = await call(url, "POST", "/instances/notifications-1/kill")
    assert status == 202
    assert (body["instance_id"], body["pid"], body["signal"]) == ("notifications-1", pid, "SIGKILL")
    assert await asyncio.wait_for(sleeper.process.wait(), 10) == -signal.SIGKILL
    assert events == [{"event": "killed", "target": "notifications-1", "pid": pid, "by": "console"}]

    status, body = await call(url, "POST", "/instances/notifications-1/kill")
    assert status == 409 and body["type"] == "/problems/not-running"
    status, body = await call(url, "POST", "/instances/orders-1/kill")
    assert status == 404 and body["detail"] == "no instance 'orders-1' here"
