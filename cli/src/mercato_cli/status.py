"""`mercato status`: every running instance and whether it is ready."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from mercato_cli.datadir import DataDir


async def instance_status(data: DataDir) -> list[dict[str, Any]] | None:
    """`[{service, instance, url, pid, ready, live, checks}]`, or None when no platform runs
    on `data`. `live` is `/livez`; `checks` are `/readyz`'s named checks (`ok`/`failing`)."""
    state = data.read_state()
    if state is None:
        return None
    instances = state["instances"]
    timeout = aiohttp.ClientTimeout(total=2.0)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        probes = await asyncio.gather(*(probe(session, i["url"]) for i in instances))
    return [
        {
            "service": i["service"],
            "instance": i["instance"],
            "url": i["url"],
            "pid": i["pid"],
            "ready": found.ready,
            "live": found.live,
            "checks": found.checks,
        }
        for i, found in zip(instances, probes, strict=True)
    ]


@dataclass(frozen=True)
class Probe:
    live: bool
    ready: bool
    checks: dict[str, str]


async def probe(session: aiohttp.ClientSession, url: str) -> Probe:
    live = ready = False
    checks: dict[str, str] = {}
    try:
        async with session.get(f"{url}/livez") as response:
            live = response.status == 200
        async with session.get(f"{url}/readyz") as response:
            ready = response.status == 200
            body = await response.json(content_type=None)
            if isinstance(body, dict) and isinstance(body.get("checks"), dict):
                checks = {str(k): str(v) for k, v in body["checks"].items()}
    except (aiohttp.ClientError, TimeoutError, ValueError):
        pass
    return Probe(live, ready, checks)


async def is_ready(session: aiohttp.ClientSession, url: str) -> bool:
    """`/readyz` alone: what the supervisor polls while the platform starts."""
    try:
        async with session.get(f"{url}/readyz") as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def render_table(rows: list[dict[str, Any]]) -> str:
    header = ("SERVICE", "INSTANCE", "URL", "PID", "LIVE", "READY", "CHECKS")
    body = [
        (
            r["service"], r["instance"], r["url"], str(r["pid"]),
            "yes" if r.get("live") else "no", "yes" if r["ready"] else "no",
            " ".join(f"{name}:{state}" for name, state in sorted(r.get("checks", {}).items())),
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(len(row[c]) for row in [header, *body]) for c in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *body]
    )
