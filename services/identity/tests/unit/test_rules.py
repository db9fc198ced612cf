"""The domain's rules on their own: password policy, email normalisation, throttling maths."""

from datetime import UTC, datetime, timedelta

import pytest

from identity.adapters.passwords import (
    OWASP_MEMORY_KIB,
    OWASP_PARALLELISM,
    OWASP_TIME_COST,
    Argon2PasswordHasher,
)
from identity.domain.passwords import check_password, normalize_password
from identity.domain.throttling import account_subject, address_subject, retry_after
from identity.domain.users import email_lookup_key, normalize_email
from identity.errors import InvalidEmailError, WeakPasswordError

EMAIL = "alice@example.com"


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short-pass1", "at least 12"),
        ("", "at least 12"),
        ("x" * 129, "at most 128"),
        ("aaaaaaaaaaaaaaaa", "different characters"),
        ("abababababababab", "different characters"),
        ("123123123123", "different characters"),
        ("password1234", "most common"),
        ("PassWord1234", "most common"),
        ("1q2w3e4r5t6y", "most common"),
        ("correcthorsebatterystaple", "most common"),
        ("alice@example.com", "email"),
        ("ALICE@EXAMPLE.COM", "email"),
        # compatibility forms count as what they look like: fullwidth "password1234"
        ("ｐａｓｓｗｏｒｄ１２３４", "most common"),
    ],
)
def test_the_policy_refuses_weak_passwords_without_echoing_them(password: str, rule: str) -> None:
    with pytest.raises(WeakPasswordError) as caught:
        check_password(password, email=EMAIL)
    assert rule in caught.value.detail
    assert caught.value.extra["errors"][0]["field"] == "password"
    if password:
        assert password not in caught.value.detail
        assert password not in str(caught.value.extra)


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery",
        "x" * 11 + "yzabc",
        "Ünïcödé pässwörd ✓",
        "🙂🙃😉😊😇🥰🙂🙃😉😊😇🥰",
        "z" * 124 + "abcd",
    ],
)
def test_the_policy_accepts_long_varied_passwords(password: str) -> None:
    check_password(password, email=EMAIL)


def test_passwords_are_nfkc_normalised() -> None:
    assert normalize_password("ｐａｓｓ") == "pass"
    assert normalize_password("e\u0301") == "é"


@pytest.mark.parametrize(
    ("raw", "value", "key"),
    [
        ("alice@example.com", "alice@example.com", "alice@example.com"),
        ("  Alice@EXAMPLE.Com\t", "Alice@example.com", "alice@example.com"),
        ("ALICE@example.com", "ALICE@example.com", "alice@example.com"),
        ("josé@exämple.com", "josé@exämple.com", "josé@exämple.com"),
        ("jose\u0301@example.com", "josé@example.com", "josé@example.com"),
        ("user+tag@sub.example.org", "user+tag@sub.example.org", "user+tag@sub.example.org"),
    ],
)
def test_emails_are_normalised_and_keyed_case_insensitively(raw: str, value: str, key: str) -> None:
    address = normalize_email(raw)
    assert (address.value, address.key) == (value, key)
    assert email_lookup_key(raw) == key


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "no-at-sign",
        "two@@example.com",
        "a@b",
        "spaces in@example.com",
        "Alice <alice@example.com>",
        "admin@mercato.local",  # reserved domains are for operators only
        "x@localhost",
        "x@" + "a" * 64 + ".com",
        "a" * 250 + "@example.com",
        "alice＠example.com",  # fullwidth at sign
    ],
)
def test_invalid_addresses_are_refused_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidEmailError) as caught:
        normalize_email(raw)
    assert caught.value.extra["errors"][0]["field"] == "email"


def test_operators_may_use_reserved_domains_but_not_nonsense() -> None:
    address = normalize_email(" Admin@Mercato.LOCAL ", allow_reserved_domains=True)
    assert (address.value, address.key) == ("Admin@mercato.local", "admin@mercato.local")
    with pytest.raises(InvalidEmailError):
        normalize_email("bad local@mercato.local", allow_reserved_domains=True)
    with pytest.raises(InvalidEmailError):
        normalize_email("admin@-bad-.local", allow_reserved_domains=True)


def test_lookup_keys_never_raise() -> None:
    assert email_lookup_key("  Not An Email ") == "not an email"
    assert email_lookup_key("ADMIN@mercato.local") == "admin@mercato.local"


def test_retry_after_follows_a_sliding_window() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    window = timedelta(minutes=15)
    failures = [now - timedelta(minutes=m) for m in (14, 10, 5, 1)]
    assert retry_after(failures, limit=5, window=window, now=now) is None
    failures.append(now)
    # blocked until the oldest failure (14 minutes ago) leaves the window: 60 s
    assert retry_after(failures, limit=5, window=window, now=now) == 60
    assert retry_after(failures, limit=5, window=window, now=now + timedelta(seconds=60)) is None
    # failures older than the window do not count
    old = [now - timedelta(minutes=20)] * 10
    assert retry_after(old, limit=5, window=window, now=now) is None


def test_address_subjects_group_ipv6_by_64_and_unmap_ipv4() -> None:
    assert address_subject("2001:db8::1") == address_subject("2001:db8::ffff:1")
    assert address_subject("2001:db8::1") != address_subject("2001:db8:0:1::1")
    assert address_subject("::ffff:192.0.2.1") == address_subject("192.0.2.1")
    assert address_subject("192.0.2.1") != address_subject("192.0.2.2")
    assert address_subject("192.0.2.1") != account_subject("192.0.2.1")
    assert len(account_subject("alice@example.com")) == 64  # a hash, not the address


def test_the_production_hasher_meets_owasp_minimums() -> None:
    assert (OWASP_TIME_COST, OWASP_MEMORY_KIB, OWASP_PARALLELISM) == (2, 19_456, 1)
    time_cost, memory_kib, parallelism = Argon2PasswordHasher().parameters
    assert time_cost >= 2
    assert memory_kib >= 19_456
    assert parallelism >= 1
    hashed = Argon2PasswordHasher().hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in hashed


def test_the_hasher_verifies_and_spends_a_hash_on_unknown_users(
    hasher: Argon2PasswordHasher,
) -> None:
    hashed = hasher.hash("correct horse battery")
    assert hasher.verify(hashed, "correct horse battery")
    assert not hasher.verify(hashed, "correct horse batterY")
    assert not hasher.verify(None, "correct horse battery")
    assert not hasher.verify("not-a-hash", "x")
    assert hasher.needs_rehash("not-a-hash")
    assert not hasher.needs_rehash(hashed)
    assert Argon2PasswordHasher().needs_rehash(hashed)
