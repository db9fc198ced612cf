"""What a service publishes and consumes, declared once, and its AsyncAPI 3.0 document.

A service declares its message contracts next to its entrypoints:

    CONTRACTS = MessageContracts(
        "catalog",
        publishes={"catalog.product.created.v1": Published(ProductCreatedV1, subject="product_id",
                                                           example={...})},
        consumes={"identity.user.registered.v1": UserRegistered},   # its own reading schema
    )

`asyncapi(CONTRACTS, version=...)` renders the document (`asyncapi_router` serves it at
`GET /asyncapi.json`). Each message is the chassis `Envelope` as it travels (CloudEvents
attributes), whose `data` is the pydantic model's JSON Schema; the channel address is the
NATS subject `mercato.<type>`, and the RabbitMQ routing key (the type itself, on the topic
exchange `mercato.events`) is in the channel's description and the AMQP bindings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from chassis.messaging._envelope import MessageType
from chassis.messaging._nats import subject_for
from chassis.messaging._rabbitmq import _CONTENT_TYPE, EXCHANGE

__all__ = ["MessageContracts", "Published", "asyncapi", "asyncapi_router"]

ASYNCAPI_VERSION: Final = "3.0.0"
_SCHEMAS: Final = "#/components/schemas/{model}"
_AMQP_BINDING: Final = "0.3.0"
_EXAMPLE_TIME: Final = "2026-01-01T12:00:00Z"
_EXAMPLE_ID: Final = "0b9f6c3e-8a51-4c1e-9a3f-2f1d5e7c4b10"


@dataclass(frozen=True)
class Published:
    """A message a service publishes: the schema of its `data`, the `data` field whose value
    is the envelope `subject` (the aggregate the message is about), and a realistic example
    of its `data` (checked against `data` when declared)."""

    data: type[BaseModel]
    subject: str
    example: Mapping[str, Any]
    summary: str = ""

    def __post_init__(self) -> None:
        if self.subject not in self.data.model_fields:
            raise ValueError(f"subject {self.subject!r} is not a field of {self.data.__name__}")
        self.data.model_validate(self.example)  # a wrong example fails at import, loudly


@dataclass(frozen=True, eq=False)
class MessageContracts:
    """Every message type `service` publishes (with its contract) and consumes (with the
    service's own schema of the `data` it reads). A service does not consume its own types."""

    service: str
    publishes: Mapping[str, Published] = field(default_factory=dict)
    consumes: Mapping[str, type[BaseModel]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.service:
            raise ValueError("a contract names its service")
        for type_ in (*self.publishes, *self.consumes):
            MessageType.parse(type_)
        both = sorted(set(self.publishes) & set(self.consumes))
        if both:
            raise ValueError(f"{self.service} both publishes and consumes {both}")
        object.__setattr__(self, "publishes", MappingProxyType(dict(self.publishes)))
        object.__setattr__(self, "consumes", MappingProxyType(dict(self.consumes)))


def asyncapi(
    contracts: MessageContracts, *, version: str = "0.1.0", broker_url_hint: str | None = None
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of `contracts`. `broker_url_hint` (e.g. the service's
    broker URL) adds the broker as a server, without any credentials it holds."""
    data_schemas, schemas = _data_schemas(contracts)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    directions = [
        ("send", type_, published.data) for type_, published in contracts.publishes.items()
    ] + [("receive", type_, model) for type_, model in contracts.consumes.items()]
    for action, type_, model in sorted(directions, key=lambda item: item[1]):
        published = contracts.publishes.get(type_)
        channels[type_] = {
            "address": subject_for(type_),
            "title": type_,
            "description": (
                f"NATS subject `{subject_for(type_)}`; RabbitMQ routing key `{type_}` "
                f"on the topic exchange `{EXCHANGE}`."
            ),
            "messages": {type_: {"$ref": f"#/components/messages/{type_}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": EXCHANGE,
                        "type": "topic",
                        "durable": True,
                        "autoDelete": False,
                    },
                    "bindingVersion": _AMQP_BINDING,
                }
            },
        }
        amqp: dict[str, Any] = (
            {"cc": [type_], "deliveryMode": 2} if action == "send" else {"ack": True}
        )
        operations[f"{action}.{type_}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{type_}"},
            "messages": [{"$ref": f"#/channels/{type_}/messages/{type_}"}],
            "bindings": {"amqp": {**amqp, "bindingVersion": _AMQP_BINDING}},
        }
        messages[type_] = _message(contracts.service, type_, model, published, data_schemas)
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"Mercato {contracts.service}",
            "version": version,
            "description": (
                f"The messages {contracts.service} publishes (send) and consumes (receive), "
                "each in the chassis envelope (CloudEvents attributes)."
            ),
        },
        "defaultContentType": _CONTENT_TYPE,
    }
    servers = _servers(broker_url_hint)
    if servers:
        document["servers"] = servers
    document["channels"] = channels
    document["operations"] = operations
    document["components"] = {"messages": messages, "schemas": schemas}
    return document


def asyncapi_router(
    contracts: MessageContracts, *, version: str = "0.1.0", broker_url_hint: str | None = None
) -> APIRouter:
    """`GET /asyncapi.json`: the service's AsyncAPI document (not in its OpenAPI)."""
    document = asyncapi(contracts, version=version, broker_url_hint=broker_url_hint)
    router = APIRouter()

    @router.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_document() -> JSONResponse:
        return JSONResponse(document)

    return router


def _data_schemas(contracts: MessageContracts) -> tuple[dict[type[BaseModel], Any], Any]:
    """Every `data` model's JSON Schema in one namespace, so `$ref`s point into components."""
    models = dict.fromkeys(
        [published.data for published in contracts.publishes.values()]
        + list(contracts.consumes.values())
    )
    mode: JsonSchemaMode = "validation"
    refs, top = models_json_schema([(model, mode) for model in models], ref_template=_SCHEMAS)
    by_model = {model: refs[(model, mode)] for model in models}
    return by_model, top.get("$defs", {})


def _message(
    service: str,
    type_: str,
    model: type[BaseModel],
    published: Published | None,
    data_schemas: Mapping[type[BaseModel], Any],
) -> dict[str, Any]:
    summary = published.summary if published else ""
    doc = " ".join((model.__doc__ or "").strip().split("\n\n", 1)[0].split())
    message: dict[str, Any] = {
        "name": type_,
        "title": model.__name__,
        "summary": summary or doc or type_,
        "contentType": _CONTENT_TYPE,
        "correlationId": {
            "description": "ties every message of one business flow together",
            "location": "$message.payload#/correlationid",
        },
        "payload": _envelope(
            type_,
            source=service if published else None,
            subject=published.subject if published else None,
            data=data_schemas[model],
        ),
    }
    if published is not None:
        example = {
            "specversion": "1.0",
            "id": _EXAMPLE_ID,
            "type": type_,
            "source": service,
            "subject": str(published.example[published.subject]),
            "time": _EXAMPLE_TIME,
            "datacontenttype": "application/json",
            "data": dict(published.example),
        }
        message["examples"] = [{"name": "example", "payload": example}]
    return message


def _envelope(type_: str, *, source: str | None, subject: str | None, data: Any) -> Any:
    """The envelope's JSON Schema, as `Envelope.to_dict` writes it."""

    def text(description: str, **more: Any) -> dict[str, Any]:
        return {"type": "string", "description": description, **more}

    source_schema = text("the producing service")
    if source is not None:
        source_schema["const"] = source
    return {
        "type": "object",
        "required": ["specversion", "id", "type", "source", "subject", "time", "data"],
        "properties": {
            "specversion": text("CloudEvents version", const="1.0"),
            "id": text("unique; the same across redeliveries", minLength=1),
            "type": text("the message type", const=type_),
            "source": source_schema,
            "subject": text(
                f"the aggregate the message is about: data.{subject}"
                if subject
                else "the aggregate the message is about (ordering holds per subject)",
                minLength=1,
            ),
            "time": text("when it happened (UTC)", format="date-time"),
            "datacontenttype": text("the content type of data", const="application/json"),
            "correlationid": text("ties every message of one business flow together"),
            "causationid": text("the id of the message that caused this one"),
            "traceparent": text("W3C trace context"),
            "data": data,
        },
    }


def _servers(url: str | None) -> dict[str, Any]:
    """Servers named by a broker URL (`nats://a,nats://b`, `amqp://…`); never credentials."""
    if not url:
        return {}
    servers: dict[str, Any] = {}
    for part in (piece.strip() for piece in url.split(",") if piece.strip()):
        parts = urlsplit(part)
        scheme = parts.scheme.lower()
        try:
            port = parts.port
        except ValueError:  # a hint, not a setting: a bad port only loses the server
            continue
        if not parts.hostname or scheme not in ("nats", "tls", "amqp", "amqps"):
            continue
        host = parts.hostname if port is None else f"{parts.hostname}:{port}"
        protocol = "nats" if scheme in ("nats", "tls") else scheme
        server: dict[str, Any] = {"host": host, "protocol": protocol}
        if protocol.startswith("amqp"):
            server["pathname"] = parts.path or "/"
        same = sum(1 for other in servers.values() if other["protocol"] == protocol)
        servers[f"{protocol}-{same + 1}" if same else protocol] = server
    return servers
