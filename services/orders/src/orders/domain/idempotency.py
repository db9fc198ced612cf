"""Idempotency keys: a retried `POST /orders` gets the first answer back, never a 2nd order.

A key belongs to one user. The first request with it stores its answer (status and body);
the same key with the same request replays that answer; with a different request it is
refused, since the client has mixed up its keys. Only successes are stored: a refused request
changed nothing, so trying it again with the same key is fine.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from orders.errors import (
    IdempotencyKeyMissingError,
    IdempotencyKeyReusedError,
    InvalidIdempotencyKeyError,
)

__all__ = ["IdempotencyRecord", "StoredResponse", "check_key", "fingerprint"]

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def check_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise IdempotencyKeyMissingError()
    if not _KEY.match(key):
        raise InvalidIdempotencyKeyError()
    return key


def fingerprint(request: Mapping[str, Any]) -> str:
    """A digest of the request's meaning: key order and whitespace do not matter."""
    canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    order_id: str
    replayed: bool = False


@dataclass(frozen=True)
class IdempotencyRecord:
    user_id: str
    key: str
    fingerprint: str
    response: StoredResponse
    created_at: datetime

    def replay(self, request_fingerprint: str) -> StoredResponse:
        if request_fingerprint != self.fingerprint:
            raise IdempotencyKeyReusedError()
        r = self.response
        return StoredResponse(r.status, r.body, r.order_id, replayed=True)
