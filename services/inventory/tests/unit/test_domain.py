from datetime import UTC, datetime, timedelta

import pytest

from inventory.domain.audit import Audit, SkuBalance
from inventory.domain.events import ReservationFailed, StockReserved
from inventory.domain.reservations import Reservation, ReservationStatus
from inventory.domain.stock import Change, Line, Movement, MovementKind, Stock, merge_lines

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        (MovementKind.INITIAL, Change(available=3)),
        (MovementKind.RESTOCK, Change(available=3)),
        (MovementKind.ADJUST, Change(available=3)),
        (MovementKind.RESERVE, Change(available=-3, reserved=3)),
        (MovementKind.RELEASE, Change(available=3, reserved=-3)),
        (MovementKind.EXPIRE, Change(available=3, reserved=-3)),
        (MovementKind.COMMIT, Change(reserved=-3, committed=3)),
        (MovementKind.RETURN, Change(available=3, committed=-3)),
    ],
)
def test_each_movement_moves_units_between_the_right_buckets(
    kind: MovementKind, change: Change
) -> None:
    assert Movement("A", kind, 3, NOW).change == change


def test_only_source_movements_change_the_total() -> None:
    for kind in MovementKind:
        c = Movement("A", kind, 5, NOW).change
        total = c.available + c.reserved + c.committed
        assert total == (5 if kind in {"initial", "restock", "adjust"} else 0)


def test_adjustments_may_be_negative_other_movements_not() -> None:
    assert Movement("A", MovementKind.ADJUST, -4, NOW).change == Change(available=-4)
    assert Movement("A", MovementKind.INITIAL, 0, NOW).quantity == 0
    with pytest.raises(ValueError, match="at least 1"):
        Movement("A", MovementKind.RESERVE, 0, NOW)
    with pytest.raises(ValueError, match="at least 0"):
        Movement("A", MovementKind.INITIAL, -1, NOW)
    with pytest.raises(ValueError, match="timezone"):
        Movement("A", MovementKind.RESTOCK, 1, datetime(2026, 1, 1))


def test_stock_never_goes_below_zero() -> None:
    stock = Stock("A", available=2, reserved=1, committed=0, updated_at=NOW)
    assert stock.after(Change(available=-2, reserved=2), at=NOW) == Stock("A", 0, 3, 0, NOW)
    assert stock.after(Change(available=-3, reserved=3), at=NOW) is None
    assert stock.after(Change(reserved=-2, committed=2), at=NOW) is None
    assert not Stock("A", 0, 5, 5, NOW).in_stock


def test_lines_are_merged_per_sku_and_sorted() -> None:
    merged = merge_lines([Line("B", 1), Line("A", 2), Line("B", 3)])
    assert merged == (Line("A", 2), Line("B", 4))
    with pytest.raises(ValueError, match="at least one line"):
        merge_lines([])
    with pytest.raises(ValueError, match="at least 1"):
        merge_lines([Line("A", 0)])


def test_a_repeated_reserve_is_answered_like_the_first() -> None:
    held = Reservation.hold("o1", (Line("A", 1),), now=NOW, ttl=timedelta(minutes=15))
    assert held.reserve_answer() == StockReserved("o1", held.id, NOW + timedelta(minutes=15))
    committed = held.moved_to(ReservationStatus.COMMITTED, now=NOW)
    assert committed.reserve_answer() == held.reserve_answer()
    failed = Reservation.failure("o2", reason="out_of_stock", skus=["A"], now=NOW)
    assert failed.reserve_answer() == ReservationFailed("o2", "out_of_stock", ("A",))
    expired = held.moved_to(ReservationStatus.EXPIRED, now=NOW)
    assert expired.reserve_answer() == ReservationFailed("o1", "expired", ("A",))
    tombstone = Reservation.tombstone("o3", reason="compensation", now=NOW)
    assert tombstone.reserve_answer() == ReservationFailed("o3", "released", ())


def test_only_held_reservations_are_due() -> None:
    held = Reservation.hold("o1", (Line("A", 1),), now=NOW, ttl=timedelta(seconds=10))
    assert not held.is_due(NOW + timedelta(seconds=9))
    assert held.is_due(NOW + timedelta(seconds=10))
    committed = held.moved_to(ReservationStatus.COMMITTED, now=NOW)
    assert not committed.is_due(NOW + timedelta(days=1))


def test_the_audit_names_every_imbalance() -> None:
    good = SkuBalance(
        "A", initial=10, restocked=5, adjusted=-2, available=8, reserved=2, committed=3
    )
    leak = SkuBalance(
        "B", initial=10, restocked=0, adjusted=0, available=9, reserved=0, committed=0
    )
    held = Reservation.hold("o1", (Line("A", 2),), now=NOW, ttl=timedelta(minutes=1))
    sold = Reservation.hold("o2", (Line("A", 3),), now=NOW, ttl=timedelta(minutes=1)).moved_to(
        ReservationStatus.COMMITTED, now=NOW
    )
    assert good.balanced and not leak.balanced
    assert Audit([good], [held, sold]).violations == []
    problems = Audit([good, leak], [held]).violations
    assert len(problems) == 2
    assert problems[0].startswith("B: initial 10")
    assert "committed 3 but committed reservations hold 0" in problems[1]
