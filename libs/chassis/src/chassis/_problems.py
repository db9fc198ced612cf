"""RFC 9457 problem details: the one shape every error takes on the wire."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from chassis.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    MercatoError,
    NotFoundError,
    PreconditionFailedError,
    TooManyRequestsError,
    UnauthenticatedError,
)
from chassis.tracing import current_trace_id

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "install_problem_handlers",
    "problem_body",
    "problem_response",
    "request_problem",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"

# Most specific first; the first match decides the status.
_STATUS_BY_ERROR: tuple[tuple[type[MercatoError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (PreconditionFailedError, 428),
    (TooManyRequestsError, 429),
    (InvalidInputError, 422),
    (UnauthenticatedError, 401),
    (ForbiddenError, 403),
)


def status_for(error: MercatoError) -> int:
    for kind, status in _STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 422


def problem_body(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    slug: str | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": f"/problems/{slug}" if slug else "about:blank",
        "title": title or phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    trace_id = current_trace_id()
    if trace_id:
        body["trace_id"] = trace_id  # `mercato trace <trace_id>` shows what happened
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return orjson.dumps(body)


def problem_response(
    status: int,
    *,
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> Response:
    return Response(
        problem_body(status, **fields),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def request_problem(request: Request, status: int, **fields: Any) -> Response:
    """A problem response about `request`: its path as `instance`, its request id."""
    return problem_response(
        status, instance=request.url.path, request_id=_request_id(request), **fields
    )


def _field_path(loc: Sequence[Any]) -> tuple[str, str]:
    where = str(loc[0]) if loc else "request"
    path = ".".join(str(part) for part in loc[1:])
    return where, path


def _validation_problem(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return request_problem(
            request,
            400,
            title="Malformed JSON",
            detail="The request body is not valid JSON.",
            slug="malformed-json",
        )
    items = []
    for error in errors:
        where, path = _field_path(error.get("loc", ()))
        items.append({"location": where, "field": path, "message": str(error.get("msg", ""))})
    summary = "; ".join(
        f"{item['field'] or item['location']}: {item['message']}" for item in items[:5]
    )
    return request_problem(
        request,
        422,
        title="Invalid request",
        detail=f"{len(items)} problem(s) with the request: {summary}",
        slug="validation",
        extra={"errors": items},
    )


def _http_problem(request: Request, exc: StarletteHTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"There is no resource at {request.url.path}."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    return request_problem(
        request,
        exc.status_code,
        headers=exc.headers,
        detail=detail,
        slug={404: "not-found", 405: "method-not-allowed"}.get(exc.status_code),
    )


def _domain_problem(request: Request, exc: MercatoError) -> Response:
    status = status_for(exc)
    headers: dict[str, str] | None = None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, TooManyRequestsError):
        headers = {"Retry-After": str(max(1, exc.retry_after))}
    return request_problem(
        request,
        status,
        headers=headers,
        title=exc.title,
        detail=exc.detail,
        slug=exc.slug,
        extra=exc.extra,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the framework or the domain raises leaves as problem+json."""

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_problem(request, exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _http_problem(request, exc)

    async def on_domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MercatoError)
        return _domain_problem(request, exc)

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(MercatoError, on_domain)
