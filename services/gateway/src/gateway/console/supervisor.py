"""The supervisor of `mercato up`, as the console reaches it.

`mercato up` hands every instance the URL of its control API (`MERCATO_SUPERVISOR_URL`,
see `mercato_cli.control`), which takes the platform's internal secret as a bearer token.
Where nothing supervises the processes that way (Kubernetes restarts pods itself) the URL
is empty, and the console shows "kill an instance" as unavailable.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from chassis.errors import ConflictError, NotFoundError
from gateway.console.errors import NotAvailableHereError, UpstreamUnavailableError

__all__ = ["SupervisorClient"]


class SupervisorClient:
    def __init__(self, url: str, *, secret: str) -> None:
        self.url = url.rstrip("/")
        self._secret = secret

    @property
    def available(self) -> bool:
        return bool(self.url)

    async def instances(self, session: aiohttp.ClientSession) -> dict[str, dict[str, Any]]:
        """What the supervisor knows of each instance (pid, running, restarts), by id; empty
        when there is no supervisor or it does not answer (the map still shows the rest)."""
        if not self.available:
            return {}
        try:
            status, body = await self._call(session, "GET", "/instances")
        except UpstreamUnavailableError:
            return {}
        if status != 200 or not isinstance(body, dict):
            return {}
        return {str(item["instance_id"]): item for item in body.get("items", [])}

    async def kill(self, session: aiohttp.ClientSession, instance_id: str) -> dict[str, Any]:
        if not self.available:
            raise NotAvailableHereError(
                "No supervisor runs these processes (MERCATO_SUPERVISOR_URL is not set): "
                "restart pods with kubectl instead."
            )
        status, body = await self._call(session, "POST", f"/instances/{instance_id}/kill")
        detail = body.get("detail", "") if isinstance(body, dict) else ""
        if status == 404:
            raise NotFoundError(detail or f"the supervisor runs no instance {instance_id}")
        if status == 409:
            raise ConflictError(detail or f"{instance_id} is not running")
        if status != 202 or not isinstance(body, dict):
            raise UpstreamUnavailableError(f"the supervisor answered HTTP {status}")
        return body

    async def _call(
        self, session: aiohttp.ClientSession, method: str, path: str
    ) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {self._secret}"}
        try:
            async with session.request(method, self.url + path, headers=headers) as answer:
                raw = await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise UpstreamUnavailableError(
                f"the supervisor does not answer ({type(error).__name__})"
            ) from None
        try:
            return status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return status, None
