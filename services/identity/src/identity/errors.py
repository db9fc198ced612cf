"""Identity's errors.

chassis.errors.ConflictError
└── EmailTakenError            an account with that email address exists already
chassis.errors.InvalidInputError
├── InvalidEmailError          not an email address we can accept
└── WeakPasswordError          the password breaks the password policy
chassis.errors.NotFoundError
└── UserNotFoundError          the signed-in user no longer exists
chassis.errors.UnauthenticatedError
├── InvalidCredentialsError    unknown email or wrong password (one error for both)
└── InvalidRefreshTokenError   unknown, expired, revoked or reused refresh token
chassis.errors.TooManyRequestsError
└── TooManyAttemptsError       login throttled; `retry_after` seconds to wait

Details never carry a password, a hash or a token.
"""

from typing import Any

from chassis.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    TooManyRequestsError,
    UnauthenticatedError,
)

__all__ = [
    "EmailTakenError",
    "InvalidCredentialsError",
    "InvalidEmailError",
    "InvalidRefreshTokenError",
    "TooManyAttemptsError",
    "UserNotFoundError",
    "WeakPasswordError",
]


class _FieldError(InvalidInputError):
    """An invalid field, reported in the same `errors` shape as schema validation."""

    field = ""

    def __init__(self, message: str) -> None:
        super().__init__(
            f"{self.field}: {message}",
            errors=[{"location": "body", "field": self.field, "message": message}],
        )


class InvalidEmailError(_FieldError):
    title = "Invalid email address"
    slug = "invalid-email"
    field = "email"


class WeakPasswordError(_FieldError):
    title = "Password refused"
    slug = "weak-password"
    field = "password"


class EmailTakenError(ConflictError):
    title = "Email address taken"
    slug = "email-taken"

    def __init__(self) -> None:
        super().__init__("an account with this email address exists already")


class UserNotFoundError(NotFoundError):
    title = "User not found"
    slug = "user-not-found"


class InvalidCredentialsError(UnauthenticatedError):
    title = "Invalid credentials"
    slug = "invalid-credentials"

    def __init__(self) -> None:
        super().__init__("the email address or the password is wrong")


class InvalidRefreshTokenError(UnauthenticatedError):
    title = "Invalid refresh token"
    slug = "invalid-refresh-token"

    def __init__(self) -> None:
        super().__init__("the refresh token is invalid, expired or revoked; sign in again")


class TooManyAttemptsError(TooManyRequestsError):
    title = "Too many attempts"
    slug = "too-many-attempts"

    def __init__(self, retry_after: int, **extra: Any) -> None:
        super().__init__(
            f"too many failed sign-in attempts; try again in {retry_after} s",
            retry_after=retry_after,
            **extra,
        )
