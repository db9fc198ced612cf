"""Reliable messaging: envelopes, the bus port and its brokers, outbox, inbox, dead letters."""

from chassis.messaging._bus import (
    DeadLetter,
    Delivery,
    Handler,
    MessageBus,
    RetryPolicy,
    Subscription,
)
from chassis.messaging._envelope import Envelope, MessageType
from chassis.messaging.errors import (
    BrokerUnavailableError,
    MalformedMessageError,
    MessagingError,
    PermanentError,
    TransientError,
)

__all__ = [
    "BrokerUnavailableError",
    "DeadLetter",
    "Delivery",
    "Envelope",
    "Handler",
    "MalformedMessageError",
    "MessageBus",
    "MessageType",
    "MessagingError",
    "PermanentError",
    "RetryPolicy",
    "Subscription",
    "TransientError",
]
