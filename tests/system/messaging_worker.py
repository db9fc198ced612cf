"""A small real service process for the messaging crash tests (run as a script).

produce DB_URL BROKER N      commit N state changes, each with its event, and exit
                             without publishing (a crash can come at any time after)
relay DB_URL BROKER          publish whatever the outbox holds, forever; with
                             $DIE_AFTER_PUBLISH set, SIGKILL itself as soon as the broker
                             acknowledged the first wave, before marking it sent
stream DB_URL BROKER N RATE  commit N changes at RATE/s with the relay running
consume DB_URL BROKER        apply each event once (effects table + inbox); if the file
                             named by $DIE_AFTER_COMMIT exists, SIGKILL itself right
                             after the first commit, before the ack (and remove it);
                             if the file named by $HOLD_FIRST exists, hold the first
                             delivery 3 s before handling it (and remove the file)
"""

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database
from chassis.messaging import (
    Delivery,
    Envelope,
    Messaging,
    add_messaging_tables,
    record_events,
)

metadata = MetaData()
changes = Table("changes", metadata, Column("id", String(36), primary_key=True))
effects = Table(
    "effects", metadata, Column("seq", Integer, primary_key=True), Column("message_id", String(64))
)
add_messaging_tables(metadata)
TYPE = "crashtest.change.made.v1"


async def prepare(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)


async def commit_one(database: Database, messaging: Messaging) -> None:
    change = str(uuid.uuid4())
    async with database.write_sessions() as session, session.begin():
        await session.execute(insert(changes).values(id=change))
        await record_events(session, [messaging.event(TYPE, change, {"change": change})])


async def main(mode: str, url: str, broker: str, *rest: str) -> None:
    database = Database(url)
    await prepare(database)
    messaging = Messaging.from_url(broker, database=database, service="crashtest")
    if mode == "produce":
        for _ in range(int(rest[0])):
            await commit_one(database, messaging)
        print("committed", flush=True)
        return
    if mode == "stream":
        await messaging.start()
        count, rate = int(rest[0]), float(rest[1])
        for _ in range(count):
            await commit_one(database, messaging)
            messaging.notify()
            await asyncio.sleep(1 / rate)
        print("committed", flush=True)
        await asyncio.Event().wait()
    if mode == "relay":
        if os.environ.get("DIE_AFTER_PUBLISH"):
            publish_many = messaging.bus.publish_many

            async def publish_then_die(envelopes: Sequence[Envelope]) -> list[BaseException | None]:
                outcomes = await publish_many(envelopes)
                print(f"published {len(envelopes)}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)  # acknowledged, never marked sent
                return outcomes

            messaging.bus.publish_many = publish_then_die  # type: ignore[method-assign]
        await messaging.start()
        print("relaying", flush=True)
        await asyncio.Event().wait()
    if mode == "consume":
        marker = Path(os.environ.get("DIE_AFTER_COMMIT", "/nonexistent"))

        async def apply(session: AsyncSession, envelope: Envelope) -> None:
            await session.execute(insert(effects).values(message_id=envelope.id))

        def after_commit() -> None:
            if marker.exists():
                marker.unlink()
                os.kill(os.getpid(), signal.SIGKILL)  # committed, not acked

        from chassis.messaging import RetryPolicy, idempotent

        await messaging.bus.start()
        handler = idempotent(database, "crashtest-consumer", apply, after_commit=after_commit)
        hold = Path(os.environ.get("HOLD_FIRST", "/nonexistent"))

        async def holding(envelope: Envelope, delivery: Delivery) -> None:
            if hold.exists():  # hold the delivery, unacknowledged, before handling it
                hold.unlink()
                print("holding", flush=True)
                await asyncio.sleep(3)
            await handler(envelope, delivery)

        await messaging.bus.subscribe(
            "crashtest-consumer", [TYPE], holding, retry=RetryPolicy(ack_wait=1.0)
        )
        print("consuming", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
