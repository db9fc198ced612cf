"""Users, their email addresses and roles, and the event a registration records."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from email_validator import EmailNotValidError, validate_email

from identity.errors import InvalidEmailError

__all__ = [
    "ADMIN",
    "CUSTOMER",
    "EmailAddress",
    "User",
    "UserRegistered",
    "email_lookup_key",
    "new_user",
    "normalize_email",
]

CUSTOMER = "customer"
ADMIN = "admin"

# Dot-separated DNS labels: what an operator-given address on a reserved domain must look like.
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*$")


@dataclass(frozen=True)
class EmailAddress:
    """An address as shown (`value`: domain lowercased) and as compared (`key`: all lowercase)."""

    value: str
    key: str


def normalize_email(raw: str, *, allow_reserved_domains: bool = False) -> EmailAddress:
    """Validate and normalise an address (no DNS lookups); `InvalidEmailError` if not one.

    Public sign-ups must use globally deliverable domains. An operator-configured address
    (the first admin) may use a reserved one such as `mercato.local`, which email-validator
    always refuses: its local part is then checked on a stand-in domain.
    """
    text = raw.strip()
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        if not allow_reserved_domains:
            raise InvalidEmailError(str(error)) from None
        local, _, domain = text.rpartition("@")
        domain = domain.lower()
        if not _DOMAIN.match(domain):
            raise InvalidEmailError(str(error)) from None
        try:
            result = validate_email(f"{local}@example.com", check_deliverability=False)
        except EmailNotValidError as local_error:
            raise InvalidEmailError(str(local_error)) from None
        value = f"{result.local_part}@{domain}"
        return EmailAddress(value, value.lower())
    return EmailAddress(result.normalized, result.normalized.lower())


def email_lookup_key(raw: str) -> str:
    """The key to look an account up by, for any text a sign-in form may send.

    Never raises: an address that is not valid cannot match an account, and sign-in must
    answer it exactly like a wrong password.
    """
    try:
        return normalize_email(raw, allow_reserved_domains=True).key
    except InvalidEmailError:
        return unicodedata.normalize("NFC", raw.strip()).lower()


@dataclass(frozen=True)
class User:
    id: str
    email: str
    email_key: str
    name: str
    password_hash: str
    roles: frozenset[str]
    created_at: datetime
    updated_at: datetime

    def with_password_hash(self, password_hash: str, *, now: datetime) -> User:
        return replace(self, password_hash=password_hash, updated_at=now)

    def with_roles(self, *roles: str, now: datetime) -> User:
        wanted = self.roles | set(roles)
        return self if wanted == self.roles else replace(self, roles=wanted, updated_at=now)


@dataclass(frozen=True)
class UserRegistered:
    """A user signed up. Collected by the unit of work; published once messaging exists."""

    user_id: str
    email: str
    name: str
    occurred_at: datetime


def new_user(
    *,
    email: EmailAddress,
    name: str,
    password_hash: str,
    now: datetime,
    roles: frozenset[str] = frozenset({CUSTOMER}),
) -> tuple[User, UserRegistered]:
    user = User(
        id=str(uuid.uuid4()),
        email=email.value,
        email_key=email.key,
        name=name,
        password_hash=password_hash,
        roles=roles,
        created_at=now,
        updated_at=now,
    )
    return user, UserRegistered(user.id, user.email, user.name, now)
