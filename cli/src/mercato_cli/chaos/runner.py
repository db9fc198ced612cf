"""`mercato chaos`: a Jepsen-style run against a platform.

calm (`before`) → faults from the nemesis (`during`) → heal, calm again (`after`) → stop the
shoppers → wait for quiescence → `mercato check` + the history checker → one report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from chassis import free_port
from mercato_cli.chaos.checker import DUPLICATE_INVARIANTS, check_history, merge
from mercato_cli.chaos.nemesis import PROXY_KINDS, Nemesis, plan
from mercato_cli.chaos.observe import CounterWatch, wait_for_quiescence
from mercato_cli.chaos.platform import Platform, wait_ready
from mercato_cli.chaos.workload import History, Product, Workload
from mercato_cli.check import audit, fetch_audits
from mercato_cli.datadir import DataDir

LIMITED_PRODUCTS = 6


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def percentiles(latencies: list[float]) -> dict[str, float | int | None]:
    if not latencies:
        return {"count": 0, "p50_ms": None, "p99_ms": None}
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"count": len(ordered), "p50_ms": at(0.50), "p99_ms": at(0.99)}


class FreshPlatform:
    """`mercato up --fault-proxy` in a temporary data dir, stopped (and removed) after."""

    def __init__(self, replicas: str, keep: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mercato-chaos-"))
        self.data = DataDir(self.root / "data")
        self.keep = keep
        self.process: subprocess.Popen[bytes] | None = None
        self.replicas = replicas

    async def start(self) -> None:
        port = self._launch()
        say(f"starting a fresh platform in {self.data.root} (gateway port {port})")
        assert self.process is not None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mercato up exited: see {self.root / 'up.log'}")
            if self.data.read_state() is not None and await wait_ready(
                self.data, timeout=1, expected=8
            ):
                return
            await asyncio.sleep(0.5)
        raise RuntimeError("the fresh platform did not become ready in 300s")

    def _launch(self) -> int:
        port = free_port()
        env = {**os.environ, "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
               "GATEWAY_RATE_LIMIT_BURST": "100000"}  # fmt: skip
        command = [sys.executable, "-m", "mercato_cli", "--data-dir", str(self.data.root), "up",
                   "--port", str(port), "--fault-proxy", "--ready-timeout", "240"]  # fmt: skip
        if self.replicas:
            command += ["--replicas", self.replicas]
        log = (self.root / "up.log").open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        return port

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.keep:
            say(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


async def _products(platform: Platform, rng: random.Random, run_id: str) -> list[Product]:
    """Demo-catalog products, and a few of the run's own with a small, known stock."""
    base = platform.gateway_url
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        demo: list[dict[str, Any]] = []
        for _ in range(240):  # `mercato up` seeds after it is ready
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{base}/api/v1/products?limit=100") as answer:
                    if answer.status == 200:
                        demo = (await answer.json())["items"]
                        if len(demo) >= 50:
                            break
            await asyncio.sleep(0.5)
        async with session.post(
            f"{base}/api/v1/auth/token",
            json={"email": "admin@mercato.local", "password": platform.admin_password()},
        ) as answer:
            answer.raise_for_status()
            admin = {"authorization": f"Bearer {(await answer.json())['access_token']}"}
        products = [
            Product(str(p["id"]), str(p["sku"]), int(p["price"]["amount"]), None) for p in demo
        ]
        for n in range(LIMITED_PRODUCTS):
            sku = f"CHAOS-{run_id}-{n}"
            stock = rng.randint(25, 60)
            body = {"sku": sku, "name": f"Chaos item {n}", "category": "kitchen",
                    "price": {"amount": 500 + 250 * n, "currency": "EUR"}}  # fmt: skip
            async with session.post(f"{base}/api/v1/products", json=body, headers=admin) as answer:
                if answer.status != 201:
                    raise RuntimeError(f"creating {sku}: {answer.status} {await answer.text()}")
                created = await answer.json()
            for _ in range(200):  # inventory makes the stock record from catalog's event
                async with session.put(
                    f"{base}/api/v1/inventory/stock/{sku}",
                    json={"action": "adjust", "available": stock, "reason": "chaos run"},
                    headers=admin,
                ) as answer:
                    if answer.status == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"no stock record for {sku}")
            products.append(Product(str(created["id"]), sku, 500 + 250 * n, stock))
    return products


