"""Messaging errors.

MessagingError
├── MalformedMessageError   unparseable, or fails the consumer's schema: dead-lettered now
├── TransientError          may succeed later: redelivered with backoff, then dead-lettered
├── PermanentError          will never succeed: dead-lettered at once
└── BrokerUnavailableError  the broker cannot be reached (publishers retry; readiness fails)
"""

__all__ = [
    "BrokerUnavailableError",
    "MalformedMessageError",
    "MessagingError",
    "PermanentError",
    "TransientError",
]


class MessagingError(Exception):
    pass


class MalformedMessageError(MessagingError):
    pass


class TransientError(MessagingError):
    pass


class PermanentError(MessagingError):
    pass


class BrokerUnavailableError(MessagingError):
    pass
