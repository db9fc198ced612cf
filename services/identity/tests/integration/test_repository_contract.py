"""One contract for identity's repositories, run against the fakes, SQLite and PostgreSQL."""

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chassis import Database
from identity.adapters.memory import InMemoryIdentityUnitOfWork
from identity.adapters.repository import SqlIdentityUnitOfWork
from identity.bootstrap import migrate
from identity.domain.keys import KeyCipher, KeyPolicy, new_signing_key
from identity.domain.tokens import TokenPolicy, new_refresh_token
from identity.domain.users import EmailAddress, User, UserRegistered, new_user
from identity.errors import EmailTakenError
from identity.service_layer.ports import IdentityUnitOfWork

UowFactory = Callable[[], IdentityUnitOfWork]
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = TokenPolicy("iss", "aud", timedelta(minutes=5), timedelta(days=14))


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.integration)]
)
async def uow_factory(
    request: pytest.FixtureRequest, tmp_path: Path, make_settings: Callable[..., object]
) -> AsyncIterator[UowFactory]:
    if request.param == "memory":
        shared = InMemoryIdentityUnitOfWork()
        yield lambda: shared
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/identity.db"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate(make_settings(database_url=url))  # type: ignore[arg-type]
    database = Database(url)
    try:
        yield lambda: SqlIdentityUnitOfWork(database, write=True)
    finally:
        await database.dispose()


def user(email: str = "alice@example.com", *, name: str = "Alice") -> User:
    made, _ = new_user(
        email=EmailAddress(email, email.lower()),
        name=name,
        password_hash="$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        now=T0,
    )
    return made


async def store_user(factory: UowFactory, *users: User) -> None:
    async with factory() as uow:
        for u in users:
            await uow.users.add(u)
        await uow.commit()


async def test_users_round_trip_and_emails_are_unique(uow_factory: UowFactory) -> None:
    alice = user(name="Zoë 🙂 O'Brien")
    await store_user(uow_factory, alice)
    async with uow_factory() as uow:
        assert await uow.users.get(alice.id) == alice
        assert await uow.users.get_by_email("alice@example.com") == alice
        assert await uow.users.get_by_email("ALICE@example.com") is None  # keys are lowercased
        assert await uow.users.get("missing") is None
        promoted = alice.with_roles("admin", now=T0 + timedelta(seconds=1))
        await uow.users.save(promoted)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.users.get(alice.id) == promoted
        with pytest.raises(EmailTakenError):
            await uow.users.add(user("Alice@example.com"))
        # the transaction survives the refused insert
        await uow.users.add(user("bob@example.com", name="Bob"))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.users.get_by_email("bob@example.com") is not None


async def test_uncommitted_work_and_its_events_are_dropped(uow_factory: UowFactory) -> None:
    alice = user()
    async with uow_factory() as uow:
        await uow.users.add(alice)
        uow.record(UserRegistered(alice.id, alice.email, alice.name, T0))
    uow = uow_factory()
    async with uow:
        assert await uow.users.get(alice.id) is None
    assert uow.events == []
    async with uow:
        await uow.users.add(alice)
        uow.record(UserRegistered(alice.id, alice.email, alice.name, T0))
        await uow.commit()
    assert [e.user_id for e in uow.events] == [alice.id]


async def test_refresh_tokens_rotate_once_and_revoke_by_family(uow_factory: UowFactory) -> None:
    alice = user()
    await store_user(uow_factory, alice)
    _, first = new_refresh_token(user_id=alice.id, family_id=None, now=T0, policy=POLICY)
    _, sibling = new_refresh_token(
        user_id=alice.id, family_id=first.family_id, now=T0, policy=POLICY
    )
    _, stranger = new_refresh_token(user_id=alice.id, family_id=None, now=T0, policy=POLICY)
    async with uow_factory() as uow:
        for token in (first, sibling, stranger):
            await uow.refresh_tokens.add(token)
        await uow.commit()
    later = T0 + timedelta(minutes=1)
    async with uow_factory() as uow:
        assert await uow.refresh_tokens.get_by_hash(first.token_hash) == first
        assert await uow.refresh_tokens.get_by_hash("0" * 64) is None
        assert await uow.refresh_tokens.mark_rotated(first.id, at=later)
        assert not await uow.refresh_tokens.mark_rotated(first.id, at=later)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.refresh_tokens.get_by_hash(first.token_hash) == replace(
            first, rotated_at=later
        )
        await uow.refresh_tokens.revoke_family(first.family_id, at=later)
        await uow.commit()
    async with uow_factory() as uow:
        revoked = await uow.refresh_tokens.get_by_hash(sibling.token_hash)
        assert revoked is not None
        assert revoked.revoked_at == later
        assert not await uow.refresh_tokens.mark_rotated(sibling.id, at=later)
        untouched = await uow.refresh_tokens.get_by_hash(stranger.token_hash)
        assert untouched == stranger
        assert await uow.refresh_tokens.delete_expired(before=T0 + timedelta(days=13)) == 0
        assert await uow.refresh_tokens.delete_expired(before=T0 + timedelta(days=14)) == 3
        await uow.commit()


async def test_signing_keys_retire_once_and_leave_when_unpublished(
    uow_factory: UowFactory,
) -> None:
    cipher = KeyCipher("contract-test-secret")
    policy = KeyPolicy(rotation_period=timedelta(days=1), overlap=timedelta(minutes=5))
    old = new_signing_key(cipher, now=T0)
    new = new_signing_key(cipher, now=T0 + timedelta(days=1))
    async with uow_factory() as uow:
        await uow.signing_keys.add(new)
        await uow.signing_keys.add(old)
        await uow.commit()
    retired = old.retire(now=T0 + timedelta(days=1), policy=policy)
    async with uow_factory() as uow:
        assert await uow.signing_keys.all() == [old, new]
        assert await uow.signing_keys.retire(retired)
        assert not await uow.signing_keys.retire(retired)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.signing_keys.all()
        assert stored == [retired, new]
        assert cipher.open(stored[0]).public_key() is not None
        assert await uow.signing_keys.delete_unpublished(before=T0 + timedelta(days=1)) == 0
        gone = await uow.signing_keys.delete_unpublished(before=retired.publish_until)  # type: ignore[arg-type]
        assert gone == 1
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.signing_keys.all() == [new]


async def test_login_failures_count_in_windows_and_clear(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        await uow.login_attempts.record_failure(["account", "address"], at=T0)
        await uow.login_attempts.record_failure(["account"], at=T0 + timedelta(minutes=5))
        await uow.login_attempts.record_failure(["address"], at=T0 + timedelta(minutes=10))
        await uow.commit()
    async with uow_factory() as uow:
        failures = await uow.login_attempts.failures_since("account", since=T0 - timedelta(1))
        assert failures == [T0, T0 + timedelta(minutes=5)]
        assert await uow.login_attempts.failures_since("account", since=T0) == [
            T0 + timedelta(minutes=5)
        ]
        await uow.login_attempts.clear("account")
        assert await uow.login_attempts.failures_since("account", since=T0 - timedelta(1)) == []
        assert await uow.login_attempts.delete_older_than(T0) == 1
        assert await uow.login_attempts.failures_since("address", since=T0 - timedelta(1)) == [
            T0 + timedelta(minutes=10)
        ]
        await uow.commit()
