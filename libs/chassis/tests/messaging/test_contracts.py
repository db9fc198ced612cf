"""Message contracts and their AsyncAPI 3.0 document."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field, ValidationError

from chassis import Money
from chassis.messaging import (
    Envelope,
    MalformedMessageError,
    MessageContracts,
    Published,
    asyncapi,
    asyncapi_router,
)


class Line(BaseModel):
    sku: str
    quantity: int = Field(ge=1)


class ToyOrdered(BaseModel):
    """A toy was ordered.

    Only the first paragraph becomes the summary."""

    order_id: str
    lines: list[Line]
    total: Money
    note: str | None = None


class ShipToy(BaseModel):
    order_id: str


EXAMPLE = {
    "order_id": "o-1",
    "lines": [{"sku": "TOY-1", "quantity": 2}],
    "total": {"amount": 1998, "currency": "EUR"},
}
TOYS = MessageContracts(
    "toys",
    publishes={
        "toys.toy.ordered.v1": Published(ToyOrdered, subject="order_id", example=EXAMPLE),
    },
    consumes={"shipping.ship_toy.v1": ShipToy},
)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def test_the_document_is_asyncapi_3_with_info_channels_and_operations() -> None:
    document = asyncapi(TOYS, version="1.2.3")

    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "Mercato toys"
    assert document["info"]["version"] == "1.2.3"
    assert document["defaultContentType"] == "application/cloudevents+json"
    assert "servers" not in document  # no hint, no server
    assert set(document["channels"]) == {"toys.toy.ordered.v1", "shipping.ship_toy.v1"}
    channel = document["channels"]["toys.toy.ordered.v1"]
    assert channel["address"] == "mercato.toys.toy.ordered.v1"  # the NATS subject
    assert "routing key `toys.toy.ordered.v1`" in channel["description"]
    assert channel["bindings"]["amqp"]["exchange"]["name"] == "mercato.events"

    operations = document["operations"]
    assert {name: op["action"] for name, op in operations.items()} == {
        "send.toys.toy.ordered.v1": "send",
        "receive.shipping.ship_toy.v1": "receive",
    }
    send = operations["send.toys.toy.ordered.v1"]
    assert send["channel"] == {"$ref": "#/channels/toys.toy.ordered.v1"}
    assert send["bindings"]["amqp"]["cc"] == ["toys.toy.ordered.v1"]  # the routing key
    # An operation's messages are the channel's (AsyncAPI 3.0), not components directly.
    (message_ref,) = send["messages"]
    assert message_ref["$ref"].startswith("#/channels/toys.toy.ordered.v1/messages/")


def test_every_reference_resolves() -> None:
    document = asyncapi(TOYS)
    found = refs(document)
    assert found
    for ref in found:
        assert resolve(document, ref) is not None, ref


def test_the_payload_is_the_envelope_wrapping_the_model_schema() -> None:
    document = asyncapi(TOYS)
    message = resolve(document, "#/components/messages/toys.toy.ordered.v1")
    assert message["name"] == "toys.toy.ordered.v1"
    assert message["summary"] == "A toy was ordered."
    payload = message["payload"]
    assert set(payload["properties"]) >= {
        "id", "type", "source", "subject", "time", "correlationid", "causationid",
        "traceparent", "data",
    }  # fmt: skip
    assert set(payload["required"]) >= {"id", "type", "source", "subject", "time", "data"}
    assert payload["properties"]["type"]["const"] == "toys.toy.ordered.v1"
    assert payload["properties"]["source"]["const"] == "toys"

    data = resolve(document, payload["properties"]["data"]["$ref"])
    assert data == _hoisted(ToyOrdered.model_json_schema())
    schemas = document["components"]["schemas"]
    assert {"ToyOrdered", "Line", "Money", "ShipToy"} <= set(schemas)
    assert "$defs" not in str(document)  # every nested model lives in components.schemas

    consumed = resolve(document, "#/components/messages/shipping.ship_toy.v1")["payload"]
    assert "const" not in consumed["properties"]["source"]  # any producer
    assert resolve(document, consumed["properties"]["data"]["$ref"])["required"] == ["order_id"]


def test_the_example_is_a_whole_envelope_the_chassis_reads() -> None:
    message = asyncapi(TOYS)["components"]["messages"]["toys.toy.ordered.v1"]
    (example,) = message["examples"]
    envelope = Envelope.from_dict(example["payload"])
    assert envelope.type == "toys.toy.ordered.v1"
    assert envelope.source == "toys"
    assert envelope.subject == "o-1"  # data.order_id, as declared
    assert envelope.data == EXAMPLE
    assert set(envelope.to_dict()) <= set(message["payload"]["properties"])


def test_servers_come_from_the_broker_hint_without_credentials() -> None:
    nats = asyncapi(TOYS, broker_url_hint="nats://a:4222, nats://b:4223")["servers"]
    assert nats == {
        "nats": {"host": "a:4222", "protocol": "nats"},
        "nats-2": {"host": "b:4223", "protocol": "nats"},
    }
    rabbit = asyncapi(TOYS, broker_url_hint="amqp://user:s3cret@rabbit:5672/shop")
    assert rabbit["servers"] == {
        "amqp": {"host": "rabbit:5672", "protocol": "amqp", "pathname": "/shop"}
    }
    assert "s3cret" not in str(rabbit)
    assert "servers" not in asyncapi(TOYS, broker_url_hint="memory://")


def test_declarations_are_checked_when_made() -> None:
    with pytest.raises(ValidationError):
        Published(ToyOrdered, subject="order_id", example={"order_id": "o-1"})
    with pytest.raises(ValueError, match="not a field"):
        Published(ToyOrdered, subject="toy_id", example=EXAMPLE)
    with pytest.raises(MalformedMessageError):
        MessageContracts("toys", consumes={"not-a-type": ShipToy})
    with pytest.raises(ValueError, match="both publishes and consumes"):
        MessageContracts(
            "toys",
            publishes={"toys.toy.ordered.v1": TOYS.publishes["toys.toy.ordered.v1"]},
            consumes={"toys.toy.ordered.v1": ToyOrdered},
        )


async def test_the_router_serves_the_document_outside_the_openapi() -> None:
    app = FastAPI()
    app.include_router(asyncapi_router(TOYS, version="1.2.3"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://toys") as client:
        answer = await client.get("/asyncapi.json")
        openapi = (await client.get("/openapi.json")).json()
    assert answer.status_code == 200
    assert answer.json() == asyncapi(TOYS, version="1.2.3")
    assert "/asyncapi.json" not in openapi["paths"]


def _hoisted(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's own JSON Schema with its `$defs` refs pointing into components."""
    text = json.dumps({k: v for k, v in schema.items() if k != "$defs"})
    hoisted: dict[str, Any] = json.loads(text.replace("#/$defs/", "#/components/schemas/"))
    return hoisted
