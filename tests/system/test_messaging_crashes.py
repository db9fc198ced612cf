"""Crashes around the broker, with real processes: nothing committed is lost, nothing is
applied twice. Each test kills a real process with SIGKILL at the dangerous moment."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from chassis import Database, EmbeddedNatsServer
from chassis.messaging import Delivery, Envelope, RetryPolicy, bus_from_url

pytestmark = [pytest.mark.system, pytest.mark.slow]

WORKER = [sys.executable, str(Path(__file__).with_name("messaging_worker.py"))]
TYPE = "crashtest.change.made.v1"


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def wait_line(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdout is not None
    for got in process.stdout:
        if got.strip() == line:
            return
    raise AssertionError(f"worker ended before printing {line!r}")


def kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


def rabbit_vhost() -> Iterator[str]:
    vhost = f"mercato_crash_{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], check=False, capture_output=True)


@pytest.fixture(params=["nats", pytest.param("rabbitmq", marks=pytest.mark.integration)])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "nats":
        with EmbeddedNatsServer(tmp_path / "js") as server:
            yield server.url
    else:
        yield from rabbit_vhost()


async def count(url: str, sql: str) -> int:
    database = Database(url)
    try:
        async with database.sessions() as session:
            return int(await session.scalar(text(sql)) or 0)
    finally:
        await database.dispose()


async def received_changes(broker: str, want: set[str], *, timeout: float, consumer: str,
                           start: asyncio.Event | None = None) -> set[str]:  # fmt: skip
    seen: set[str] = set()
    done = asyncio.Event()
    bus = bus_from_url(broker, service="crashtest-observer")
    await bus.start()

    async def handler(envelope: Envelope, _: Delivery) -> None:
        seen.add(envelope.data["change"])
        if want and want <= seen:
            done.set()

    subscription = await bus.subscribe(consumer, [TYPE], handler, retry=RetryPolicy(ack_wait=5))
    if start is not None:
        start.set()
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        pass
    finally:
        await subscription.stop()
        await bus.close()
    return seen


async def committed_changes(url: str) -> set[str]:
    database = Database(url)
    try:
        async with database.sessions() as session:
            return {row[0] for row in await session.execute(text("SELECT id FROM changes"))}
    finally:
        await database.dispose()


async def test_a_kill_between_commit_and_publish_loses_nothing(broker: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/producer.db"
    # The observer's durable consumer exists before anything is published.
    ready = asyncio.Event()
    placeholder: set[str] = set()
    observer = asyncio.create_task(
        received_changes(broker, placeholder, timeout=60, consumer="observer", start=ready)
    )
    await ready.wait()
    producer = spawn("produce", url, broker, "200")
    await asyncio.to_thread(wait_line, producer, "committed")
    kill(producer)  # committed, never published: the relay never ran
    committed = await committed_changes(url)
    assert len(committed) == 200
    assert await count(url, "SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL") == 200

    placeholder.update(committed)  # now the observer knows what to wait for
    relay = spawn("relay", url, broker)
    try:
        seen = await observer
    finally:
        kill(relay)
    assert committed <= seen
    assert await count(url, "SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL") == 0


async def test_a_consumer_killed_between_commit_and_ack_applies_once(
    broker: str, tmp_path: Path
) -> None:
    consumer_db = f"sqlite+aiosqlite:///{tmp_path}/consumer.db"
    marker = tmp_path / "die-after-first-commit"
    marker.touch()
    consumer = spawn("consume", consumer_db, broker, env={"DIE_AFTER_COMMIT": str(marker)})
    await asyncio.to_thread(wait_line, consumer, "consuming")
    bus = bus_from_url(broker, service="crashtest-publisher")
    await bus.start()
    envelope = Envelope(type=TYPE, source="test", subject="one", data={"change": "one"})
    await bus.publish(envelope)
    await bus.close()
    consumer.wait(timeout=30)
    assert consumer.returncode == -signal.SIGKILL  # it died after its commit, before the ack
    kill(consumer)
    assert not marker.exists()
    assert await count(consumer_db, "SELECT count(*) FROM effects") == 1

    again = spawn("consume", consumer_db, broker)  # the redelivery arrives here
    try:
        await asyncio.to_thread(wait_line, again, "consuming")
        for _ in range(100):
            if await count(consumer_db, "SELECT count(*) FROM messaging_inbox") >= 1:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # > ack_wait: the redelivery has certainly been handled
    finally:
        kill(again)
    assert await count(consumer_db, "SELECT count(*) FROM effects") == 1


async def test_a_broker_restart_under_a_steady_stream_loses_no_committed_event(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/stream.db"
    server = EmbeddedNatsServer(tmp_path / "js")
    server.start()
    try:
        ready = asyncio.Event()
        want: set[str] = set()
        observer = asyncio.create_task(
            received_changes(server.url, want, timeout=90, consumer="observer", start=ready)
        )
        await ready.wait()
        producer = spawn("stream", url, server.url, "600", "100")
        await asyncio.sleep(2.0)
        server.restart()  # the broker goes away mid-stream and comes back on the same port
        await asyncio.to_thread(wait_line, producer, "committed")
        want.update(await committed_changes(url))
        try:
            seen = await observer
        finally:
            kill(producer)
        assert len(want) == 600
        assert want <= seen, f"{len(want - seen)} committed events never arrived"
    finally:
        server.stop()
