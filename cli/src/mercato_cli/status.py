"""`mercato status`: every running instance and whether it is ready."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from mercato_cli.datadir import DataDir


async def instance_status(data: DataDir) -> list[dict[str, Any]] | None:
    """`[{service, instance, url, pid, ready}]`, or None when no platform runs on `data`."""
    state = data.read_state()
    if state is None:
        return None
    instances = state["instances"]
    timeout = aiohttp.ClientTimeout(total=2.0)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        ready = await asyncio.gather(*(is_ready(session, i["url"]) for i in instances))
    return [
        {
            "service": i["service"],
            "instance": i["instance"],
            "url": i["url"],
            "pid": i["pid"],
            "ready": is_ready,
        }
        for i, is_ready in zip(instances, ready, strict=True)
    ]


async def is_ready(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(f"{url}/readyz") as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def render_table(rows: list[dict[str, Any]]) -> str:
    header = ("SERVICE", "INSTANCE", "URL", "PID", "READY")
    body = [
        (r["service"], r["instance"], r["url"], str(r["pid"]), "yes" if r["ready"] else "no")
        for r in rows
    ]
    widths = [max(len(row[c]) for row in [header, *body]) for c in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *body]
    )
