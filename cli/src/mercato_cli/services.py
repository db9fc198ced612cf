"""`mercato services`: what the service registry knows, instance by instance."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chassis.discovery import NatsKvRegistry, ServiceInstance


async def registered_instances(broker_url: str) -> list[ServiceInstance]:
    registry = NatsKvRegistry(broker_url, start_timeout=5.0)
    await registry.start()
    try:
        return sorted(await registry.all_instances(), key=lambda i: (i.service, i.instance_id))
    finally:
        await registry.close(deregister=False)


def _ago(moment: datetime, now: datetime) -> str:
    seconds = max(0.0, (now - moment).total_seconds())
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def as_rows(instances: list[ServiceInstance], now: datetime | None = None) -> list[dict[str, Any]]:
    moment = now or datetime.now(UTC)
    return [
        {
            "service": i.service,
            "instance": i.instance_id,
            "url": i.url,
            "version": i.version,
            "age": _ago(i.started_at, moment),
            "last_heartbeat": _ago(i.last_heartbeat, moment) + " ago",
        }
        for i in instances
    ]


def render(rows: list[dict[str, Any]]) -> str:
    header = {"service": "SERVICE", "instance": "INSTANCE", "url": "URL", "version": "VERSION",
              "age": "AGE", "last_heartbeat": "LAST HEARTBEAT"}  # fmt: skip
    table = [header, *rows]
    widths = {key: max(len(str(row[key])) for row in table) for key in header}
    return "\n".join(
        "  ".join(str(row[key]).ljust(widths[key]) for key in header).rstrip() for row in table
    )
