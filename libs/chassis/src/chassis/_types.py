"""Value types shared by every service's API: safe text and money."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

__all__ = ["CurrencyCode", "Money", "SafeText", "SingleLine", "clean_text"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]")
# Money above this is surely a mistake, and it keeps every amount inside a 64-bit integer
# column on every database even after multiplying by a quantity.
MAX_AMOUNT = 10**12


def clean_text(value: str) -> str:
    """Refuse text that databases or logs cannot hold faithfully; normalise to NFC.

    Lone surrogates (valid in JSON, not in UTF-8) and control characters such as NUL would
    otherwise reach the database and fail there (PostgreSQL rejects NUL in text).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    if _CONTROL.search(value):
        raise ValueError("text must not contain control characters")
    return unicodedata.normalize("NFC", value)


def _single_line(value: str) -> str:
    if _LINE_BREAKS.search(value):
        raise ValueError("text must be a single line")
    return value


SafeText = Annotated[str, AfterValidator(clean_text)]
SingleLine = Annotated[str, AfterValidator(clean_text), AfterValidator(_single_line)]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]


class Money(BaseModel):
    """An amount in integer minor units (cents) with its ISO 4217 currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: StrictInt = Field(ge=0, le=MAX_AMOUNT, description="integer minor units")
    currency: CurrencyCode
