"""`mercato check`: audit the running platform's consistency invariants.

Reads each service's admin-only audit API (never another service's database) and reports
every violation of:

- every order is terminal, or younger than the saga timeout;
- a CONFIRMED order has a committed reservation for exactly its lines and exactly one
  capture of exactly its total; a REJECTED or CANCELLED order holds no reservation and no
  net charge;
- for every SKU, initial + restocks (+ adjustments) = available + reserved + committed, and
  nothing is negative;
- captures - refunds per order ∈ {0, total}; no psp charge without a matching ledger entry.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from chassis import InternalTokenCodec, Principal

TERMINAL = frozenset({"CONFIRMED", "REJECTED", "CANCELLED"})
AUDITS = {
    "orders": "/internal/audit/orders",
    "inventory": "/internal/audit/stock",
    "payments": "/internal/audit/payments",
    "psp": "/internal/audit/charges",
}


@dataclass
class Report:
    orders_checked: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)

    def add(self, invariant: str, subject: str, detail: str) -> None:
        self.violations.append({"invariant": invariant, "id": subject, "detail": detail})

    def as_dict(self) -> dict[str, Any]:
        return {"orders_checked": self.orders_checked, "violations": self.violations}


def _amount(value: Any) -> int:
    """Audit APIs give money as {amount, currency} or as a bare integer of minor units."""
    if isinstance(value, dict):
        return int(value.get("amount", 0))
    return int(value or 0)


def _lines(lines: list[dict[str, Any]]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for line in lines:
        totals[str(line["sku"])] += int(line["quantity"])
    return totals


def audit(
    orders: dict[str, Any],
    stock: dict[str, Any],
    payments: dict[str, Any],
    charges: dict[str, Any],
    *,
    now: datetime | None = None,
) -> Report:
    """Every invariant violation found in the four audit documents."""
    moment = now or datetime.now(UTC)
    report = Report()
    timeout = timedelta(seconds=float(orders.get("saga_timeout_seconds", 60)))
    reservations = {r["order_id"]: r for r in stock.get("reservations", [])}
    payment_of = {p["order_id"]: p for p in payments.get("items", [])}

    for order in orders.get("items", []):
        report.orders_checked += 1
        order_id = str(order["id"])
        status = order["status"]
        total = _amount(order["total"])
        created = datetime.fromisoformat(str(order["created_at"]).replace("Z", "+00:00"))
        if status not in TERMINAL and moment - created > timeout:
            report.add("order_settles", order_id, f"{status} for {moment - created}")
        reservation = reservations.get(order_id)
        payment = payment_of.get(order_id)
        captured = _amount(payment.get("captured")) if payment else 0
        refunded = _amount(payment.get("refunded")) if payment else 0
        net = captured - refunded
        if status == "CONFIRMED":
            if reservation is None or reservation["status"] != "committed":
                state = reservation["status"] if reservation else "missing"
                report.add("confirmed_has_committed_reservation", order_id, f"reservation {state}")
            elif _lines(reservation["lines"]) != _lines(order["lines"]):
                report.add("confirmed_has_committed_reservation", order_id, "lines differ")
            captures = [e for e in (payment or {}).get("ledger", []) if e.get("kind") == "capture"]
            if len(captures) != 1 or captured != total:
                report.add(
                    "confirmed_captured_once",
                    order_id,
                    f"{len(captures)} capture(s) of {captured}, total {total}",
                )
        if status in ("REJECTED", "CANCELLED"):
            if reservation is not None and reservation["status"] in ("held", "committed"):
                report.add(
                    "closed_holds_no_stock", order_id, f"reservation {reservation['status']}"
                )
            if net != 0:
                report.add("closed_has_no_net_charge", order_id, f"net charge {net}")
        if net not in (0, total):
            report.add("net_charge_is_zero_or_total", order_id, f"net {net}, total {total}")

    for sku in stock.get("skus", []):
        supply = int(sku["initial"]) + int(sku["restocked"]) + int(sku.get("adjusted", 0))
        held = int(sku["available"]) + int(sku["reserved"]) + int(sku["committed"])
        if supply != held:
            report.add("stock_conserved", str(sku["sku"]), f"supply {supply} != {held} held")
        if min(int(sku["available"]), int(sku["reserved"]), int(sku["committed"])) < 0:
            report.add("stock_not_negative", str(sku["sku"]), "a bucket is negative")

    for charge in charges.get("items", []):
        if charge.get("status") not in ("authorized", "captured", "refunded"):
            continue
        order_id = str(charge.get("reference") or "")
        payment = payment_of.get(order_id)
        if payment is None or not payment.get("ledger"):
            report.add("psp_charge_has_ledger", order_id or str(charge["id"]), "no ledger entry")
            continue
        psp_net = int(charge.get("captured_amount", 0)) - int(charge.get("refunded_amount", 0))
        ours = _amount(payment.get("captured")) - _amount(payment.get("refunded"))
        if psp_net != ours:
            report.add("psp_matches_ledger", order_id, f"psp net {psp_net}, ledger net {ours}")
    return report


async def fetch_audits(urls: dict[str, str], secret: str) -> dict[str, dict[str, Any]]:
    token = InternalTokenCodec(secret.encode()).issue(
        Principal("mercato-check", frozenset({"admin"}))
    )
    timeout = aiohttp.ClientTimeout(total=60)
    headers = {"x-mercato-principal": token}
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:

        async def one(service: str) -> dict[str, Any]:
            async with session.get(urls[service] + AUDITS[service]) as response:
                if response.status != 200:
                    raise RuntimeError(f"{service} audit answered HTTP {response.status}")
                document: dict[str, Any] = await response.json()
                return document

        names = list(AUDITS)
        documents = await asyncio.gather(*(one(name) for name in names))
    return dict(zip(names, documents, strict=True))
