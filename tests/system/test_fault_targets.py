"""Targeted faults, one at a time, each with the invariant it threatens asserted.

Covered elsewhere, not repeated here:
- a consumer killed between commit and ack, a service killed between commit and publish, a
  broker restarted under a steady stream: tests/system/test_messaging_crashes.py;
- a psp that times out after charging; orders, inventory, payments killed mid-checkout:
  tests/system/test_checkout.py;
- a poison message on every bus adapter: libs/chassis/tests/messaging/test_bus_contract.py;
- an orchestrator crash and resume, in process: libs/chassis/tests/saga/test_orchestrator.py.

Here, on real processes and a real broker: a relay killed between the broker's ack and
marking the row sent; a consumer stopped (SIGSTOP) while it holds a message, past its ack
wait. On a running platform: the orchestrator killed at each saga step, the broker restarted
mid-saga, and a poison message in a service's queue. (`mercato chaos` pauses platform
consumers past their 30 s ack wait too: tests/system/test_chaos.py.)
"""

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
import nats
import pytest
from sqlalchemy import text

from chassis import Database, EmbeddedNatsServer
from chassis.messaging import Envelope, bus_from_url
from mercato_cli.local import LocalPlatform

pytestmark = [pytest.mark.system, pytest.mark.slow]

WORKER = [sys.executable, str(Path(__file__).with_name("messaging_worker.py"))]
TYPE = "crashtest.change.made.v1"
PASSWORD = "correct horse battery staple"


# -- a relay killed between publish and mark-sent (real processes, no platform) ------------


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([*WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **(env or {})})  # fmt: skip


def wait_line(process: subprocess.Popen[str], prefix: str) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"worker ended before printing {prefix!r}")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


async def scalar(url: str, sql: str) -> int:
    database = Database(url)
    try:
        async with database.sessions() as session:
            return int(await session.scalar(text(sql)) or 0)
    finally:
        await database.dispose()


async def test_a_relay_killed_after_the_ack_before_marking_sent_publishes_again_applied_once(
    tmp_path: Path,
) -> None:
    producer_db = f"sqlite+aiosqlite:///{tmp_path}/producer.db"
    consumer_db = f"sqlite+aiosqlite:///{tmp_path}/consumer.db"
    with EmbeddedNatsServer(tmp_path / "js") as broker:
        consumer = spawn("consume", consumer_db, broker.url)
        relay = None
        try:
            await asyncio.to_thread(wait_line, consumer, "consuming")
            producer = spawn("produce", producer_db, broker.url, "50")
            await asyncio.to_thread(wait_line, producer, "committed")
            stop(producer)
            dying = spawn("relay", producer_db, broker.url, env={"DIE_AFTER_PUBLISH": "1"})
            published = await asyncio.to_thread(wait_line, dying, "published")
            dying.wait(timeout=30)
            assert dying.returncode == -signal.SIGKILL
            stop(dying)
            sent = int(published.split()[1])
            assert sent >= 1
            unsent = "SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL"
            assert await scalar(producer_db, unsent) == 50  # the broker has them; we don't know
            relay = spawn("relay", producer_db, broker.url)  # publishes all 50 (again)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = await scalar(producer_db, unsent) == 0
                if done and await scalar(consumer_db, "SELECT count(*) FROM effects") >= 50:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)  # > the consumer's ack wait: any redelivery is handled
        finally:
            stop(consumer)
            if relay is not None:
                stop(relay)
    assert await scalar(producer_db, unsent) == 0
    effects = "SELECT count(*) FROM effects"
    distinct = "SELECT count(DISTINCT message_id) FROM effects"
    assert await scalar(consumer_db, effects) == await scalar(consumer_db, distinct) == 50


async def test_a_consumer_paused_past_its_ack_wait_is_redelivered_and_applied_once(
    tmp_path: Path,
) -> None:
    consumer_db = f"sqlite+aiosqlite:///{tmp_path}/consumer.db"
    hold = tmp_path / "hold-first"
    hold.touch()
    with EmbeddedNatsServer(tmp_path / "js") as broker:
        first = spawn("consume", consumer_db, broker.url, env={"HOLD_FIRST": str(hold)})
        second: subprocess.Popen[str] | None = None
        try:
            await asyncio.to_thread(wait_line, first, "consuming")
            bus = bus_from_url(broker.url, service="crashtest-publisher")
            await bus.start()
            envelope = Envelope(type=TYPE, source="test", subject="one", data={"change": "one"})
            await bus.publish(envelope)
            await bus.close()
            await asyncio.to_thread(wait_line, first, "holding")
            os.kill(first.pid, signal.SIGSTOP)  # holding it, unacknowledged, stopped
            second = spawn("consume", consumer_db, broker.url)
            await asyncio.to_thread(wait_line, second, "consuming")
            deadline = time.monotonic() + 30
            # past the ack wait (1 s) the broker hands it to the other consumer of the group
            while await scalar(consumer_db, "SELECT count(*) FROM effects") < 1:
                assert time.monotonic() < deadline, "never redelivered to the other consumer"
                await asyncio.sleep(0.2)
            assert first.poll() is None  # still stopped: the other one applied it
            os.kill(first.pid, signal.SIGCONT)
            await asyncio.sleep(5)  # it finishes holding and handles its stale copy
        finally:
            if first.poll() is None:
                os.kill(first.pid, signal.SIGCONT)
            stop(first)
            if second is not None:
                stop(second)
    assert await scalar(consumer_db, "SELECT count(*) FROM effects") == 1
    assert await scalar(consumer_db, "SELECT count(*) FROM messaging_inbox") == 1


