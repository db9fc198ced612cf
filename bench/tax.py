"""The architecture tax: the same checkout on the monolith baseline (bench/monolith: one
process, one SQLite database, the same domain rules, the same psp) and on `mercato up` (eight
services, NATS, a database each), on this machine, in the same run.

Closed loop: N shoppers, each placing an order (one line, `tok_visa`) and polling it (after
50 ms, backing off to 500 ms) until it is settled, then the next: the same journey through
the same public paths on both. Sign-up and sign-in (argon2id, the same parameters on both) happen
before the measured window, for both. A round runs one system alone: start it, warm up,
measure confirmed orders/s over the window and CPU-seconds per confirmed order (utime +
stime over every process of the system under test, from /proc: the monolith and its psp;
`mercato up`'s supervisor, nats-server and every service, psp included), audit it, stop it.
Rounds alternate monolith, micro, monolith, micro; the best round of each counts (noise on
a shared machine only ever slows a run down).

One JSON line: {"benchmark": "tax", ..., "ratio": micro orders/s ÷ monolith orders/s}.
Usage: python bench/tax.py [--shoppers N] [--seconds S] [--warmup S] [--rounds R]
"""

from __future__ import annotations

import argparse
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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from chassis import free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO_CATALOG = ROOT / "cli" / "src" / "mercato_cli" / "demo_catalog.json"
MERCATO = [sys.executable, "-m", "mercato_cli"]
PASSWORD = "benchmark passphrase"  # noqa: S105  (bench users only)
# Looks at a PENDING order: after 50 ms, then 1.5x longer each time, at most 500 ms apart
# (a storefront's polling; a fixed short interval would measure mostly the polling).
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.05, 1.5, 0.5
STOCK = 1_000_000  # units per product: no order of a run is ever out of stock
MAX_PENDING = "20"  # orders one user may have PENDING, on both (the orders service's default)


def say(message: str) -> None:
    """Progress, on stderr: stdout carries the one JSON line."""
    print(f"tax: {message}", file=sys.stderr, flush=True)


