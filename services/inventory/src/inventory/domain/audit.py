"""The audit's view: where each SKU's units came from and where they are now."""

from __future__ import annotations

from dataclasses import dataclass

from inventory.domain.reservations import Reservation, ReservationStatus

__all__ = ["Audit", "SkuBalance"]


@dataclass(frozen=True)
class SkuBalance:
    """Sources summed from the movements ledger; buckets read from the stock record."""

    sku: str
    initial: int
    restocked: int
    adjusted: int
    available: int
    reserved: int
    committed: int

    @property
    def balanced(self) -> bool:
        """Conservation: no unit appeared or vanished outside a source movement."""
        sources = self.initial + self.restocked + self.adjusted
        return sources == self.available + self.reserved + self.committed


@dataclass(frozen=True)
class Audit:
    skus: list[SkuBalance]
    reservations: list[Reservation]  # every reservation that holds or held stock

    @property
    def violations(self) -> list[str]:
        """What is wrong, in words; empty when the books balance."""
        problems = [
            f"{b.sku}: initial {b.initial} + restocked {b.restocked} + adjusted {b.adjusted}"
            f" != available {b.available} + reserved {b.reserved} + committed {b.committed}"
            for b in self.skus
            if not b.balanced
        ]
        for status, bucket in (
            (ReservationStatus.HELD, "reserved"),
            (ReservationStatus.COMMITTED, "committed"),
        ):
            lines: dict[str, int] = {}
            for reservation in self.reservations:
                if reservation.status is status:
                    for line in reservation.lines:
                        lines[line.sku] = lines.get(line.sku, 0) + line.quantity
            problems += [
                f"{b.sku}: {bucket} {getattr(b, bucket)} but {status} reservations"
                f" hold {lines.get(b.sku, 0)}"
                for b in self.skus
                if getattr(b, bucket) != lines.get(b.sku, 0)
            ]
        return problems
