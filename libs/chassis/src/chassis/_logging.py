"""Structured JSON logs on stdout, one object per line, secrets redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import IO, Any, BinaryIO, cast

import orjson
import structlog

from chassis.tracing import add_trace_ids

__all__ = ["configure_logging", "redact"]

# Keys whose values must never reach a log line, whatever logged them.
_SECRET_KEYS = frozenset(
    {
        "password", "new_password", "token", "access_token", "refresh_token", "authorization",
        "secret", "internal_secret", "api_key", "card", "card_number", "cvc", "payment_token",
        "cookie", "set-cookie", "x-mercato-principal",
    }
)  # fmt: skip


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in _SECRET_KEYS.intersection(event):
        event[key] = "[redacted]"
    return event


def _json(event: MutableMapping[str, Any], **_: Any) -> bytes:
    return orjson.dumps(event, default=str)


class _LineHandler(logging.Handler):
    """Writes standard-library records to the same binary stream as structlog."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record).encode("utf-8", "replace") + b"\n")
            self.stream.flush()
        except Exception:
            self.handleError(record)


def configure_logging(
    *, service: str, instance: str, level: str = "info", stream: IO[bytes] | None = None
) -> None:
    """Route structlog and the standard library (uvicorn, SQLAlchemy…) to JSON lines on
    `stream` (stdout by default)."""
    numeric = logging.getLevelName(level.upper())
    output = stream if stream is not None else sys.stdout.buffer

    def add_origin(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("service", service)
        event.setdefault("instance", instance)
        event.pop("color_message", None)  # uvicorn's ANSI copy of the message
        return event

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        add_origin,
        add_trace_ids,
        redact,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_json),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.BytesLoggerFactory(cast(BinaryIO, output)),
        # Not cached: loggers made before a reconfiguration (tests, reloads) follow it.
        cache_logger_on_first_use=False,
    )
    handler = _LineHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(
                    serializer=lambda event, **_: orjson.dumps(event, default=str).decode()
                ),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # uvicorn's access log duplicates ours (which carries the request id).
    logging.getLogger("uvicorn.access").disabled = True
    # Alembic announces every plugin it loads; only the migrations it runs are news.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("alembic.runtime.migration").setLevel(numeric)
