"""Checkout on `mercato up`: confirmed orders/s, place-order latency, time to CONFIRMED, and
CPU-seconds per confirmed order summed over every process of the platform.

Open model: orders arrive at a constant rate whatever the latency (no coordinated
omission). Time to CONFIRMED is the order's own `updated_at - created_at`, so measuring it
adds no polling load. One JSON line. Usage: python bench/checkout.py [rate/s] [seconds]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from chassis import free_port

RATE = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
DURATION = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
SHOPPERS = 20
MERCATO = [sys.executable, "-m", "mercato_cli"]


def status(data_dir: Path) -> list[dict[str, Any]]:
    out = subprocess.run([*MERCATO, "--data-dir", str(data_dir), "status", "--json"],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    rows: list[dict[str, Any]] = json.loads(out or "[]")
    return rows


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        port = free_port()
        env = {**os.environ, "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
               "GATEWAY_RATE_LIMIT_BURST": "100000", "MERCATO_LOG_LEVEL": "warning"}  # fmt: skip
        platform = subprocess.Popen([*MERCATO, "--data-dir", str(data_dir), "up", "--port", str(port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            while not (
                (rows := status(data_dir)) and len(rows) >= 8 and all(r["ready"] for r in rows)
            ):
                await asyncio.sleep(0.3)
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                while (
                    len(
                        (await client.get("/api/v1/products", params={"limit": 50})).json()["items"]
                    )
                    < 50
                ):
                    await asyncio.sleep(0.2)
                products = (await client.get("/api/v1/products", params={"limit": 50})).json()[
                    "items"
                ]
                shoppers = []
                for _ in range(SHOPPERS):
                    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
                    await client.post("/api/v1/auth/register",
                                      json={"email": email, "password": "benchmark passphrase", "name": "B"})  # fmt: skip
                    tokens = (await client.post("/api/v1/auth/token",
                              json={"email": email, "password": "benchmark passphrase"})).json()  # fmt: skip
                    shoppers.append({"Authorization": f"Bearer {tokens['access_token']}"})
                pids = [r["pid"] for r in status(data_dir)] + [
                    json.loads((data_dir / "run" / "state.json").read_text())["nats_pid"]
                ]
                latencies: list[float] = []
                placed: list[tuple[int, str]] = []

                async def place(n: int) -> None:
                    started = time.perf_counter()
                    answer = await client.post(
                        "/api/v1/orders",
                        json={"items": [{"product_id": products[n % len(products)]["id"], "quantity": 1}],
                              "payment_token": "tok_visa"},
                        headers={**shoppers[n % SHOPPERS], "Idempotency-Key": uuid.uuid4().hex},
                    )  # fmt: skip
                    if answer.status_code == 202:
                        latencies.append(time.perf_counter() - started)
                        placed.append((n, answer.json()["id"]))

                cpu_before = cpu_seconds(pids)
                wall = time.perf_counter()
                tasks = []
                for n in range(int(RATE * DURATION)):
                    tasks.append(asyncio.create_task(place(n)))
                    await asyncio.sleep(max(0.0, wall + (n + 1) / RATE - time.perf_counter()))
                await asyncio.gather(*tasks)
                # wait for the sagas to settle
                settle_deadline = time.perf_counter() + 60
                confirmed: list[float] = []
                while time.perf_counter() < settle_deadline:
                    orders = []
                    for n, order_id in placed:
                        orders.append(
                            (
                                await client.get(
                                    f"/api/v1/orders/{order_id}", headers=shoppers[n % SHOPPERS]
                                )
                            ).json()
                        )
                    if all(o["status"] != "PENDING" for o in orders):
                        break
                    await asyncio.sleep(1)
                elapsed = time.perf_counter() - wall
                cpu = cpu_seconds(pids) - cpu_before
                for order in orders:
                    if order["status"] == "CONFIRMED":
                        created = datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
                        updated = datetime.fromisoformat(order["updated_at"].replace("Z", "+00:00"))
                        confirmed.append((updated - created).total_seconds())
        finally:
            platform.send_signal(signal.SIGTERM)
            platform.wait(timeout=60)
    print(json.dumps({
        "benchmark": "checkout",
        "offered_rate_per_s": RATE,
        "duration_s": DURATION,
        "orders_placed": len(placed),
        "orders_confirmed": len(confirmed),
        "confirmed_per_s": round(len(confirmed) / DURATION, 2),
        "place_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "place_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "to_confirmed_p50_ms": round(statistics.median(confirmed) * 1000, 1),
        "to_confirmed_p99_ms": round(percentile(confirmed, 0.99) * 1000, 1),
        "cpu_seconds_per_confirmed_order": round(cpu / max(1, len(confirmed)), 4),
        "note": f"cpu measured over {elapsed:.0f}s including settling and status polling",
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
