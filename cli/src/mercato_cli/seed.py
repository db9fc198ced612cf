"""Demo data: a catalog of realistic products, loaded through the services' own APIs."""

from __future__ import annotations

import asyncio
from importlib.resources import files
from typing import Any

import aiohttp
import orjson

from chassis import InternalTokenCodec, Principal


def demo_products() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = orjson.loads(
        files("mercato_cli").joinpath("demo_catalog.json").read_bytes()
    )
    return data


async def seed_platform(*, catalog_url: str, secret: str, only_if_empty: bool) -> int:
    """Create the demo products that are missing; returns how many were created.

    Goes through catalog's admin API as the platform's seeding operator, so the usual
    validation (and, once messaging exists, the usual events) applies.
    """
    token = InternalTokenCodec(secret.encode()).issue(
        Principal("mercato-seed", frozenset({"admin"}))
    )
    headers = {"x-mercato-principal": token}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        if only_if_empty:
            async with session.get(f"{catalog_url}/api/v1/products", params={"limit": "1"}) as r:
                r.raise_for_status()
                if (await r.json())["items"]:
                    return 0
        outcomes = await asyncio.gather(
            *(_create(session, catalog_url, product) for product in demo_products())
        )
    return sum(outcomes)


async def _create(session: aiohttp.ClientSession, url: str, product: dict[str, Any]) -> int:
    async with session.post(f"{url}/api/v1/products", json=product) as response:
        if response.status == 201:
            return 1
        if response.status == 409:  # already there from an earlier seed
            return 0
        raise RuntimeError(f"catalog refused {product['sku']}: HTTP {response.status}")