# -- on a running platform -----------------------------------------------------------------


class Platform(LocalPlatform):
    def processes(self, service: str) -> list[dict[str, Any]]:
        return [i for i in self.state()["instances"] if i["service"] == service]

    def ready(self) -> bool:
        """Every instance of the state file answers /readyz (what `mercato status` asks)."""
        try:
            instances = self.state()["instances"]
            return len(instances) >= 8 and all(
                httpx.get(f"{i['url']}/readyz", timeout=2).status_code == 200 for i in instances
            )
        except (httpx.TransportError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            assert time.monotonic() < deadline, "the platform did not come back"
            time.sleep(0.3)

    def check(self) -> dict[str, Any]:
        deadline = time.monotonic() + 90
        while True:
            report: dict[str, Any] = json.loads(self.mercato("check", "--json").stdout)
            if not report["violations"] or time.monotonic() > deadline:
                return report
            time.sleep(1)

    def saga_step(self, order_id: str) -> tuple[str, str] | None:
        orders = self.processes("orders")[0]["url"]
        try:
            answer = httpx.get(f"{orders}/internal/sagas", params={"order_id": order_id},
                               headers=self.internal(), timeout=5)  # fmt: skip
        except httpx.TransportError:
            return None
        items = answer.json().get("items", []) if answer.status_code == 200 else []
        return (items[0]["status"], items[0]["step"]) if items else None

    def psp_faults(self, **knobs: float) -> None:
        body = {"latency_ms": 0, "error_rate": 0, "timeout_after_charge_rate": 0,
                "timeout_seconds": 7, **knobs}  # fmt: skip
        for psp in self.processes("psp"):
            answer = httpx.put(f"{psp['url']}/v1/_faults", json=body, headers=self.internal())
            assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("faults") / "data"
    env = {**os.environ, "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
           "GATEWAY_RATE_LIMIT_BURST": "100000"}  # fmt: skip
    with Platform(data_dir, args=["--no-seed"], env=env).start(timeout=180) as platform:
        yield platform


def shopper(base: str) -> dict[str, str]:
    email = f"fault-{uuid.uuid4().hex[:10]}@example.com"
    registered = httpx.post(f"{base}/api/v1/auth/register",
                            json={"email": email, "password": PASSWORD, "name": "F"}, timeout=30)  # fmt: skip
    assert registered.status_code == 201, registered.text
    tokens = httpx.post(f"{base}/api/v1/auth/token",
                        json={"email": email, "password": PASSWORD}, timeout=30)  # fmt: skip
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def new_product(platform: Platform, stock: int = 1000) -> str:
    password = (platform.data_dir / "secrets" / "admin_password").read_text().strip()
    tokens = httpx.post(f"{platform.base}/api/v1/auth/token", timeout=30,
                        json={"email": "admin@mercato.local", "password": password})  # fmt: skip
    admin = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    sku = f"F-{uuid.uuid4().hex[:8]}"
    body = {"sku": sku, "name": f"Fault item {sku}", "category": "kitchen",
            "price": {"amount": 700, "currency": "EUR"}}  # fmt: skip
    created = httpx.post(f"{platform.base}/api/v1/products", json=body, headers=admin, timeout=30)
    assert created.status_code == 201, created.text
    for _ in range(200):
        answer = httpx.put(f"{platform.base}/api/v1/inventory/stock/{sku}", headers=admin,
                           json={"action": "adjust", "available": stock, "reason": "test"})  # fmt: skip
        if answer.status_code == 200:
            return str(created.json()["id"])
        time.sleep(0.1)
    raise AssertionError(f"no stock record for {sku}")


def place(base: str, who: dict[str, str], product: str, key: str | None = None) -> str:
    key = key or uuid.uuid4().hex
    for _ in range(120):  # the gateway or orders may be away for a moment: same key again
        try:
            answer = httpx.post(f"{base}/api/v1/orders", timeout=30,
                                json={"items": [{"product_id": product, "quantity": 1}],
                                      "payment_token": "tok_visa"},
                                headers={**who, "Idempotency-Key": key})  # fmt: skip
            if answer.status_code == 202:
                return str(answer.json()["id"])
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError("the order was never accepted")


def settled(base: str, who: dict[str, str], order_id: str, timeout: float = 150) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{base}/api/v1/orders/{order_id}", headers=who, timeout=10)
            if answer.status_code == 200 and answer.json()["status"] != "PENDING":
                return str(answer.json()["status"])
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"order {order_id} did not settle")


