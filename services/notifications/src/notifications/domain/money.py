"""Amounts as people read them: integer minor units and a currency → "€12.90".

No floats anywhere: the amount is split into major and minor units with integer division,
using the currency's number of minor-unit digits (ISO 4217: two for most, none for the yen,
three for the Kuwaiti dinar).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Amount", "format_money", "minor_digits"]

# Currencies whose minor unit is not a hundredth (ISO 4217 list one); the rest use 2.
_MINOR_DIGITS = {
    **dict.fromkeys(
        ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
         "VND", "VUV", "XAF", "XOF", "XPF"],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}  # fmt: skip

# Symbols written before the number; other currencies print as "12.90 CHF".
_SYMBOLS = {
    "EUR": "€",
    "USD": "$",
    "GBP": "£",
    "JPY": "¥",
    "CNY": "CN¥",
    "INR": "₹",
    "KRW": "₩",
}


def minor_digits(currency: str) -> int:
    return _MINOR_DIGITS.get(currency, 2)


def format_money(amount: int, currency: str) -> str:
    """`format_money(1290, "EUR")` → `"€12.90"`; `(123456, "CHF")` → `"1,234.56 CHF"`."""
    digits = minor_digits(currency)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**digits)
    number = f"{major:,}" + (f".{minor:0{digits}d}" if digits else "")
    symbol = _SYMBOLS.get(currency)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency}"


@dataclass(frozen=True)
class Amount:
    """Money as events carry it: integer minor units and an ISO 4217 code."""

    amount: int
    currency: str

    def __str__(self) -> str:
        return format_money(self.amount, self.currency)
