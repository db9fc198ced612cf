"""Identity's use cases on in-memory fakes, with a clock that moves only when told."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import jwt
import pytest

from identity.adapters.memory import FakeClock, InMemoryIdentityUnitOfWork, InMemoryState
from identity.adapters.passwords import Argon2PasswordHasher
from identity.bootstrap import build_authority
from identity.domain.keys import KeyCipher, jwk_set
from identity.domain.tokens import (
    RefreshToken,
    TokenPair,
    hash_refresh_token,
    verify_access_token,
)
from identity.domain.users import UserRegistered
from identity.errors import (
    EmailTakenError,
    InvalidCredentialsError,
    InvalidEmailError,
    InvalidRefreshTokenError,
    TooManyAttemptsError,
    WeakPasswordError,
)
from identity.service_layer import handlers
from identity.service_layer.handlers import Authority
from identity.settings import IdentitySettings

PASSWORD = "correct horse battery"


@pytest.fixture
def authority(settings: IdentitySettings, hasher: Argon2PasswordHasher) -> Authority:
    return build_authority(settings, hasher=hasher)


@pytest.fixture
def uow() -> InMemoryIdentityUnitOfWork:
    return InMemoryIdentityUnitOfWork()


class CountingHasher(Argon2PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified: list[str | None] = []

    def verify(self, password_hash: str | None, password: str) -> bool:
        self.verified.append(password_hash)
        return super().verify(password_hash, password)


async def register(
    uow: InMemoryIdentityUnitOfWork,
    authority: Authority,
    clock: FakeClock,
    email: str = "alice@example.com",
) -> str:
    user = await handlers.register(
        uow, authority, email=email, password=PASSWORD, name="Alice", now=clock()
    )
    return user.id


async def sign_in(
    uow: InMemoryIdentityUnitOfWork,
    authority: Authority,
    clock: FakeClock,
    *,
    email: str = "alice@example.com",
    password: str = PASSWORD,
    address: str = "192.0.2.1",
) -> TokenPair:
    return await handlers.sign_in(
        uow, authority, email=email, password=password, address=address, now=clock()
    )


async def jwks(uow: InMemoryIdentityUnitOfWork, clock: FakeClock) -> dict[str, Any]:
    return jwk_set(await handlers.public_signing_keys(uow, now=clock()))


def verify(token: str, keys: dict[str, Any], clock: FakeClock) -> dict[str, Any]:
    return verify_access_token(
        token, keys, issuer="mercato-identity", audience="mercato", now=clock()
    )


# -- registration ---------------------------------------------------------------------------


async def test_registering_stores_a_customer_and_records_an_event(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    user = await handlers.register(
        uow, authority, email="  Alice@Example.COM ", password=PASSWORD, name="Alice", now=clock()
    )
    assert uow.commits == 1
    stored = uow.committed.users[user.id]
    assert (stored.email, stored.email_key) == ("Alice@example.com", "alice@example.com")
    assert stored.roles == frozenset({"customer"})
    assert stored.created_at == clock()
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert uow.events == [UserRegistered(user.id, "Alice@example.com", "Alice", clock())]


@pytest.mark.parametrize("again", ["alice@example.com", "ALICE@example.com", " alice@EXAMPLE.com "])
async def test_an_email_registers_once_whatever_its_case(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock, again: str
) -> None:
    await register(uow, authority, clock)
    with pytest.raises(EmailTakenError) as caught:
        await register(uow, authority, clock, email=again)
    assert caught.value.detail == "an account with this email address exists already"
    assert uow.commits == 1
    assert len(uow.committed.users) == 1
    assert len(uow.events) == 1


async def test_weak_passwords_and_bad_emails_store_nothing(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    with pytest.raises(WeakPasswordError):
        await handlers.register(
            uow, authority, email="a@example.com", password="password1234", name="A", now=clock()
        )
    with pytest.raises(InvalidEmailError):
        await handlers.register(
            uow, authority, email="not-an-email", password=PASSWORD, name="A", now=clock()
        )
    assert uow.commits == 0
    assert uow.committed.users == {}


# -- signing in -----------------------------------------------------------------------------


async def test_signing_in_issues_a_verifiable_access_token_and_a_refresh_token(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    user_id = await register(uow, authority, clock)
    pair = await sign_in(uow, authority, clock, email="ALICE@example.com ")

    assert (pair.token_type, pair.expires_in) == ("Bearer", 300)
    claims = verify(pair.access_token, await jwks(uow, clock), clock)
    assert claims["sub"] == user_id
    assert claims["roles"] == ["customer"]
    assert claims["email"] == "alice@example.com"
    assert claims["exp"] == claims["iat"] + 300 == claims["nbf"] + 300
    header = jwt.get_unverified_header(pair.access_token)
    assert (header["alg"], header["typ"]) == ("EdDSA", "at+jwt")

    assert len(pair.refresh_token) >= 43  # 32 random bytes, base64url
    [stored] = uow.committed.refresh_tokens.values()
    assert stored.token_hash == hash_refresh_token(pair.refresh_token)
    assert pair.refresh_token not in repr(uow.committed)
    assert stored.expires_at == clock() + timedelta(days=14)


async def test_unknown_email_and_wrong_password_fail_alike_and_cost_alike(
    uow: InMemoryIdentityUnitOfWork, settings: IdentitySettings, clock: FakeClock
) -> None:
    hasher = CountingHasher()
    authority = build_authority(settings, hasher=hasher)
    await register(uow, authority, clock)

    with pytest.raises(InvalidCredentialsError) as wrong:
        await sign_in(uow, authority, clock, password="wrong horse battery")
    with pytest.raises(InvalidCredentialsError) as unknown:
        await sign_in(uow, authority, clock, email="nobody@example.com")
    with pytest.raises(InvalidCredentialsError) as nonsense:
        await sign_in(uow, authority, clock, email="not an email at all")

    problems = {(e.value.title, e.value.detail, tuple(e.value.extra)) for e in (wrong, unknown)}
    assert len(problems | {(nonsense.value.title, nonsense.value.detail, ())}) == 1
    # one real verification each; unknown accounts verify a dummy hash
    assert len(hasher.verified) == 3
    assert hasher.verified[0] is not None
    assert hasher.verified[1:] == [None, None]


async def test_an_account_is_throttled_after_five_failures_until_the_window_passes(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    await register(uow, authority, clock)
    for n in range(5):
        with pytest.raises(InvalidCredentialsError):
            await sign_in(
                uow, authority, clock, password="wrong horse battery", address=f"10.0.0.{n}"
            )
        clock.advance(60)
    # the sixth attempt is refused before the password is checked, even the right one
    with pytest.raises(TooManyAttemptsError) as caught:
        await sign_in(uow, authority, clock, address="10.0.1.1")
    assert caught.value.retry_after == 15 * 60 - 5 * 60
    assert caught.value.extra == {"retry_after": 600}

    clock.advance(caught.value.retry_after)
    pair = await sign_in(uow, authority, clock)
    assert pair.access_token


async def test_a_success_resets_the_account_counter(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    await register(uow, authority, clock)
    for _ in range(4):
        with pytest.raises(InvalidCredentialsError):
            await sign_in(uow, authority, clock, password="wrong horse battery")
    await sign_in(uow, authority, clock)
    for _ in range(4):
        with pytest.raises(InvalidCredentialsError):
            await sign_in(uow, authority, clock, password="wrong horse battery")
    await sign_in(uow, authority, clock)


async def test_unknown_accounts_are_throttled_too_so_throttling_reveals_nothing(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    for n in range(5):
        with pytest.raises(InvalidCredentialsError):
            await sign_in(uow, authority, clock, email="ghost@example.com", address=f"10.0.0.{n}")
    with pytest.raises(TooManyAttemptsError):
        await sign_in(uow, authority, clock, email="ghost@example.com", address="10.9.9.9")


async def test_one_address_is_throttled_after_twenty_failures_across_accounts(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    await register(uow, authority, clock)
    for n in range(20):
        with pytest.raises(InvalidCredentialsError):
            await sign_in(
                uow, authority, clock, email=f"user{n}@example.com", address="203.0.113.7"
            )
    with pytest.raises(TooManyAttemptsError) as caught:
        await sign_in(uow, authority, clock, address="203.0.113.7")
    assert caught.value.retry_after == 900
    # another address is not affected, and this account had no failures of its own
    await sign_in(uow, authority, clock, address="203.0.113.8")


async def test_signing_in_rehashes_a_password_hashed_with_other_parameters(
    uow: InMemoryIdentityUnitOfWork, settings: IdentitySettings, clock: FakeClock
) -> None:
    old = build_authority(settings, hasher=Argon2PasswordHasher(time_cost=1, memory_cost=8))
    new = build_authority(settings, hasher=Argon2PasswordHasher(time_cost=2, memory_cost=16))
    user_id = await register(uow, old, clock)
    assert "m=8,t=1" in uow.committed.users[user_id].password_hash

    await sign_in(uow, new, clock)
    rehashed = uow.committed.users[user_id]
    assert "m=16,t=2" in rehashed.password_hash
    assert rehashed.updated_at == clock()
    await sign_in(uow, new, clock)  # the new hash verifies
    assert uow.committed.users[user_id].password_hash == rehashed.password_hash


# -- refresh and logout ---------------------------------------------------------------------


async def test_a_refresh_token_works_once_and_reuse_revokes_the_whole_family(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    await register(uow, authority, clock)
    first = await sign_in(uow, authority, clock)
    other_session = await sign_in(uow, authority, clock)
    clock.advance(30)
    second = await handlers.refresh(uow, authority, refresh_token=first.refresh_token, now=clock())
    third = await handlers.refresh(uow, authority, refresh_token=second.refresh_token, now=clock())
    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    assert verify(third.access_token, await jwks(uow, clock), clock)["roles"] == ["customer"]

    # someone replays the first token: it fails, and so does every token of its family
    with pytest.raises(InvalidRefreshTokenError):
        await handlers.refresh(uow, authority, refresh_token=first.refresh_token, now=clock())
    with pytest.raises(InvalidRefreshTokenError):
        await handlers.refresh(uow, authority, refresh_token=third.refresh_token, now=clock())
    family = {t.family_id for t in uow.committed.refresh_tokens.values()}
    assert len(family) == 2
    revoked = [t for t in uow.committed.refresh_tokens.values() if t.revoked_at is not None]
    assert len(revoked) == 3
    # another sign-in's family lives on
    await handlers.refresh(uow, authority, refresh_token=other_session.refresh_token, now=clock())


class StaleReads(InMemoryIdentityUnitOfWork):
    """Reads one refresh token as it was before a concurrent refresh swapped it."""

    def __init__(self, stale: RefreshToken, state: InMemoryState) -> None:
        super().__init__(state)
        self.stale = stale

    async def __aenter__(self) -> StaleReads:
        await super().__aenter__()

        async def get_by_hash(token_hash: str) -> RefreshToken | None:
            return self.stale if token_hash == self.stale.token_hash else None

        self.refresh_tokens.get_by_hash = get_by_hash  # type: ignore[method-assign]
        return self


async def test_a_refresh_that_loses_a_race_counts_as_reuse(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    await register(uow, authority, clock)
    pair = await sign_in(uow, authority, clock)
    [stored] = uow.committed.refresh_tokens.values()
    uow.committed.refresh_tokens[stored.id] = replace(stored, rotated_at=clock())

    with pytest.raises(InvalidRefreshTokenError):
        await handlers.refresh(
            StaleReads(stored, uow.committed),
            authority,
            refresh_token=pair.refresh_token,
            now=clock(),
        )
    assert all(t.revoked_at is not None for t in uow.committed.refresh_tokens.values())


async def test_expired_and_unknown_refresh_tokens_are_refused(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    await register(uow, authority, clock)
    pair = await sign_in(uow, authority, clock)
    with pytest.raises(InvalidRefreshTokenError):
        await handlers.refresh(uow, authority, refresh_token="unknown-token", now=clock())
    clock.advance(timedelta(days=14).total_seconds())
    with pytest.raises(InvalidRefreshTokenError):
        await handlers.refresh(uow, authority, refresh_token=pair.refresh_token, now=clock())
    [stored] = uow.committed.refresh_tokens.values()
    assert stored.rotated_at is None
    assert stored.revoked_at is None


async def test_logout_revokes_the_family_and_is_idempotent(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    await register(uow, authority, clock)
    first = await sign_in(uow, authority, clock)
    second = await handlers.refresh(uow, authority, refresh_token=first.refresh_token, now=clock())

    await handlers.sign_out(uow, refresh_token=first.refresh_token, now=clock())
    await handlers.sign_out(uow, refresh_token=first.refresh_token, now=clock())
    await handlers.sign_out(uow, refresh_token="never-issued", now=clock())
    with pytest.raises(InvalidRefreshTokenError):
        await handlers.refresh(uow, authority, refresh_token=second.refresh_token, now=clock())
    assert all(t.revoked_at is not None for t in uow.committed.refresh_tokens.values())


async def test_pruning_forgets_expired_tokens_and_old_failures(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    await register(uow, authority, clock)
    await sign_in(uow, authority, clock)
    with pytest.raises(InvalidCredentialsError):
        await sign_in(uow, authority, clock, password="wrong horse battery")
    await handlers.prune(uow, authority, now=clock())
    assert len(uow.committed.refresh_tokens) == 1
    assert len(uow.committed.login_failures) == 2  # the account and the address
    clock.advance(timedelta(days=15).total_seconds())
    await handlers.prune(uow, authority, now=clock())
    assert uow.committed.refresh_tokens == {}
    assert uow.committed.login_failures == []


# -- signing keys ---------------------------------------------------------------------------


async def test_keys_rotate_when_old_and_old_tokens_verify_until_they_expire(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    first_key = await handlers.rotate_signing_key(uow, authority, now=clock())
    assert first_key is not None
    assert await handlers.rotate_signing_key(uow, authority, now=clock()) is None
    await register(uow, authority, clock)

    clock.advance(timedelta(hours=24).total_seconds() - 1)
    assert await handlers.rotate_signing_key(uow, authority, now=clock()) is None
    old_token = (await sign_in(uow, authority, clock)).access_token
    assert jwt.get_unverified_header(old_token)["kid"] == first_key.kid

    clock.advance(1)
    second_key = await handlers.rotate_signing_key(uow, authority, now=clock())
    assert second_key is not None
    new_token = (await sign_in(uow, authority, clock)).access_token
    assert jwt.get_unverified_header(new_token)["kid"] == second_key.kid

    keys = await jwks(uow, clock)
    assert [k["kid"] for k in keys["keys"]] == [second_key.kid, first_key.kid]
    for jwk in keys["keys"]:
        assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )
    verify(old_token, keys, clock)
    verify(new_token, keys, clock)

    # the old key is published until its last token expired (+ a minute of clock skew)
    clock.advance(298)  # the old token was signed a second before the rotation
    verify(old_token, await jwks(uow, clock), clock)
    clock.advance(1)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(old_token, await jwks(uow, clock), clock)
    clock.advance(60)
    assert len((await jwks(uow, clock))["keys"]) == 2
    clock.advance(1)  # rotation + 300 s lifetime + 60 s skew
    keys = await jwks(uow, clock)
    assert [k["kid"] for k in keys["keys"]] == [second_key.kid]
    with pytest.raises(jwt.InvalidTokenError, match="not published"):
        verify(old_token, keys, clock)
    await handlers.prune(uow, authority, now=clock())
    assert list(uow.committed.signing_keys) == [second_key.kid]


async def test_a_rotation_can_be_forced(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    first = await handlers.rotate_signing_key(uow, authority, now=clock())
    forced = await handlers.rotate_signing_key(uow, authority, now=clock(), force=True)
    assert first is not None
    assert forced is not None
    assert forced.kid != first.kid
    keys = uow.committed.signing_keys
    assert keys[first.kid].retired_at == clock()
    assert keys[first.kid].publish_until == clock() + timedelta(seconds=300 + 60)
    assert keys[forced.kid].is_active


async def test_a_key_sealed_with_another_secret_is_replaced(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    old = await handlers.rotate_signing_key(uow, authority, now=clock())
    assert old is not None
    assert b"ENCRYPTED PRIVATE KEY" in old.sealed_private_key
    rekeyed = replace(authority, cipher=KeyCipher("a-new-key-encryption-secret"))
    new = await handlers.rotate_signing_key(uow, rekeyed, now=clock())
    assert new is not None
    assert new.kid != old.kid
    await register(uow, rekeyed, clock)
    pair = await sign_in(uow, rekeyed, clock)
    assert jwt.get_unverified_header(pair.access_token)["kid"] == new.kid


# -- the first admin ------------------------------------------------------------------------


async def test_the_admin_bootstrap_is_idempotent(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    admin = await handlers.ensure_admin(
        uow, authority, email="Root@Mercato.local", password=PASSWORD, now=clock()
    )
    assert admin.roles == frozenset({"admin", "customer"})
    assert admin.email == "Root@mercato.local"
    assert uow.commits == 1
    again = await handlers.ensure_admin(
        uow, authority, email="root@mercato.local", password=PASSWORD, now=clock()
    )
    assert again == admin
    assert uow.commits == 1
    pair = await sign_in(uow, authority, clock, email="root@mercato.local")
    assert verify(pair.access_token, await jwks(uow, clock), clock)["roles"] == [
        "admin",
        "customer",
    ]


async def test_the_admin_bootstrap_updates_the_password_and_promotes_an_existing_user(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    user_id = await register(uow, authority, clock)
    clock.advance(5)
    admin = await handlers.ensure_admin(
        uow, authority, email="alice@example.com", password="a brand new password", now=clock()
    )
    assert admin.id == user_id
    assert admin.roles == frozenset({"admin", "customer"})
    assert admin.updated_at == clock()
    with pytest.raises(InvalidCredentialsError):
        await sign_in(uow, authority, clock)
    await sign_in(uow, authority, clock, password="a brand new password")


async def test_the_admin_bootstrap_refuses_a_weak_password(
    uow: InMemoryIdentityUnitOfWork, authority: Authority, clock: FakeClock
) -> None:
    with pytest.raises(WeakPasswordError):
        await handlers.ensure_admin(
            uow, authority, email="root@mercato.local", password="admin", now=clock()
        )
    assert uow.committed.users == {}
