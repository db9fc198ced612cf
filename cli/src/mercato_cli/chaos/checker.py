"""The chaos checker: the history of client operations against what the services hold.

Besides `mercato check`'s invariants (mercato_cli.check), every client-visible promise:

- `ok_order_exists`: every order answered 2xx exists, for that user, with the lines asked for;
- `idempotent_replay`: every 2xx answer for one Idempotency-Key names the same order;
- `declined_never_confirmed`: an order paid with a declining token never ends CONFIRMED;
- `over_stock_rejected`: an order for more than a product ever had never ends CONFIRMED;
- `observed_status_holds`: a status a client read is never taken back (REJECTED stays,
  CONFIRMED may only become CANCELLED);
- `cancel_honoured`: a cancel answered 2xx ends CANCELLED (or REJECTED), or CONFIRMED with
  its refund failed (the customer may ask again);
- `cancelled_only_when_asked`: no order ends CANCELLED unless its owner asked;
- `unaccounted_order`: every order of a chaos shopper is one its client got a 2xx for, or one
  of its unknown attempts (same user, same lines): nothing is created twice or from nothing;
- `unknown_half_applied`: an order from an attempt whose outcome was unknown is settled (its
  effects are then checked like any other's);
- `orphan_effect`: no reservation, payment or psp charge for an order that does not exist.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from mercato_cli.chaos.workload import APPROVING, Op, Product

TERMINAL = frozenset({"CONFIRMED", "REJECTED", "CANCELLED"})
# A status read by a client, and the final statuses that may follow it.
_MAY_FOLLOW = {
    "PENDING": TERMINAL | {"PENDING"},
    "CONFIRMED": frozenset({"CONFIRMED", "CANCELLED"}),
    "REJECTED": frozenset({"REJECTED"}),
    "CANCELLED": frozenset({"CANCELLED"}),
}
DUPLICATE_INVARIANTS = ("idempotent_replay", "unaccounted_order", "confirmed_captured_once")


@dataclass
class Verdict:
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    unknown_keys: int = 0
    unknown_applied: int = 0
    unknown_absent: int = 0

    def add(self, invariant: str, subject: str) -> None:
        if subject not in self.violations[invariant]:
            self.violations[invariant].append(subject)

    def as_dict(self) -> dict[str, list[str]]:
        return {k: v for k, v in sorted(self.violations.items()) if v}


def _lines(lines: list[dict[str, Any]]) -> Counter[str]:
    counted: Counter[str] = Counter()
    for line in lines:
        counted[str(line["sku"])] += int(line["quantity"])
    return counted


def check_history(
    ops: list[Op],
    *,
    products: list[Product],
    user_ids: set[str],
    orders: dict[str, Any],
    stock: dict[str, Any],
    payments: dict[str, Any],
    charges: dict[str, Any],
) -> Verdict:
    verdict = Verdict()
    order_of = {str(o["id"]): o for o in orders.get("items", [])}
    limited = {p.sku: p.stock for p in products if p.stock is not None}

    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind == "order" and op.key:
            by_key[op.key].append(op)
    reads: dict[str, list[Op]] = defaultdict(list)
    cancels: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.order_id and op.kind == "read" and op.outcome == "ok":
            reads[op.order_id].append(op)
        if op.order_id and op.kind == "cancel" and op.outcome in ("ok", "unknown"):
            cancels[op.order_id].append(op)

    claimed: set[str] = set()  # orders some client was told about
    unknown_only: dict[str, list[tuple[str, Op]]] = defaultdict(list)  # user -> keys
    for key, attempts in by_key.items():
        first = attempts[0]
        lines = first.detail["lines"]
        token = first.detail["token"]
        user = first.detail.get("user_id")
        ids = {op.order_id for op in attempts if op.outcome == "ok" and op.order_id}
        if len(ids) > 1:
            verdict.add("idempotent_replay", key)
        if not ids:
            if any(op.outcome == "unknown" for op in attempts):
                verdict.unknown_keys += 1
                if user:
                    unknown_only[user].append((key, first))
            continue
        for order_id in ids:
            claimed.add(order_id)
            order = order_of.get(order_id)
            if order is None:
                verdict.add("ok_order_exists", order_id)
                continue
            if (user and order["user_id"] != user) or _lines(order["lines"]) != _lines(lines):
                verdict.add("ok_order_exists", order_id)
            _outcome(verdict, order, token=token, lines=lines, limited=limited,
                     reads=reads[order_id], cancels=cancels[order_id])  # fmt: skip

    # Orders nobody was told about must each be one unknown attempt of their user.
    for order_id, order in order_of.items():
        if order_id in claimed or order["user_id"] not in user_ids:
            continue
        candidates = unknown_only.get(order["user_id"], [])
        match = next(
            (c for c in candidates if _lines(c[1].detail["lines"]) == _lines(order["lines"])),
            None,
        )
        if match is None:
            verdict.add("unaccounted_order", order_id)
            continue
        candidates.remove(match)
        verdict.unknown_applied += 1
        if order["status"] not in TERMINAL:
            verdict.add("unknown_half_applied", order_id)
        _outcome(verdict, order, token=match[1].detail["token"], lines=match[1].detail["lines"],
                 limited=limited, reads=[], cancels=cancels[order_id])  # fmt: skip
    verdict.unknown_absent = verdict.unknown_keys - verdict.unknown_applied

    for reservation in stock.get("reservations", []):
        if reservation["order_id"] not in order_of and reservation["status"] in (
            "held", "committed"
        ):  # fmt: skip
            verdict.add("orphan_effect", f"reservation:{reservation['order_id']}")
    for payment in payments.get("items", []):
        if payment["order_id"] not in order_of and payment.get("ledger"):
            verdict.add("orphan_effect", f"payment:{payment['order_id']}")
    for charge in charges.get("items", []):
        reference = str(charge.get("reference") or "")
        if reference not in order_of and charge.get("status") in ("authorized", "captured"):
            verdict.add("orphan_effect", f"charge:{charge.get('id')}")
    return verdict


def _outcome(
    verdict: Verdict,
    order: dict[str, Any],
    *,
    token: str,
    lines: list[dict[str, Any]],
    limited: dict[str, int],
    reads: list[Op],
    cancels: list[Op],
) -> None:
    order_id = str(order["id"])
    final = order["status"]
    if token != APPROVING and final == "CONFIRMED":
        verdict.add("declined_never_confirmed", order_id)
    over = any(
        (limited.get(sku) or 0) < quantity and sku in limited
        for sku, quantity in _lines(lines).items()
    )
    if over and final == "CONFIRMED":
        verdict.add("over_stock_rejected", order_id)
    seen: list[str] = []
    for op in sorted(reads, key=lambda o: o.end):
        observed = op.detail.get("observed")
        if observed in _MAY_FOLLOW:
            if seen and observed not in _MAY_FOLLOW[seen[-1]]:
                verdict.add("observed_status_holds", order_id)  # went back in time
            seen.append(observed)
            if final not in _MAY_FOLLOW[observed]:
                verdict.add("observed_status_holds", order_id)
    if final == "CANCELLED" and not cancels:
        verdict.add("cancelled_only_when_asked", order_id)
    if any(op.outcome == "ok" for op in cancels):
        refund_failed = final == "CONFIRMED" and order.get("cancellation") == "refund_failed"
        if final not in ("CANCELLED", "REJECTED") and not refund_failed:
            verdict.add("cancel_honoured", order_id)


def merge(verdict: Verdict, check_violations: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every invariant (mercato check's and the history's) -> its offending ids."""
    merged: dict[str, list[str]] = defaultdict(list)
    for violation in check_violations:
        merged[violation["invariant"]].append(str(violation["id"]))
    for invariant, ids in verdict.as_dict().items():
        merged[invariant].extend(ids)
    return dict(sorted(merged.items()))