def signal_all(platform: Platform, service: str, signum: signal.Signals) -> None:
    for process in platform.processes(service):
        os.kill(process["pid"], signum)


def wait_step(platform: Platform, order_id: str, step: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if platform.saga_step(order_id) == ("RUNNING", step):
            return
        time.sleep(0.05)
    raise AssertionError(f"the saga of {order_id} never waited at {step}")


def test_the_orchestrator_killed_at_each_saga_step_resumes_and_settles(
    platform: Platform,
) -> None:
    base = platform.base
    who = shopper(base)
    product = new_product(platform)
    outcomes: dict[str, str] = {}
    for step in ("reserve_stock", "authorize_payment", "capture_payment", "commit_reservation"):
        held = {"reserve_stock": "inventory", "authorize_payment": "payments"}.get(step)
        if held:  # the participant is away: the saga waits at its step
            signal_all(platform, held, signal.SIGSTOP)
        else:  # the psp is slow: authorize and capture each take seconds
            platform.psp_faults(latency_ms=2500)
        try:
            order_id = place(base, who, product)
            if step == "commit_reservation":  # past the capture, inventory is away
                wait_step(platform, order_id, "capture_payment")
                signal_all(platform, "inventory", signal.SIGSTOP)
                held = "inventory"
            wait_step(platform, order_id, step)
            os.kill(platform.processes("orders")[0]["pid"], signal.SIGKILL)
        finally:
            if held:
                signal_all(platform, held, signal.SIGCONT)
        platform.wait_ready()
        platform.psp_faults()
        outcomes[step] = settled(base, who, order_id)
    assert outcomes == dict.fromkeys(outcomes, "CONFIRMED"), outcomes
    report = platform.check()
    assert report["violations"] == [], report


def test_a_broker_restart_mid_saga_loses_no_checkout(platform: Platform) -> None:
    base = platform.base
    who = [shopper(base) for _ in range(4)]
    product = new_product(platform)
    placed = [(who[n % 4], place(base, who[n % 4], product)) for n in range(12)]
    os.kill(platform.state()["nats_pid"], signal.SIGKILL)  # while those sagas run
    placed += [(who[n % 4], place(base, who[n % 4], product)) for n in range(12, 20)]
    statuses = [settled(base, w, order_id) for w, order_id in placed]
    assert statuses == ["CONFIRMED"] * 20
    report = platform.check()
    assert report["violations"] == [], report


def test_a_poison_message_is_dead_lettered_and_checkouts_keep_flowing(platform: Platform) -> None:
    base = platform.base
    broker = platform.state()["broker_url"]

    async def publish_poison() -> None:
        connection = await nats.connect(broker)
        try:
            js = connection.jetstream()
            await js.publish("mercato.inventory.reserve_stock.v1", b"\x00not an envelope{")
            envelope = {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "mallory",
                        "type": "inventory.reserve_stock.v1", "subject": "o-poison",
                        "time": "2026-01-01T00:00:00Z", "data": {"order_id": 42}}  # fmt: skip
            await js.publish("mercato.inventory.reserve_stock.v1", json.dumps(envelope).encode())
        finally:
            await connection.close()

    asyncio.run(publish_poison())
    who = shopper(base)
    order_id = place(base, who, new_product(platform))
    assert settled(base, who, order_id) == "CONFIRMED"  # the poison held nothing up
    deadline = time.monotonic() + 60
    letters: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        listed = platform.mercato("dlq", "list", "--consumer", "inventory", "--json")
        letters = json.loads(listed.stdout or "[]")
        if len(letters) >= 2:
            break
        time.sleep(2)
    assert len(letters) == 2, letters
    assert {letter["attempts"] for letter in letters} == {1}  # at once: retrying cannot help
    for letter in letters:
        assert platform.mercato("dlq", "discard", letter["id"]).returncode == 0
    report = platform.check()
    assert report["violations"] == [], report
