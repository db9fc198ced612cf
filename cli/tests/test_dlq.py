"""`mercato dlq` against a real nats-server: list, show, replay to the consumer, discard."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chassis import EmbeddedNatsServer
from chassis.messaging import Delivery, Envelope, PermanentError, RetryPolicy, bus_from_url

pytestmark = pytest.mark.integration


def mercato(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MERCATO_BROKER_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "mercato_cli", "--data-dir", str(tmp_path / "none"), "dlq", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_dead_letters_can_be_listed_shown_replayed_and_discarded(tmp_path: Path) -> None:
    with EmbeddedNatsServer(tmp_path / "js") as server:
        bus = bus_from_url(server.url, service="test")
        await bus.start()
        handled: list[str] = []
        poison = {"value": True}

        async def handler(envelope: Envelope, _: Delivery) -> None:
            if poison["value"]:
                raise PermanentError("cannot handle this one")
            handled.append(envelope.id)

        subscription = await bus.subscribe(
            "orders-consumer",
            ["shop.thing.happened.v1"],
            handler,
            retry=RetryPolicy(max_attempts=2),
        )
        first = Envelope(type="shop.thing.happened.v1", source="test", subject="s1", data={"n": 1})
        second = Envelope(type="shop.thing.happened.v1", source="test", subject="s2", data={"n": 2})
        await bus.publish(first)
        await bus.publish(second)
        for _ in range(100):
            if len(await bus.dead_letters()) == 2:
                break
            await asyncio.sleep(0.05)

        listed = await asyncio.to_thread(mercato, tmp_path, server.url, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        letters = json.loads(listed.stdout)
        assert sorted(x["message_id"] for x in letters) == sorted([first.id, second.id])
        assert all(x["consumer"] == "orders-consumer" for x in letters)
        assert all("cannot handle this one" in x["reason"] for x in letters)

        by_message = {x["message_id"]: x["id"] for x in letters}
        shown = await asyncio.to_thread(mercato, tmp_path, server.url, "show", by_message[first.id])
        assert json.loads(shown.stdout)["envelope"]["data"] == {"n": 1}

        poison["value"] = False
        replayed = await asyncio.to_thread(
            mercato, tmp_path, server.url, "replay", by_message[first.id]
        )
        assert replayed.returncode == 0, replayed.stderr
        for _ in range(100):
            if handled:
                break
            await asyncio.sleep(0.05)
        assert handled == [first.id]  # the same envelope, to that consumer

        discarded = await asyncio.to_thread(
            mercato, tmp_path, server.url, "discard", by_message[second.id]
        )
        assert discarded.returncode == 0, discarded.stderr
        assert await bus.dead_letters() == []
        missing = await asyncio.to_thread(mercato, tmp_path, server.url, "discard", "nope")
        assert missing.returncode == 1
        await subscription.stop()
        await bus.close()
