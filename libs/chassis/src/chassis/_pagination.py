"""Opaque cursors for keyset pagination, and the `{"items", "next_cursor"}` page shape."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from chassis.errors import InvalidInputError

__all__ = ["Page", "decode_cursor", "encode_cursor"]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(position: list[Any]) -> str:
    """An opaque token for "after this row" (sort values then the id)."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, *, length: int) -> list[Any]:
    """The position inside `cursor`, or `InvalidInputError` when it was not made by us."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidInputError("the cursor is malformed; use next_cursor as given") from None
    if not isinstance(position, list) or len(position) != length:
        raise InvalidInputError("the cursor does not belong to this listing or sort order")
    return position
