"""The password policy (NIST SP 800-63B style: length and a blocklist, no composition rules).

Every message names the rule, never the password.
"""

from __future__ import annotations

import unicodedata

from identity.errors import WeakPasswordError

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "check_password", "normalize_password"]

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_DISTINCT = 5  # refuses "aaaaaaaaaaaa", "abababababab", "123123123123"

# The most used passwords of public breach corpora. Most are shorter than MIN_LENGTH and
# refused by length already; they stay listed so a shorter minimum would still refuse them.
COMMON_PASSWORDS = frozenset(
    {
        "123456", "123456789", "12345678", "password", "qwerty", "12345", "1234567", "111111",
        "123123", "1234567890", "000000", "abc123", "password1", "iloveyou", "1q2w3e4r",
        "qwerty123", "admin", "qwertyuiop", "654321", "555555", "lovely", "7777777", "welcome",
        "888888", "princess", "dragon", "123qwe", "sunshine", "666666", "football", "monkey",
        "letmein", "baseball", "master", "shadow", "michael", "superman", "1qaz2wsx", "trustno1",
        "passw0rd", "starwars", "hello123", "freedom", "whatever", "qazwsx", "zaq12wsx",
        "password123", "password1234", "password12345", "passwordpassword", "123456789012",
        "1234567890123", "12345678901234", "qwerty123456", "qwertyuiop123", "qwertyuiopasdf",
        "1q2w3e4r5t6y", "1q2w3e4r5t6y7u", "1qaz2wsx3edc", "1qaz2wsx3edc4rfv", "iloveyou1234",
        "iloveyouiloveyou", "administrator", "administrator1", "admin1234567", "adminadmin123",
        "welcome12345", "welcome123456", "letmein12345", "letmeinletmein", "changeme1234",
        "changemechangeme", "trustno1trustno1", "football1234", "baseball1234", "monkey123456",
        "dragon123456", "sunshine1234", "princess1234", "superman1234", "starwars1234",
        "masterpassword", "mypassword123", "secretpassword", "password!123", "p@ssw0rd1234",
        "p@ssword1234", "correcthorsebatterystaple", "abcdefghijkl", "abcdefghijklmnop",
        "abcd1234abcd", "asdfghjkl123", "asdfasdfasdf", "zxcvbnm12345", "qazwsxedcrfv",
        "mercato12345", "mercatomercato", "mercato-password", "ecommerce123",
    }
)  # fmt: skip


def normalize_password(password: str) -> str:
    """NFKC, as NIST advises, so the same password typed on any keyboard hashes alike."""
    return unicodedata.normalize("NFKC", password)


def check_password(password: str, *, email: str) -> None:
    """Raise `WeakPasswordError` naming the first rule `password` breaks."""
    text = normalize_password(password)
    if len(text) < MIN_LENGTH:
        raise WeakPasswordError(f"must be at least {MIN_LENGTH} characters long")
    if len(text) > MAX_LENGTH:
        raise WeakPasswordError(f"must be at most {MAX_LENGTH} characters long")
    if len(set(text)) < MIN_DISTINCT:
        raise WeakPasswordError(f"must use at least {MIN_DISTINCT} different characters")
    folded = text.casefold()
    if folded in COMMON_PASSWORDS:
        raise WeakPasswordError("is one of the most common passwords; choose another")
    address = email.strip().casefold()
    if folded in (address, address.partition("@")[0]):
        raise WeakPasswordError("must not be your email address")
