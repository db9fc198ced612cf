"""Errors a Mercato service raises, by what went wrong rather than by HTTP status.

Only the edge (`create_app`'s problem handlers) maps them to status codes, so domain and
service-layer code never speaks HTTP.

    MercatoError
    ├── DomainError                 a business rule said no
    │   ├── NotFoundError           the thing asked for does not exist (or is not yours)
    │   ├── ConflictError           it exists already, or its state forbids the change
    │   ├── InvalidInputError       the request is well-formed but makes no sense
    │   ├── PreconditionFailedError a required precondition (e.g. a header) is missing
    │   └── TooManyRequestsError    slow down: try again after `retry_after` seconds
    ├── AuthError
    │   ├── UnauthenticatedError    no, expired or forged credentials
    │   └── ForbiddenError          known caller, not allowed
    └── ConfigurationError          a setting is missing or invalid (stops the process)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "ConfigurationError",
    "ConflictError",
    "DomainError",
    "ForbiddenError",
    "InvalidInputError",
    "MercatoError",
    "NotFoundError",
    "PreconditionFailedError",
    "TooManyRequestsError",
    "UnauthenticatedError",
]


class MercatoError(Exception):
    """Base of every error Mercato code raises on purpose.

    `detail` is shown to the client, so it must never hold secrets; `extra` adds fields to
    the problem document (e.g. `{"sku": "..."}`).
    """

    title = "Error"
    slug = "error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class DomainError(MercatoError):
    title = "Request refused"
    slug = "domain-error"


class NotFoundError(DomainError):
    title = "Not found"
    slug = "not-found"


class ConflictError(DomainError):
    title = "Conflict"
    slug = "conflict"


class InvalidInputError(DomainError):
    title = "Invalid input"
    slug = "invalid-input"


class PreconditionFailedError(DomainError):
    title = "Precondition required"
    slug = "precondition-required"


class TooManyRequestsError(DomainError):
    title = "Too many requests"
    slug = "too-many-requests"

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class AuthError(MercatoError):
    title = "Not allowed"
    slug = "auth"


class UnauthenticatedError(AuthError):
    title = "Unauthenticated"
    slug = "unauthenticated"


class ForbiddenError(AuthError):
    title = "Forbidden"
    slug = "forbidden"


class ConfigurationError(MercatoError):
    title = "Configuration error"
    slug = "configuration"
