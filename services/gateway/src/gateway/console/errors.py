"""The console's errors, beside the chassis' own (`chassis.errors`), and their statuses.

    chassis.errors.MercatoError
    ├── NotAvailableHereError     the platform lacks what the action needs (501): no
    │                             supervisor to kill through, no span files to read
    └── UpstreamUnavailableError  what the console asked (the broker, the supervisor, a
                                  service) did not answer (503)

The chassis' own map the usual way: NotFoundError 404, ConflictError 409, InvalidInputError
422, UnauthenticatedError 401, ForbiddenError 403.
"""

from __future__ import annotations

from chassis.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    MercatoError,
    NotFoundError,
    TooManyRequestsError,
    UnauthenticatedError,
)

__all__ = ["NotAvailableHereError", "UpstreamUnavailableError", "status_of"]


class NotAvailableHereError(MercatoError):
    title = "Not available on this platform"
    slug = "not-available-here"


class UpstreamUnavailableError(MercatoError):
    title = "Not answering"
    slug = "upstream-unavailable"


_STATUS: tuple[tuple[type[MercatoError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooManyRequestsError, 429),
    (InvalidInputError, 422),
    (UnauthenticatedError, 401),
    (ForbiddenError, 403),
    (NotAvailableHereError, 501),
    (UpstreamUnavailableError, 503),
)


def status_of(error: MercatoError) -> int:
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 400)
