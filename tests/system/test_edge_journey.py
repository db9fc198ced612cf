"""Issue 3's journey through the gateway on a running `mercato up`: identity, catalog,
roles, and scale-out of catalog with an instance killed under load."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chassis import free_port

pytestmark = [pytest.mark.system, pytest.mark.slow]

MERCATO = [sys.executable, "-m", "mercato_cli"]


def status(data_dir: Path) -> list[dict[str, Any]]:
    result = subprocess.run([*MERCATO, "--data-dir", str(data_dir), "status", "--json"],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    rows: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return rows


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("edge") / "data"
    port = free_port()
    process = subprocess.Popen(
        [*MERCATO, "--data-dir", str(data_dir), "up", "--port", str(port),
         "--replicas", "catalog=3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # the load below comes from one address and would rightly be rate-limited
        env={**os.environ, "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
             "GATEWAY_RATE_LIMIT_BURST": "100000"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = status(data_dir)
            if rows and all(r["ready"] for r in rows) and len(rows) >= 5:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("platform not ready")
        base = f"http://127.0.0.1:{port}"
        # wait for the demo catalog through the gateway
        for _ in range(100):
            r = httpx.get(f"{base}/api/v1/products", params={"limit": 100})
            if r.status_code == 200 and len(r.json()["items"]) >= 50:
                break
            time.sleep(0.2)
        yield base, data_dir
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def admin_credentials(data_dir: Path) -> tuple[str, str]:
    password = (data_dir / "secrets" / "admin_password").read_text().strip()
    return "admin@mercato.local", password


def login(base: str, email: str, password: str) -> dict[str, Any]:
    answer = httpx.post(f"{base}/api/v1/auth/token", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def test_register_login_refresh_me_and_roles(platform: tuple[str, Path]) -> None:
    base, data_dir = platform
    email = f"shopper-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    registered = httpx.post(f"{base}/api/v1/auth/register",
                            json={"email": email, "password": password, "name": "Ada"})  # fmt: skip
    assert registered.status_code == 201, registered.text
    assert "password" not in registered.text

    tokens = login(base, email, password)
    assert tokens["token_type"] == "Bearer"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = httpx.get(f"{base}/api/v1/users/me", headers=bearer)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email
    assert me.json()["roles"] == ["customer"]

    refreshed = httpx.post(
        f"{base}/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    reused = httpx.post(
        f"{base}/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert reused.status_code == 401

    products = httpx.get(f"{base}/api/v1/products", params={"limit": 5}).json()["items"]
    one = httpx.get(f"{base}/api/v1/products/{products[0]['id']}")
    assert one.status_code == 200 and "availability" in one.json()

    new_product = {"sku": f"NEW-{uuid.uuid4().hex[:6]}", "name": "Gateway Mug", "category": "kitchen",
                   "price": {"amount": 1999, "currency": "EUR"}}  # fmt: skip
    refused = httpx.post(f"{base}/api/v1/products", json=new_product, headers=bearer)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"

    admin = login(base, *admin_credentials(data_dir))
    created = httpx.post(f"{base}/api/v1/products", json=new_product,
                         headers={"Authorization": f"Bearer {admin['access_token']}"})  # fmt: skip
    assert created.status_code == 201, created.text

    anonymous = httpx.post(f"{base}/api/v1/products", json=new_product)
    assert anonymous.status_code == 401


def catalog_hits(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("mercato_http_requests_total{") and 'route="/api/v1/products"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_requests_spread_over_replicas_and_survive_a_kill(platform: tuple[str, Path]) -> None:
    base, data_dir = platform
    catalogs = [r for r in status(data_dir) if r["service"] == "catalog"]
    assert len(catalogs) == 3
    before = {r["instance"]: catalog_hits(r["url"]) for r in catalogs}

    async def hammer(count: int, concurrency: int) -> list[int]:
        codes: list[int] = []
        async with httpx.AsyncClient(timeout=10) as client:
            queue = iter(range(count))

            async def worker() -> None:
                for _ in queue:
                    r = await client.get(f"{base}/api/v1/products", params={"limit": 2})
                    codes.append(r.status_code)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return codes

    codes = asyncio.run(hammer(300, 6))
    assert codes.count(200) == 300, sorted(set(codes))
    after = {r["instance"]: catalog_hits(r["url"]) for r in catalogs}
    spread = {name: after[name] - before[name] for name in before}
    assert all(hits >= 30 for hits in spread.values()), spread

    victim = catalogs[0]

    async def kill_during_load() -> list[int]:
        load = asyncio.create_task(hammer(600, 6))
        await asyncio.sleep(0.5)
        os.kill(victim["pid"], signal.SIGKILL)
        return await load

    codes = asyncio.run(kill_during_load())
    server_errors = [c for c in codes if c >= 500]
    # At most the requests in flight at the kill may fail (they are GETs, and are retried).
    assert len(server_errors) <= 6, server_errors
    assert codes.count(200) >= 594
