"""Messaging metrics, in Prometheus naming, shared by every bus adapter (default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "DEAD_LETTERS_STORED",
    "HANDLING_DURATION",
    "MESSAGES_CONSUMED",
    "MESSAGES_PUBLISHED",
]

MESSAGES_PUBLISHED = Counter(
    "mercato_messages_published_total",
    "Envelopes the broker accepted (acked/confirmed), by message type",
    ["type"],
)
MESSAGES_CONSUMED = Counter(
    "mercato_messages_consumed_total",
    "Deliveries handled, by consumer, message type and outcome (ack, retry, dead_letter)",
    ["consumer", "type", "outcome"],
)
DEAD_LETTERS = Counter(
    "mercato_dead_letters_total",
    "Messages stored as dead letters, by consumer",
    ["consumer"],
)
CONSUMER_LAG = Gauge(
    "mercato_consumer_lag_messages",
    "Messages the broker holds for a consumer and has not delivered yet, as last sampled",
    ["consumer"],
)
DEAD_LETTERS_STORED = Gauge(
    "mercato_dead_letters_stored",
    "Dead letters waiting in the broker's store (every consumer's), as last sampled",
)
HANDLING_DURATION = Histogram(
    "mercato_message_handling_duration_seconds",
    "Time a consumer's handler took for one delivery",
    ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
