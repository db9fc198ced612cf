"""`mercato dlq`: list, show, replay and discard dead letters, straight on the broker."""

from __future__ import annotations

from typing import Any

import orjson

from chassis.messaging import DeadLetter, MessageBus, bus_from_url


async def open_bus(broker_url: str) -> MessageBus:
    bus = bus_from_url(broker_url, service="mercato-cli")
    await bus.start()
    return bus


def summary(letter: DeadLetter) -> dict[str, Any]:
    envelope = letter.envelope
    return {
        "id": letter.id,
        "consumer": letter.consumer,
        "type": envelope.type if envelope else None,
        "subject": envelope.subject if envelope else None,
        "message_id": envelope.id if envelope else None,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "dead_at": letter.dead_at.isoformat(),
    }


def detail(letter: DeadLetter) -> dict[str, Any]:
    body = summary(letter)
    if letter.envelope is not None:
        body["envelope"] = letter.envelope.to_dict()
    else:
        body["raw"] = letter.raw.decode("utf-8", "replace")
    return body


def render(letters: list[DeadLetter]) -> str:
    if not letters:
        return "no dead letters"
    rows = [summary(letter) for letter in letters]
    keys = ("id", "consumer", "type", "subject", "attempts", "dead_at", "reason")
    widths = {k: min(40, max(len(k), *(len(str(r[k])) for r in rows))) for k in keys}
    lines = ["  ".join(k.upper().ljust(widths[k]) for k in keys)]
    lines += ["  ".join(str(r[k])[: widths[k]].ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