async def run(args: argparse.Namespace, data: DataDir) -> dict[str, Any]:
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    run_id = uuid.uuid4().hex[:8]  # names this run's shoppers and products (not from the seed)
    platform = Platform(data)
    kinds = tuple(args.faults)
    skipped: dict[str, str] = {}
    if platform.fault_proxy() is None:
        for kind in PROXY_KINDS:
            if kind in kinds:
                skipped[kind] = "no fault proxy: start the platform with mercato up --fault-proxy"
        kinds = tuple(k for k in kinds if k not in PROXY_KINDS)

    duration = float(args.duration)
    before = min(15.0, 0.1 * duration)
    after = min(20.0, 0.15 * duration)
    window = duration - before - after
    schedule = plan(kinds, window, per_minute=args.fault_rate, rng=rng) if kinds else []

    products = await _products(platform, rng, run_id)
    history = History()
    workload = Workload(platform.gateway_url, history=history, products=products, rng=rng,
                        rate=args.rate, shoppers=args.shoppers, run_id=run_id)  # fmt: skip
    nemesis = Nemesis(platform, now=history.now, say=say)
    counters = CounterWatch()
    stop_watch = asyncio.Event()
    watcher = asyncio.create_task(counters.watch(platform, stop_watch))
    say(f"chaos run {run_id}: seed {seed}, {duration:.0f}s at {args.rate}/s, faults "
        f"{','.join(kinds) or 'none'} ({len(schedule)} in a {window:.0f}s window)")  # fmt: skip
    shopping = asyncio.create_task(workload.run())
    heal_problems: list[str] = []
    try:
        await asyncio.sleep(before)
        fault_start = history.now()
        await asyncio.wait_for(nemesis.run(schedule, window_start=fault_start), window + 60)
        remaining = fault_start + window - history.now()
        if remaining > 0:
            await asyncio.sleep(remaining)
    finally:
        heal_problems = await nemesis.heal()
    healed_at = history.now()
    say(f"healed at {healed_at:.1f}s" + (f" (problems: {heal_problems})" if heal_problems else ""))
    await asyncio.sleep(after)
    workload.stop()
    with contextlib.suppress(TimeoutError):  # an operation still hanging stays unknown
        await asyncio.wait_for(shopping, 90)
    stopped_at = history.now()

    say("waiting for quiescence")
    quiet = await wait_for_quiescence(platform, timeout=args.settle_timeout, say=say)
    stop_watch.set()
    await watcher

    state = platform.state()
    urls: dict[str, str] = {}
    for instance in state["instances"]:
        urls.setdefault(instance["service"], instance["url"])
    documents = await fetch_audits(urls, data.secret("internal_secret"))
    report = audit(documents["orders"], documents["inventory"], documents["payments"],
                   documents["psp"])  # fmt: skip
    user_ids = {s.user_id for s in workload.shoppers if s.user_id}
    verdict = check_history(
        history.ops, products=products, user_ids=user_ids, orders=documents["orders"],
        stock=documents["inventory"], payments=documents["payments"], charges=documents["psp"],
    )  # fmt: skip
    violations = merge(verdict, report.violations)
    if not quiet.reached:
        violations["quiescence"] = [orjson.dumps(quiet.last, default=str).decode()]
    if heal_problems:
        violations["healed"] = heal_problems
    _liveness(history, documents["orders"], healed_at, violations)

    dead = await _dead_letters(platform.broker_url)
    faults: dict[str, int] = dict.fromkeys(kinds, 0)
    for fault in nemesis.faults:
        faults[fault.kind] += fault.injected
    phases = {"before": (0.0, fault_start), "during": (fault_start, healed_at),
              "after": (healed_at, stopped_at)}  # fmt: skip
    gateway_shed = counters.total(
        "mercato_http_requests_total", lambda labels: labels[0] in ("429", "503"),
        gateway_only=True,
    )  # fmt: skip
    return {
        "seed": seed,
        "run_id": run_id,
        "duration_s": duration,
        "rate": args.rate,
        "operations": history.counts(),
        "operations_by_kind": _by_kind(history),
        "faults": faults,
        "faults_not_injected": sum(1 for f in nemesis.faults if not f.injected),
        "faults_skipped": skipped,
        "partition_mode": "proxy (the service's broker link is black-holed at the fault proxy)",
        "orders_checked": report.orders_checked,
        "violations": violations,
        "unknown_orders": {
            "keys": verdict.unknown_keys,
            "applied": verdict.unknown_applied,
            "absent": verdict.unknown_absent,
        },
        "duplicates": {
            "delivered": int(counters.total("mercato_inbox_duplicates_total")),
            "applied": sum(len(violations.get(k, [])) for k in DUPLICATE_INVARIANTS),
        },
        "dead_letters": dead,
        "breaker_transitions": {
            k: int(v)
            for k, v in counters.by_labels("mercato_circuit_breaker_transitions_total").items()
        },
        "gateway_shed": int(gateway_shed),
        "latency": {
            name: percentiles(
                [op.latency for op in history.ops if start <= op.start < end and op.end]
            )
            for name, (start, end) in phases.items()
        },
        "quiescence_s": round(quiet.seconds, 1),
        "quiescent": quiet.reached,
        "fault_log": [f.as_dict() for f in nemesis.faults],
    }


