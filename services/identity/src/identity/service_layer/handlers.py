"""Identity's use cases: plain functions over a unit of work and an `Authority`.

Password hashing runs in a thread and outside any transaction: it is slow on purpose, and a
transaction held open meanwhile would make other writers wait (SQLite has one writer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from identity.domain.keys import (
    KeyCipher,
    KeyPolicy,
    SigningKey,
    active_key,
    new_signing_key,
    published_keys,
    rotation_due,
)
from identity.domain.passwords import check_password, normalize_password
from identity.domain.throttling import (
    LoginLimits,
    account_subject,
    address_subject,
    retry_after,
)
from identity.domain.tokens import (
    TokenPair,
    TokenPolicy,
    access_claims,
    hash_refresh_token,
    new_refresh_token,
    sign_access_token,
)
from identity.domain.users import (
    ADMIN,
    CUSTOMER,
    User,
    email_lookup_key,
    new_user,
    normalize_email,
)
from identity.errors import (
    EmailTakenError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    TooManyAttemptsError,
    UserNotFoundError,
)
from identity.service_layer.ports import IdentityUnitOfWork, PasswordHasher

UnitOfWorkFactory = Callable[[], IdentityUnitOfWork]

log = logging.getLogger("identity")

ADMIN_NAME = "Administrator"


@dataclass(frozen=True)
class Authority:
    """What the handlers need besides storage to vouch for users; built by bootstrap."""

    hasher: PasswordHasher
    cipher: KeyCipher
    tokens: TokenPolicy
    keys: KeyPolicy
    limits: LoginLimits


async def register(
    uow: IdentityUnitOfWork,
    authority: Authority,
    *,
    email: str,
    password: str,
    name: str,
    now: datetime,
) -> User:
    address = normalize_email(email)
    check_password(password, email=address.value)
    password_hash = await asyncio.to_thread(authority.hasher.hash, normalize_password(password))
    async with uow:
        if await uow.users.get_by_email(address.key) is not None:
            raise EmailTakenError()
        user, registered = new_user(email=address, name=name, password_hash=password_hash, now=now)
        await uow.users.add(user)
        uow.record(registered)
        await uow.commit()
    log.info("user_registered", extra={"user_id": user.id})
    return user


async def sign_in(
    uow: IdentityUnitOfWork,
    authority: Authority,
    *,
    email: str,
    password: str,
    address: str,
    now: datetime,
) -> TokenPair:
    """A token pair for the right email and password, starting a new refresh-token family.

    Unknown email and wrong password fail alike (same error, one hash verification each).
    A throttled account or address is refused before its password is even checked.
    """
    key = email_lookup_key(email)
    account, client = account_subject(key), address_subject(address)
    limits = authority.limits
    since = now - limits.window
    async with uow:
        waits = [
            retry_after(
                await uow.login_attempts.failures_since(subject, since=since),
                limit=limit,
                window=limits.window,
                now=now,
            )
            for subject, limit in ((account, limits.per_account), (client, limits.per_address))
        ]
        user = await uow.users.get_by_email(key)
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        log.info("sign_in_throttled", extra={"retry_after": wait})
        raise TooManyAttemptsError(wait)

    secret = normalize_password(password)
    stored = user.password_hash if user is not None else None
    matches = await asyncio.to_thread(authority.hasher.verify, stored, secret)
    if user is None or not matches:
        async with uow:
            await uow.login_attempts.record_failure([account, client], at=now)
            await uow.commit()
        log.info("sign_in_failed", extra={"user_id": user.id if user else None})
        raise InvalidCredentialsError()

    if authority.hasher.needs_rehash(user.password_hash):
        user = user.with_password_hash(
            await asyncio.to_thread(authority.hasher.hash, secret), now=now
        )
        rehashed = True
    else:
        rehashed = False
    async with uow:
        await uow.login_attempts.clear(account)
        if rehashed:
            await uow.users.save(user)
        pair = await _issue(uow, authority, user, family_id=None, now=now)
        await uow.commit()
    return pair


async def refresh(
    uow: IdentityUnitOfWork, authority: Authority, *, refresh_token: str, now: datetime
) -> TokenPair:
    """Swap a refresh token for a new pair of the same family (each token works once).

    Presenting a token that was already swapped revokes its whole family: either its
    rightful owner or a thief holds a copy, and we cannot tell which.
    """
    async with uow:
        token = await uow.refresh_tokens.get_by_hash(hash_refresh_token(refresh_token))
        if token is None:
            raise InvalidRefreshTokenError()
        reused = token.is_spent
        if not reused and not token.is_expired(now):
            # Loses to a concurrent refresh with the same token: that is reuse too.
            reused = not await uow.refresh_tokens.mark_rotated(token.id, at=now)
        if reused:
            await uow.refresh_tokens.revoke_family(token.family_id, at=now)
            await uow.commit()
            if token.revoked_at is None:
                log.warning(
                    "refresh_token_reused",
                    extra={"user_id": token.user_id, "family_id": token.family_id},
                )
            raise InvalidRefreshTokenError()
        if token.is_expired(now):
            raise InvalidRefreshTokenError()
        user = await uow.users.get(token.user_id)
        if user is None:
            raise InvalidRefreshTokenError()
        pair = await _issue(uow, authority, user, family_id=token.family_id, now=now)
        await uow.commit()
    return pair


async def sign_out(uow: IdentityUnitOfWork, *, refresh_token: str, now: datetime) -> None:
    """Revoke the family of `refresh_token`; quietly nothing if it is unknown."""
    async with uow:
        token = await uow.refresh_tokens.get_by_hash(hash_refresh_token(refresh_token))
        if token is None:
            return
        await uow.refresh_tokens.revoke_family(token.family_id, at=now)
        await uow.commit()


async def get_user(uow: IdentityUnitOfWork, user_id: str) -> User:
    async with uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise UserNotFoundError("the signed-in user does not exist (any more)")
    return user


async def ensure_admin(
    uow: IdentityUnitOfWork,
    authority: Authority,
    *,
    email: str,
    password: str,
    now: datetime,
) -> User:
    """The first admin, from settings: created, or updated to hold the admin role and
    `password`. Idempotent: once it matches, nothing is written."""
    address = normalize_email(email, allow_reserved_domains=True)
    check_password(password, email=address.value)
    secret = normalize_password(password)
    async with uow:
        existing = await uow.users.get_by_email(address.key)
    if existing is None:
        password_hash = await asyncio.to_thread(authority.hasher.hash, secret)
        admin, registered = new_user(
            email=address,
            name=ADMIN_NAME,
            password_hash=password_hash,
            now=now,
            roles=frozenset({ADMIN, CUSTOMER}),
        )
        try:
            async with uow:
                await uow.users.add(admin)
                uow.record(registered)
                await uow.commit()
        except EmailTakenError:  # another replica created it at the same moment
            return await ensure_admin(uow, authority, email=email, password=password, now=now)
        log.info("admin_created", extra={"user_id": admin.id})
        return admin

    updated = existing.with_roles(ADMIN, CUSTOMER, now=now)
    hasher = authority.hasher
    if hasher.needs_rehash(existing.password_hash) or not await asyncio.to_thread(
        hasher.verify, existing.password_hash, secret
    ):
        updated = updated.with_password_hash(await asyncio.to_thread(hasher.hash, secret), now=now)
    if updated != existing:
        async with uow:
            await uow.users.save(updated)
            await uow.commit()
        log.info("admin_updated", extra={"user_id": updated.id})
    return updated


async def rotate_signing_key(
    uow: IdentityUnitOfWork, authority: Authority, *, now: datetime, force: bool = False
) -> SigningKey | None:
    """Start signing with a new key when forced, when there is none, when the active one is
    older than the rotation period, or when it cannot be opened (the key secret changed).

    The previous key stays published until the tokens it signed have expired. Returns the
    new key, or None when no rotation was due (or another replica just rotated).
    """
    async with uow:
        keys = await uow.signing_keys.all()
        current = active_key(keys)
        due = (
            force
            or rotation_due(current, now=now, policy=authority.keys)
            or (current is not None and not authority.cipher.can_open(current))
        )
        if not due:
            return None
        if current is not None:
            if not await uow.signing_keys.retire(current.retire(now=now, policy=authority.keys)):
                return None
            for other in keys:  # several replicas may have made the very first key at once
                if other.is_active and other.kid != current.kid:
                    await uow.signing_keys.retire(other.retire(now=now, policy=authority.keys))
        key = new_signing_key(authority.cipher, now=now)
        await uow.signing_keys.add(key)
        await uow.commit()
    log.info(
        "signing_key_rotated",
        extra={"kid": key.kid, "previous_kid": current.kid if current else None},
    )
    return key


async def public_signing_keys(uow: IdentityUnitOfWork, *, now: datetime) -> list[SigningKey]:
    """The keys a verifier needs now: the active one and those retired recently."""
    async with uow:
        keys = await uow.signing_keys.all()
    return published_keys(keys, now=now)


async def prune(uow: IdentityUnitOfWork, authority: Authority, *, now: datetime) -> None:
    """Forget what can no longer matter: expired refresh tokens, failures outside the
    throttling window, retired keys no longer published."""
    async with uow:
        await uow.refresh_tokens.delete_expired(before=now)
        await uow.login_attempts.delete_older_than(now - authority.limits.window)
        await uow.signing_keys.delete_unpublished(before=now)
        await uow.commit()


async def _issue(
    uow: IdentityUnitOfWork,
    authority: Authority,
    user: User,
    *,
    family_id: str | None,
    now: datetime,
) -> TokenPair:
    key = active_key(await uow.signing_keys.all())
    if key is None:  # start-up makes one; this covers a sign-in racing that
        key = new_signing_key(authority.cipher, now=now)
        await uow.signing_keys.add(key)
    claims = access_claims(user, now=now, policy=authority.tokens)
    access_token = sign_access_token(claims, key, authority.cipher)
    refresh_token, record = new_refresh_token(
        user_id=user.id, family_id=family_id, now=now, policy=authority.tokens
    )
    await uow.refresh_tokens.add(record)
    return TokenPair(
        access_token=access_token,
        expires_in=int(authority.tokens.access_lifetime.total_seconds()),
        refresh_token=refresh_token,
    )