# -- processes ------------------------------------------------------------------------------


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(roots: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in {p for root in roots for p in descendants(root)}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def wait_until(check: Callable[[], Any], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except (aiohttp.ClientError, OSError, ValueError, KeyError):
            pass
        await asyncio.sleep(0.3)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s")


# -- the two systems ------------------------------------------------------------------------


@dataclass
class System:
    name: str
    base: str
    roots: list[int]  # the processes whose CPU counts (with their descendants)
    processes: list[subprocess.Popen[bytes]]
    audit: Callable[[aiohttp.ClientSession], Any]

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop(process)


async def start_monolith(folder: Path, session: aiohttp.ClientSession) -> System:
    psp_port, port = free_port(), free_port()
    base_env = {**os.environ, "MERCATO_LOG_LEVEL": "warning"}
    # The psp exactly as `mercato up` runs it (own database, spans to files), so that the
    # one component both systems share costs the same in both.
    psp = subprocess.Popen(
        [sys.executable, "-m", "psp"],
        env={**base_env, "MERCATO_DATA_DIR": str(folder / "psp"), "PSP_PORT": str(psp_port),
             "MERCATO_TRACE_DIR": str(folder / "traces")},
        stdout=subprocess.DEVNULL, stderr=(folder / "psp.log").open("ab"),
    )  # fmt: skip
    monolith = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "monolith" / "shop.py")],
        env={**base_env, "MONOLITH_PORT": str(port), "MONOLITH_DATA_DIR": str(folder / "monolith"),
             "MONOLITH_PSP_URL": f"http://127.0.0.1:{psp_port}", "MONOLITH_SEED_FILE": str(DEMO_CATALOG),
             "MONOLITH_INITIAL_STOCK": str(STOCK), "MONOLITH_MAX_PENDING": MAX_PENDING},
        stdout=subprocess.DEVNULL, stderr=(folder / "monolith.log").open("ab"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        for url in (f"http://127.0.0.1:{psp_port}/readyz", f"{base}/readyz"):
            async with session.get(url) as answer:
                if answer.status != 200:
                    return False
        return True

    async def audit(client: aiohttp.ClientSession) -> dict[str, Any]:
        admin = await sign_in(client, base, "admin@mercato.local", "mercato-dev-admin-password")
        deadline = time.monotonic() + 60
        while True:
            async with client.get(f"{base}/internal/audit", headers=admin) as answer:
                report: dict[str, Any] = await answer.json()
            if not report["unsettled"] or time.monotonic() > deadline:
                return report
            await asyncio.sleep(0.5)

    system = System("monolith", base, [monolith.pid, psp.pid], [psp, monolith], audit)
    try:
        await wait_until(ready, timeout=120, what="monolith")
    except BaseException:
        system.stop()
        raise
    return system


def mercato(data_dir: Path, *args: str, timeout: float = 120) -> str:
    return subprocess.run([*MERCATO, "--data-dir", str(data_dir), *args], capture_output=True,
                          text=True, timeout=timeout, check=False).stdout  # fmt: skip


async def start_micro(folder: Path, session: aiohttp.ClientSession) -> System:
    data_dir = folder / "data"
    port = free_port()
    env = {**os.environ, "GATEWAY_RATE_LIMIT_PER_SECOND": "100000", "GATEWAY_RATE_LIMIT_BURST": "100000",
           "MERCATO_LOG_LEVEL": "warning", "INVENTORY_INITIAL_STOCK": str(STOCK),
           "ORDERS_MAX_PENDING_ORDERS": MAX_PENDING}  # fmt: skip
    platform = subprocess.Popen([*MERCATO, "--data-dir", str(data_dir), "up", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        out = await asyncio.to_thread(mercato, data_dir, "status", "--json")
        rows = json.loads(out or "[]")
        if len(rows) < 8 or not all(r["ready"] for r in rows):
            return False
        async with session.get(f"{base}/api/v1/products", params={"limit": "50"}) as answer:
            return answer.status == 200 and len((await answer.json())["items"]) >= 50

    async def audit(_: aiohttp.ClientSession) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            report: dict[str, Any] = json.loads(
                await asyncio.to_thread(mercato, data_dir, "check", "--json") or '{"violations": ["no answer"]}'
            )  # fmt: skip
            if not report.get("violations") or time.monotonic() > deadline:
                return report
            await asyncio.sleep(1)

    system = System("micro", base, [platform.pid], [platform], audit)
    try:
        await wait_until(ready, timeout=180, what="mercato up")
    except BaseException:
        system.stop()
        raise
    return system


# -- the journey ----------------------------------------------------------------------------


async def sign_in(
    client: aiohttp.ClientSession, base: str, email: str, password: str
) -> dict[str, str]:
    async with client.post(
        f"{base}/api/v1/auth/token", json={"email": email, "password": password}
    ) as answer:
        answer.raise_for_status()
        return {"Authorization": f"Bearer {(await answer.json())['access_token']}"}


async def shoppers(client: aiohttp.ClientSession, base: str, count: int) -> list[dict[str, str]]:
    async def one() -> dict[str, str]:
        email = f"tax-{uuid.uuid4().hex[:12]}@example.com"
        body = {"email": email, "password": PASSWORD, "name": "Shopper"}
        async with client.post(f"{base}/api/v1/auth/register", json=body) as answer:
            answer.raise_for_status()
        return await sign_in(client, base, email, PASSWORD)

    return list(await asyncio.gather(*(one() for _ in range(count))))


@dataclass
class Journey:
    done_at: float
    status: str  # CONFIRMED, REJECTED, or the HTTP failure
    seconds: float
    polls: int


@dataclass
class Load:
    journeys: list[Journey] = field(default_factory=list)
    stop_at: float = float("inf")


async def shop(client: aiohttp.ClientSession, base: str, auth: dict[str, str], products: list[str],
               load: Load, offset: int) -> None:  # fmt: skip
    n = offset
    while time.monotonic() < load.stop_at:
        n += 1
        started = time.monotonic()
        body = {
            "items": [{"product_id": products[n % len(products)], "quantity": 1}],
            "payment_token": "tok_visa",
        }
        headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
        polls = 0
        try:
            async with client.post(f"{base}/api/v1/orders", json=body, headers=headers) as answer:
                if answer.status != 202:
                    load.journeys.append(Journey(time.monotonic(), f"http_{answer.status}", 0, 0))
                    # As a storefront would: honour Retry-After (load shedding), at most 1 s.
                    retry_after = answer.headers.get("retry-after", "")
                    await asyncio.sleep(
                        min(1.0, float(retry_after)) if retry_after.isdigit() else 0.2
                    )
                    continue
                order_id = (await answer.json())["id"]
            status, pause = "PENDING", POLL_FIRST
            while status == "PENDING" and time.monotonic() - started < 60:
                await asyncio.sleep(pause)
                pause = min(pause * POLL_GROWTH, POLL_MAX)
                polls += 1
                async with client.get(f"{base}/api/v1/orders/{order_id}", headers=auth) as answer:
                    if answer.status == 200:
                        order = await answer.json()
                        status = order["status"]
                        if status == "REJECTED":
                            status = f"REJECTED ({order.get('reason')})"
        except (aiohttp.ClientError, TimeoutError) as error:
            status = type(error).__name__
            await asyncio.sleep(0.2)
        load.journeys.append(Journey(time.monotonic(), status, time.monotonic() - started, polls))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")
    )


async def measure(
    system: System, session: aiohttp.ClientSession, args: argparse.Namespace
) -> dict[str, Any]:
    async with session.get(f"{system.base}/api/v1/products", params={"limit": "50"}) as answer:
        products = [p["id"] for p in (await answer.json())["items"]]
    began = time.monotonic()
    auths = await shoppers(session, system.base, args.shoppers)
    say(f"{system.name}: {len(auths)} shoppers signed up and in, {time.monotonic() - began:.0f}s")
    load = Load()
    workers = [asyncio.create_task(shop(session, system.base, auth, products, load, i * 7))
               for i, auth in enumerate(auths)]  # fmt: skip
    await asyncio.sleep(args.warmup)
    start, cpu_start = time.monotonic(), cpu_seconds(system.roots)
    await asyncio.sleep(args.seconds)
    end, cpu_end = time.monotonic(), cpu_seconds(system.roots)
    load.stop_at = end
    for worker in workers:  # journeys still going count for no window: don't wait for them
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    window = [j for j in load.journeys if start <= j.done_at < end]
    confirmed = [j for j in window if j.status == "CONFIRMED"]
    began = time.monotonic()
    audit = await system.audit(session)
    say(f"{system.name}: audited in {time.monotonic() - began:.0f}s")
    cpu = cpu_end - cpu_start
    return {
        "system": system.name,
        "orders_per_s": round(len(confirmed) / (end - start), 2),
        "cpu_s_per_order": round(cpu / max(1, len(confirmed)), 5),
        "cpu_cores_busy": round(cpu / (end - start), 2),
        "confirmed": len(confirmed),
        "not_confirmed": dict(Counter(j.status for j in window if j.status != "CONFIRMED")),
        "journey_p50_ms": round(statistics.median([j.seconds for j in confirmed]) * 1000, 1) if confirmed else None,
        "journey_p99_ms": round(percentile([j.seconds for j in confirmed], 0.99) * 1000, 1) if confirmed else None,
        "polls_per_order": round(statistics.mean([j.polls for j in confirmed]), 2) if confirmed else None,
        "audit_violations": len(audit.get("violations", [])),
        "processes": len({p for root in system.roots for p in descendants(root)}),
    }  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shoppers", type=int, default=24, help="concurrent shoppers (closed loop)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per round")
    parser.add_argument(
        "--warmup", type=float, default=4.0, help="seconds of load before the window"
    )
    parser.add_argument("--rounds", type=int, default=2, help="monolith+micro pairs, alternated")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop what was started, then exit
    rounds: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        for _ in range(args.rounds):
            for start in (start_monolith, start_micro):
                with tempfile.TemporaryDirectory(prefix="mercato-tax-") as folder:
                    began = time.monotonic()
                    system = await start(Path(folder), session)
                    say(f"{system.name} up in {time.monotonic() - began:.0f}s")
                    try:
                        rounds.append(await measure(system, session, args))
                        say(f"{system.name}: {rounds[-1]}")
                    finally:
                        began = time.monotonic()
                        await asyncio.to_thread(system.stop)
                        say(f"{system.name} stopped in {time.monotonic() - began:.0f}s")
    mono = [r for r in rounds if r["system"] == "monolith"]
    micro = [r for r in rounds if r["system"] == "micro"]
    mono_rate, micro_rate = (
        max(r["orders_per_s"] for r in mono),
        max(r["orders_per_s"] for r in micro),
    )
    mono_cpu, micro_cpu = (
        min(r["cpu_s_per_order"] for r in mono),
        min(r["cpu_s_per_order"] for r in micro),
    )
    print(json.dumps({
        "benchmark": "tax",
        "journey": "place order (1 line, tok_visa), poll until settled (50 ms backing off x1.5 to 500 ms); sign-in before the window",
        "shoppers": args.shoppers,
        "window_s": args.seconds,
        "monolith_orders_per_s": mono_rate,
        "micro_orders_per_s": micro_rate,
        "monolith_cpu_s_per_order": mono_cpu,
        "micro_cpu_s_per_order": micro_cpu,
        "cpu_per_order_ratio": round(micro_cpu / mono_cpu, 2) if mono_cpu else None,
        "target": 0.5,
        "micro_trace_sample_ratio": float(os.environ.get("MERCATO_TRACE_SAMPLE_RATIO", "1.0")),
        "load_average": os.getloadavg()[0],
        "rounds": rounds,
        "ratio": round(micro_rate / mono_rate, 3) if mono_rate else None,
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
