"""What the chaos tooling knows of a running platform: read from its data dir, used over
the wire only (state file, HTTP APIs, signals to the processes the supervisor started)."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from typing import Any

import aiohttp

from chassis import InternalTokenCodec, Principal
from mercato_cli.datadir import DataDir


@dataclass(frozen=True)
class Process:
    service: str
    instance: str
    url: str
    pid: int


class PlatformGoneError(RuntimeError):
    pass


class Platform:
    """A running `mercato up`, found through its data dir (re-read on every question: the
    supervisor rewrites the state file whenever it restarts an instance)."""

    def __init__(self, data: DataDir) -> None:
        self.data = data
        self._codec = InternalTokenCodec(data.secret("internal_secret").encode())

    def state(self) -> dict[str, Any]:
        state = self.data.read_state()
        if state is None:
            raise PlatformGoneError(f"no platform is running on {self.data.root}")
        return state

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.state()['gateway_port']}"

    @property
    def broker_url(self) -> str:
        return str(self.state()["broker_url"])

    def processes(self, service: str | None = None) -> list[Process]:
        return [
            Process(i["service"], i["instance"], i["url"], int(i["pid"]))
            for i in self.state()["instances"]
            if i.get("pid") and (service is None or i["service"] == service)
        ]

    def url_of(self, service: str) -> str:
        found = self.processes(service)
        if not found:
            raise PlatformGoneError(f"no {service} instance")
        return found[0].url

    def nats_pid(self) -> int | None:
        pid = self.state().get("nats_pid")
        return int(pid) if pid else None

    def admin_password(self) -> str:
        return (self.data.root / "secrets" / "admin_password").read_text().strip()

    # -- the fault proxy (mercato up --fault-proxy) ----------------------------------------

    def fault_proxy(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.state().get("fault_proxy")
        return found

    async def set_link(self, session: aiohttp.ClientSession, link: str | None,
                       fault: dict[str, Any]) -> None:  # fmt: skip
        """Set one service's broker link (or every link, `link=None`)."""
        proxy = self.fault_proxy()
        if proxy is None:
            raise PlatformGoneError("the platform runs without the fault proxy")
        token = self.data.secret("fault_proxy_token")
        url = proxy["control_url"] + ("/links" if link is None else f"/links/{link}")
        headers = {"authorization": f"Bearer {token}"}
        async with session.put(url, json=fault, headers=headers) as answer:
            if answer.status != 200:
                raise RuntimeError(f"fault proxy answered {answer.status}: {await answer.text()}")

    # -- service admin APIs -----------------------------------------------------------------

    def admin_headers(self) -> dict[str, str]:
        """A fresh internal admin token (they live a minute: sign one per request)."""
        token = self._codec.issue(Principal("mercato-chaos", frozenset({"admin"})))
        return {"x-mercato-principal": token}

    async def set_psp_faults(self, session: aiohttp.ClientSession, knobs: dict[str, Any]) -> None:
        for process in self.processes("psp"):
            async with session.put(
                f"{process.url}/v1/_faults", json=knobs, headers=self.admin_headers()
            ) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"psp answered {answer.status} to its fault knobs")


def send_signal(pid: int, signum: signal.Signals) -> bool:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


async def wait_ready(data: DataDir, *, timeout: float, expected: int = 0) -> bool:
    """Every instance in the state file answers /readyz (and at least `expected` of them)."""
    from mercato_cli.status import instance_status

    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        rows = await instance_status(data)
        if rows and len(rows) >= expected and all(r["ready"] for r in rows):
            return True
        await asyncio.sleep(0.5)
    return False
