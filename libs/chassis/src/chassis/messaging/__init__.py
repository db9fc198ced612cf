"""Reliable messaging: envelopes, the bus port and its brokers, outbox, inbox, dead letters,
and the contracts (AsyncAPI) of what a service publishes and consumes."""

from chassis.messaging._bus import (
    DeadLetter,
    Delivery,
    Handler,
    MessageBus,
    RetryPolicy,
    Subscription,
)
from chassis.messaging._contracts import MessageContracts, Published, asyncapi, asyncapi_router
from chassis.messaging._envelope import Envelope, MessageType
from chassis.messaging._factory import bus_from_url
from chassis.messaging._inbox import Inbox, idempotent
from chassis.messaging._memory import InMemoryMessageBus
from chassis.messaging._nats import NatsJetStreamBus
from chassis.messaging._outbox import OutboxRelay, record_events
from chassis.messaging._rabbitmq import RabbitMqBus
from chassis.messaging._runtime import Messaging
from chassis.messaging._tables import (
    INBOX_TABLE,
    OUTBOX_TABLE,
    add_messaging_tables,
    create_messaging_tables,
    drop_messaging_tables,
)
from chassis.messaging.errors import (
    BrokerUnavailableError,
    MalformedMessageError,
    MessagingError,
    PermanentError,
    TransientError,
)

__all__ = [
    "INBOX_TABLE",
    "OUTBOX_TABLE",
    "BrokerUnavailableError",
    "DeadLetter",
    "Delivery",
    "Envelope",
    "Handler",
    "InMemoryMessageBus",
    "Inbox",
    "MalformedMessageError",
    "MessageBus",
    "MessageContracts",
    "MessageType",
    "Messaging",
    "MessagingError",
    "NatsJetStreamBus",
    "OutboxRelay",
    "PermanentError",
    "Published",
    "RabbitMqBus",
    "RetryPolicy",
    "Subscription",
    "TransientError",
    "add_messaging_tables",
    "asyncapi",
    "asyncapi_router",
    "bus_from_url",
    "create_messaging_tables",
    "drop_messaging_tables",
    "idempotent",
    "record_events",
]
