import pytest
from pydantic import ValidationError

from chassis import InternalTokenCodec, Money, Principal, clean_text, decode_cursor, encode_cursor
from chassis.errors import InvalidInputError, UnauthenticatedError


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_internal_tokens_round_trip_and_expire() -> None:
    clock = FakeTime()
    codec = InternalTokenCodec(b"k", ttl=30, clock=clock)
    token = codec.issue(Principal("u-1", frozenset({"admin", "customer"}), email="a@b.c"))
    principal = codec.verify(token)
    assert principal == Principal("u-1", frozenset({"admin", "customer"}), "a@b.c")
    assert principal.is_admin
    clock.now += 31
    with pytest.raises(UnauthenticatedError, match="expired"):
        codec.verify(token)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: "e30" + t[t.index(".") :],  # another payload, old signature
        lambda t: t.split(".")[0],
        lambda t: "",
        lambda t: "....",
        lambda t: "not base64!.sig",
    ],
)
def test_tampered_tokens_are_refused(tamper: object) -> None:
    codec = InternalTokenCodec(b"k")
    token = codec.issue(Principal("u-1", frozenset({"customer"})))
    with pytest.raises(UnauthenticatedError):
        codec.verify(tamper(token))  # type: ignore[operator]


def test_a_token_from_another_secret_is_refused() -> None:
    token = InternalTokenCodec(b"other").issue(Principal("u-1"))
    with pytest.raises(UnauthenticatedError):
        InternalTokenCodec(b"k").verify(token)


def test_clean_text_normalises_and_refuses_what_databases_cannot_hold() -> None:
    assert clean_text("e\u0301") == "\u00e9"
    assert clean_text("tab\tand\nnewline") == "tab\tand\nnewline"
    for bad in ["nul\x00", "bell\x07", "\ud800", "del\x7f"]:
        with pytest.raises(ValueError):
            clean_text(bad)


def test_money_is_strict_integer_minor_units() -> None:
    assert Money(amount=1299, currency="EUR").amount == 1299
    for amount in [12.5, "12", -1, 10**13, True]:
        with pytest.raises(ValidationError):
            Money(amount=amount, currency="EUR")  # type: ignore[arg-type]
    for currency in ["eur", "EURO", "", "E1R"]:
        with pytest.raises(ValidationError):
            Money(amount=1, currency=currency)


def test_cursors_round_trip_and_refuse_garbage() -> None:
    assert decode_cursor(encode_cursor(["a", "id-1"]), length=2) == ["a", "id-1"]
    for bad in ["%%%", "e30", encode_cursor(["only-one"]), "bm90IGpzb24"]:
        with pytest.raises(InvalidInputError):
            decode_cursor(bad, length=2)
