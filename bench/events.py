"""Events throughput in one run, on one nats-server from the wheel:

1. raw JetStream publish from Python with >= 100 publishes in flight (nats-py directly);
2. the outbox relay publishing a backlog from a SQLite outbox (waves, many in flight);
3. end to end: relay -> broker -> a consumer applying each event once through the inbox.

Prints one JSON line with the rates and their ratios to the raw rate (target: relay >= 0.6).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import nats
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database, EmbeddedNatsServer
from chassis.messaging import (
    Envelope,
    OutboxRelay,
    add_messaging_tables,
    bus_from_url,
    idempotent,
    record_events,
)

RAW = 20_000
RELAYED = 20_000
END_TO_END = 5_000
SUBJECTS = 2_000
TYPE = "bench.thing.happened.v1"


def envelopes(count: int) -> list[Envelope]:
    return [
        Envelope(
            type=TYPE, source="bench", subject=f"s-{n % SUBJECTS}", data={"n": n, "pad": "x" * 200}
        )
        for n in range(count)
    ]


async def raw_publish(url: str) -> float:
    client = await nats.connect(url)
    js = client.jetstream()
    await js.add_stream(name="RAW", subjects=["raw.>"])
    payloads = [e.to_bytes() for e in envelopes(RAW)]
    started = time.perf_counter()
    for offset in range(0, RAW, 256):  # 256 in flight at a time
        await asyncio.gather(
            *(
                js.publish(f"raw.{n % SUBJECTS}", payload)
                for n, payload in enumerate(payloads[offset : offset + 256])
            )
        )
    elapsed = time.perf_counter() - started
    await client.close()
    return RAW / elapsed


async def database_with_backlog(path: Path, count: int) -> Database:
    metadata = MetaData()
    add_messaging_tables(metadata)
    database = Database(f"sqlite+aiosqlite:///{path}")
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    batch = envelopes(count)
    for offset in range(0, count, 1000):
        async with database.write_sessions() as session, session.begin():
            await record_events(session, batch[offset : offset + 1000])
    return database


def published() -> float:
    return REGISTRY.get_sample_value("mercato_outbox_published_total") or 0.0


async def unsent(database: Database) -> int:
    async with database.sessions() as session:
        return int(
            await session.scalar(
                text("SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL")
            )
            or 0
        )


async def relay_rate(url: str, folder: Path) -> float:
    database = await database_with_backlog(folder / "relay.db", RELAYED)
    bus = bus_from_url(url, service="bench-relay")
    await bus.start()
    relay = OutboxRelay(database, bus, batch_size=5000, poll_interval=0.05)
    before = published()
    started = time.perf_counter()
    await relay.start()
    # Watched through the relay's own counter (it counts rows once they are marked sent),
    # not by querying the database it is working on, which would slow it down.
    while published() - before < RELAYED:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    assert await unsent(database) == 0
    await relay.stop()
    await bus.close()
    await database.dispose()
    return RELAYED / elapsed


async def end_to_end_rate(url: str, folder: Path) -> float:
    producer = await database_with_backlog(folder / "producer.db", END_TO_END)
    metadata = MetaData()
    add_messaging_tables(metadata)
    consumer_db = Database(f"sqlite+aiosqlite:///{folder / 'consumer.db'}")
    async with consumer_db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    applied = 0
    done = asyncio.Event()

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        nonlocal applied
        del session, envelope
        applied += 1
        if applied >= END_TO_END:
            done.set()

    consumer_bus = bus_from_url(url, service="bench-consumer")
    await consumer_bus.start()
    subscription = await consumer_bus.subscribe(
        "bench-consumer", [TYPE], idempotent(consumer_db, "bench-consumer", apply)
    )
    publisher_bus = bus_from_url(url, service="bench-producer")
    await publisher_bus.start()
    relay = OutboxRelay(producer, publisher_bus, batch_size=5000, poll_interval=0.05)
    started = time.perf_counter()
    await relay.start()
    await asyncio.wait_for(done.wait(), timeout=600)
    elapsed = time.perf_counter() - started
    await relay.stop()
    await subscription.stop()
    await publisher_bus.close()
    await consumer_bus.close()
    await producer.dispose()
    await consumer_db.dispose()
    return END_TO_END / elapsed


async def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with EmbeddedNatsServer(folder / "js") as server:
            raw = await raw_publish(server.url)
            relay = await relay_rate(server.url, folder)
            e2e = await end_to_end_rate(server.url, folder)
    print(
        json.dumps(
            {
                "benchmark": "events",
                "raw_publish_per_s": round(raw),
                "relay_publish_per_s": round(relay),
                "ratio": round(relay / raw, 3),
                "end_to_end_per_s": round(e2e),
                "end_to_end_ratio": round(e2e / raw, 3),
                "target_relay_ratio": 0.6,
                "met": relay / raw >= 0.6,
                "messages": {"raw": RAW, "relayed": RELAYED, "end_to_end": END_TO_END},
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
