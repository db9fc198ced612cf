import pytest

from notifications.domain.money import Amount, format_money


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1290, "EUR", "€12.90"),
        (5, "EUR", "€0.05"),
        (0, "EUR", "€0.00"),
        (100, "EUR", "€1.00"),
        (123456789, "EUR", "€1,234,567.89"),
        (1999, "USD", "$19.99"),
        (250, "GBP", "£2.50"),
        (1000, "JPY", "¥1,000"),  # no minor unit
        (1234, "KWD", "1.234 KWD"),  # three digits
        (1290, "CHF", "12.90 CHF"),  # no symbol: the code follows
        (-1290, "EUR", "-€12.90"),
    ],
)
def test_money_reads_as_people_write_it(amount: int, currency: str, text: str) -> None:
    assert format_money(amount, currency) == text
    assert str(Amount(amount, currency)) == text


@pytest.mark.parametrize(
    "amount", [10**12, 10**12 - 1, 2**53 + 1, 1_000_000_000_000_001, 29, 57, 115, 999_999_999_999]
)
def test_no_amount_loses_a_cent_to_floating_point(amount: int) -> None:
    # 2**53 + 1 and 0.29/0.57/1.15 are where float formatting goes wrong.
    text = format_money(amount, "EUR")
    assert int(text.lstrip("€").replace(",", "").replace(".", "")) == amount
