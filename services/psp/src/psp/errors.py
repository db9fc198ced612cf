"""The psp's errors.

chassis.errors.InvalidInputError
├── BadRequestError                  answered 400, like a provider's own request errors
│   ├── InvalidTokenError            the card token is not one the psp knows
│   └── InvalidIdempotencyKeyError   the Idempotency-Key header is empty, too long or not ASCII
├── IdempotencyKeyReusedError        the key was used before for a different request
└── AmountTooLargeError              more than the authorization (or its capture) allows
chassis.errors.PreconditionFailedError
└── IdempotencyKeyMissingError       a POST came without an Idempotency-Key header
chassis.errors.NotFoundError
└── AuthorizationNotFoundError       no authorization with that id
chassis.errors.ConflictError
└── InvalidStateError                the authorization's status forbids the operation
"""

from chassis.errors import ConflictError, InvalidInputError, NotFoundError, PreconditionFailedError

__all__ = [
    "AmountTooLargeError",
    "AuthorizationNotFoundError",
    "BadRequestError",
    "IdempotencyKeyMissingError",
    "IdempotencyKeyReusedError",
    "InvalidIdempotencyKeyError",
    "InvalidStateError",
    "InvalidTokenError",
]


class BadRequestError(InvalidInputError):
    title = "Bad request"
    slug = "bad-request"


class InvalidTokenError(BadRequestError):
    title = "Invalid token"
    slug = "invalid-token"


class InvalidIdempotencyKeyError(BadRequestError):
    title = "Invalid idempotency key"
    slug = "invalid-idempotency-key"


class IdempotencyKeyReusedError(InvalidInputError):
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"


class AmountTooLargeError(InvalidInputError):
    title = "Amount too large"
    slug = "amount-too-large"


class IdempotencyKeyMissingError(PreconditionFailedError):
    title = "Idempotency key required"
    slug = "idempotency-key-required"


class AuthorizationNotFoundError(NotFoundError):
    title = "Authorization not found"
    slug = "authorization-not-found"


class InvalidStateError(ConflictError):
    title = "Invalid authorization state"
    slug = "invalid-state"
