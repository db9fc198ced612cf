"""A client span per SQL statement, for statements run inside traced work."""

from __future__ import annotations

import functools
import re
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.engine import Engine

from chassis.tracing._setup import tracer

__all__ = ["trace_statements"]

_SPAN_KEY = "_mercato_span"
_TABLE = re.compile(r"\b(?:FROM|INTO|TABLE)\s+\"?(\w+)", re.IGNORECASE)
_MAX_STATEMENT = 1000


def trace_statements(engine: Engine, *, system: str, database: str) -> None:
    """Trace every statement `engine` runs inside a span (a request, a message's handling).

    Statements outside any span — a relay's or a sweeper's polling — start no trace: they
    would bury the traces people look for under thousands of one-span ones. Statements are
    parameterised, so their text holds no values.
    """

    @event.listens_for(engine, "before_cursor_execute")
    def before(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if context is None or not trace.get_current_span().get_span_context().is_valid:
            return
        span = tracer().start_span(
            _span_name(statement),
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": system,
                "db.namespace": database,
                "db.query.text": statement[:_MAX_STATEMENT],
            },
        )
        setattr(context, _SPAN_KEY, span)

    @event.listens_for(engine, "after_cursor_execute")
    def after(*args: Any) -> None:
        context = args[4]
        span = getattr(context, _SPAN_KEY, None)
        if span is not None:
            span.end()
            setattr(context, _SPAN_KEY, None)

    @event.listens_for(engine, "handle_error")
    def failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        span = getattr(context, _SPAN_KEY, None) if context is not None else None
        if span is not None:
            error = exception_context.original_exception
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()
            setattr(context, _SPAN_KEY, None)


@functools.lru_cache(maxsize=2048)  # a service runs a few hundred distinct statements
def _span_name(statement: str) -> str:
    """`SELECT orders`, `UPDATE stock`, `BEGIN`: the operation and the (first) table."""
    words = statement.split(None, 2)
    if not words:
        return "SQL"
    op = words[0].upper()
    if op == "UPDATE" and len(words) > 1:
        return "UPDATE " + words[1].strip('"')
    found = _TABLE.search(statement)
    return f"{op} {found[1]}" if found else op
