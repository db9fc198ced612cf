"""Login throttling: sliding windows of failed sign-ins per account and per client address.

Failures are counted under *subjects*: one per account (the email lookup key, whether or not
such an account exists, so throttling reveals nothing) and one per client address (IPv6
addresses by their /64, which one client usually holds whole). Subjects are SHA-256 hashed:
people type passwords into the email field, and those must not be stored in clear.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["LoginLimits", "account_subject", "address_subject", "retry_after"]


@dataclass(frozen=True)
class LoginLimits:
    per_account: int  # failures an account may take within `window`
    per_address: int  # failures one client address may make within `window`
    window: timedelta


def _subject(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\x00{value}".encode("utf-8", "surrogatepass")).hexdigest()


def account_subject(email_key: str) -> str:
    return _subject("account", email_key)


def address_subject(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return _subject("address", address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _subject("address", str(ip.ipv4_mapped))
        return _subject("address", str(ipaddress.IPv6Network((ip, 64), strict=False)))
    return _subject("address", str(ip))


def retry_after(
    failures: Sequence[datetime], *, limit: int, window: timedelta, now: datetime
) -> int | None:
    """Seconds until one more attempt is allowed, or None when allowed now.

    `failures` are the subject's failures within the window. With `limit` or more, the
    subject waits until enough of them have left the window to fall below the limit.
    """
    recent = sorted(at for at in failures if at > now - window)
    if len(recent) < limit:
        return None
    frees_at = recent[len(recent) - limit] + window
    return max(1, math.ceil((frees_at - now).total_seconds()))