def _by_kind(history: History) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for op in history.ops:
        row = table.setdefault(op.kind, {"ok": 0, "fail": 0, "unknown": 0})
        row[op.outcome] += 1
    return table


def _liveness(history: History, orders: dict[str, Any], healed_at: float,
              violations: dict[str, list[str]]) -> None:  # fmt: skip
    """After the heal the platform must serve again: some order placed then was confirmed."""
    status = {str(o["id"]): o["status"] for o in orders.get("items", [])}
    placed = [op.order_id for op in history.ops
              if op.kind == "order" and op.outcome == "ok" and op.start >= healed_at]  # fmt: skip
    if not any(status.get(str(order_id)) == "CONFIRMED" for order_id in placed):
        violations["recovers_after_heal"] = [f"{len(placed)} orders placed after the heal, "
                                             "none confirmed"]  # fmt: skip


async def _dead_letters(broker_url: str) -> dict[str, Any]:
    from mercato_cli.dlq import open_bus

    try:
        bus = await open_bus(broker_url)
    except Exception as error:
        return {"count": None, "error": repr(error)}
    try:
        letters = await bus.dead_letters()
    finally:
        await bus.close()
    by_consumer: dict[str, int] = {}
    for letter in letters:
        by_consumer[letter.consumer] = by_consumer.get(letter.consumer, 0) + 1
    return {"count": len(letters), "by_consumer": by_consumer,
            "reasons": sorted({letter.reason[:120] for letter in letters})[:10]}  # fmt: skip


def render(report: dict[str, Any]) -> str:
    lines = [
        f"seed {report['seed']}  operations {report['operations']}",
        f"faults injected {report['faults']}  (skipped: {report['faults_skipped'] or 'none'})",
        f"orders checked {report['orders_checked']}  unknown orders {report['unknown_orders']}",
        f"duplicates {report['duplicates']}  dead letters {report['dead_letters'].get('count')}",
        f"breaker transitions {report['breaker_transitions']}",
        f"latency {report['latency']}",
        f"quiescent after {report['quiescence_s']}s: {report['quiescent']}",
    ]
    if report["violations"]:
        lines += [f"VIOLATION {name}: {ids[:10]}" for name, ids in report["violations"].items()]
    else:
        lines.append("no violations")
    return "\n".join(lines)


def main(args: argparse.Namespace, data: DataDir) -> int:
    fresh = FreshPlatform(args.replicas, args.keep) if args.fresh else None

    async def go() -> dict[str, Any]:
        if fresh is not None:
            await fresh.start()
            return await run(args, fresh.data)
        if data.read_state() is None:
            raise RuntimeError(f"no platform is running on {data.root} (or use --fresh)")
        return await run(args, data)

    try:
        report = asyncio.run(go())
    except RuntimeError as error:
        print(f"mercato chaos: {error}", file=sys.stderr)
        return 2
    finally:
        if fresh is not None:
            fresh.stop()
    if args.json:
        print(orjson.dumps(report).decode())
    else:
        print(render(report))
    return 1 if report["violations"] else 0
