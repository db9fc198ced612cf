"""`mercato check`'s invariants on hand-made audit documents: each one can fail."""

from datetime import UTC, datetime, timedelta
from typing import Any

from mercato_cli.check import audit

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
EUR = "EUR"


def order(
    order_id: str, status: str, *, total: int = 1000, age: float = 600, qty: int = 2
) -> dict[str, Any]:
    return {"id": order_id, "status": status, "total": {"amount": total, "currency": EUR},
            "created_at": (NOW - timedelta(seconds=age)).isoformat(),
            "lines": [{"product_id": "p", "sku": "A", "quantity": qty, "unit_price": total // qty}]}  # fmt: skip


def clean() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    orders = {
        "saga_timeout_seconds": 60,
        "items": [order("o1", "CONFIRMED"), order("o2", "REJECTED")],
    }
    stock = {
        "skus": [{"sku": "A", "initial": 10, "restocked": 0, "adjusted": 0, "available": 8,
                  "reserved": 0, "committed": 2}],
        "reservations": [{"order_id": "o1", "status": "committed", "lines": [{"sku": "A", "quantity": 2}]},
                         {"order_id": "o2", "status": "released", "lines": [{"sku": "A", "quantity": 2}]}],
    }  # fmt: skip
    payments = {"items": [
        {"order_id": "o1", "captured": 1000, "refunded": 0,
         "ledger": [{"kind": "authorization", "amount": 1000}, {"kind": "capture", "amount": 1000}]},
        {"order_id": "o2", "captured": 0, "refunded": 0, "ledger": [{"kind": "void", "amount": 1000}]},
    ]}  # fmt: skip
    charges = {"items": [{"id": "c1", "reference": "o1", "status": "captured",
                          "captured_amount": 1000, "refunded_amount": 0}]}  # fmt: skip
    return orders, stock, payments, charges


def invariants(*docs: dict[str, Any]) -> set[str]:
    return {v["invariant"] for v in audit(*docs, now=NOW).violations}  # type: ignore[arg-type]


def test_a_consistent_platform_has_no_violation() -> None:
    report = audit(*clean(), now=NOW)
    assert report.orders_checked == 2
    assert report.violations == []


def test_each_invariant_catches_its_breach() -> None:
    orders, stock, payments, charges = clean()
    orders["items"].append(order("o3", "PENDING", age=120))
    assert invariants(orders, stock, payments, charges) == {"order_settles"}

    orders, stock, payments, charges = clean()
    stock["reservations"][0]["status"] = "held"
    assert "confirmed_has_committed_reservation" in invariants(orders, stock, payments, charges)

    orders, stock, payments, charges = clean()
    payments["items"][0]["ledger"].append({"kind": "capture", "amount": 1000})
    payments["items"][0]["captured"] = 2000
    charges["items"][0]["captured_amount"] = 2000
    found = invariants(orders, stock, payments, charges)
    assert {"confirmed_captured_once", "net_charge_is_zero_or_total"} <= found

    orders, stock, payments, charges = clean()
    payments["items"][1]["captured"] = 1000
    assert "closed_has_no_net_charge" in invariants(orders, stock, payments, charges)

    orders, stock, payments, charges = clean()
    stock["skus"][0]["available"] = 9
    assert invariants(orders, stock, payments, charges) == {"stock_conserved"}

    orders, stock, payments, charges = clean()
    charges["items"].append({"id": "c9", "reference": "ghost", "status": "authorized",
                             "captured_amount": 0, "refunded_amount": 0})  # fmt: skip
    assert invariants(orders, stock, payments, charges) == {"psp_charge_has_ledger"}
