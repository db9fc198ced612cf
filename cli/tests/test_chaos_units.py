"""The chaos tooling's pure parts: the schedule, the history checker, counters, the pacer."""

import argparse
import asyncio
import random
import time
from typing import Any

import pytest

from mercato_cli.chaos.checker import check_history, merge
from mercato_cli.chaos.nemesis import ACK_WAIT, plan
from mercato_cli.chaos.observe import CounterWatch, parse_counters
from mercato_cli.chaos.options import FAULT_KINDS, fault_list
from mercato_cli.chaos.runner import percentiles
from mercato_cli.chaos.workload import History, Op, Pacer, Product, outcome_of

LIMITED = Product("p-lim", "LIM-1", 500, stock=5)
PLENTY = Product("p-demo", "DEMO-1", 900, stock=None)


# -- the schedule ---------------------------------------------------------------------------


def test_the_schedule_is_drawn_from_the_seed_and_gives_every_kind_its_share() -> None:
    first = plan(FAULT_KINDS, 90, per_minute=4, rng=random.Random(3))
    again = plan(FAULT_KINDS, 90, per_minute=4, rng=random.Random(3))
    other = plan(FAULT_KINDS, 90, per_minute=4, rng=random.Random(4))
    assert [(f.kind, f.at, f.params) for f in first] == [(f.kind, f.at, f.params) for f in again]
    assert [f.at for f in first] != [f.at for f in other]
    for kind in FAULT_KINDS:
        assert sum(f.kind == kind for f in first) == 6  # 4 a minute over 90 s
    for fault in first:
        assert fault.at >= 0 and fault.at + fault.duration <= 90  # healed inside the window
        if fault.kind == "pause":
            assert fault.duration > ACK_WAIT  # longer than the consumer's ack wait
        if fault.kind == "psp" and fault.params["mode"] == "latency":
            assert fault.params["knobs"]["latency_ms"] > 5000  # past payments' psp timeout
    assert [f.at for f in first] == sorted(f.at for f in first)


def test_a_short_window_still_gets_one_fault_of_each_kind() -> None:
    faults = plan(("kill", "broker"), 5, per_minute=1, rng=random.Random(1))
    assert sorted(f.kind for f in faults) == ["broker", "kill"]


def test_fault_lists_are_checked() -> None:
    assert fault_list("kill,psp,kill") == ("kill", "psp")
    assert fault_list("none") == ()
    with pytest.raises(argparse.ArgumentTypeError):
        fault_list("kill,meteor")


# -- the workload's bookkeeping -------------------------------------------------------------


def test_outcomes_are_definite_only_when_the_answer_is() -> None:
    assert [outcome_of(s) for s in (200, 201, 202)] == ["ok"] * 3
    assert [outcome_of(s) for s in (400, 401, 404, 409, 429)] == ["fail"] * 5
    assert [outcome_of(s) for s in (500, 502, 503, 504)] == ["unknown"] * 4


async def test_the_pacer_holds_the_rate_without_catch_up_bursts() -> None:
    pacer = Pacer(50)
    started = time.monotonic()
    await asyncio.gather(*(pacer.wait() for _ in range(10)))
    assert time.monotonic() - started >= 9 / 50 * 0.9


def test_percentiles() -> None:
    assert percentiles([]) == {"count": 0, "p50_ms": None, "p99_ms": None}
    found = percentiles([n / 1000 for n in range(1, 101)])
    assert found == {"count": 100, "p50_ms": 51.0, "p99_ms": 100.0}


# -- the checker ----------------------------------------------------------------------------


class Script:
    """A history written by hand, and the audit documents the services would answer."""

    def __init__(self) -> None:
        self.history = History(clock=iter(range(10_000)).__next__)
        self.orders: list[dict[str, Any]] = []
        self.reservations: list[dict[str, Any]] = []
        self.payments: list[dict[str, Any]] = []
        self.charges: list[dict[str, Any]] = []

    def place(self, key: str, outcome: str, order_id: str | None = None, *,
              product: Product = PLENTY, quantity: int = 1, token: str = "tok_visa",  # noqa: S107
              user: str = "u1") -> Op:  # fmt: skip
        lines = [{"product_id": product.id, "sku": product.sku, "quantity": quantity}]
        op = self.history.begin(0, "order", key=key,
                                detail={"token": token, "lines": lines, "user_id": user})  # fmt: skip
        op.order_id = order_id
        return self.history.finish(op, outcome, 202 if outcome == "ok" else None)

    def op(self, kind: str, order_id: str, outcome: str = "ok", **detail: Any) -> None:
        op = self.history.begin(0, kind, order_id=order_id)
        self.history.finish(op, outcome, 200, **detail)

    def order(self, order_id: str, status: str, *, product: Product = PLENTY, quantity: int = 1,
              user: str = "u1", cancellation: str | None = None) -> None:  # fmt: skip
        self.orders.append({"id": order_id, "user_id": user, "status": status,
                            "cancellation": cancellation,
                            "lines": [{"sku": product.sku, "quantity": quantity}]})  # fmt: skip

    def check(self) -> dict[str, list[str]]:
        verdict = check_history(
            self.history.ops, products=[LIMITED, PLENTY], user_ids={"u1", "u2"},
            orders={"items": self.orders}, stock={"reservations": self.reservations},
            payments={"items": self.payments}, charges={"items": self.charges},
        )  # fmt: skip
        return verdict.as_dict()


def test_a_clean_history_has_no_violations() -> None:
    s = Script()
    s.place("k1", "unknown")
    s.place("k1", "ok", "o1")  # the retry with the same key
    s.place("k1", "ok", "o1")  # a replay
    s.op("read", "o1", observed="PENDING")
    s.op("read", "o1", observed="CONFIRMED")
    s.place("k2", "ok", "o2", token="tok_chargeDeclined")
    s.place("k3", "unknown", product=LIMITED, quantity=2)  # applied, nobody was told
    s.place("k4", "unknown")  # never applied
    s.place("k5", "fail")
    s.op("cancel", "o1")
    s.order("o1", "CANCELLED")
    s.order("o2", "REJECTED")
    s.order("o3", "CONFIRMED", product=LIMITED, quantity=2)
    s.order("o-other", "CONFIRMED", user="someone-else")  # not a chaos shopper's
    s.reservations.append({"order_id": "o3", "status": "committed"})
    assert s.check() == {}


def test_every_broken_promise_is_named() -> None:
    s = Script()
    s.place("lost", "ok", "o-lost")  # answered 202, never stored
    s.place("twice", "ok", "o-a")
    s.place("twice", "ok", "o-b")  # same key, another order
    s.place("declined", "ok", "o-dec", token="tok_chargeDeclined")
    s.place("greedy", "ok", "o-greedy", product=LIMITED, quantity=6)
    s.place("seen", "ok", "o-seen")
    s.op("read", "o-seen", observed="REJECTED")
    s.place("cancel", "ok", "o-cancel")
    s.op("cancel", "o-cancel")
    s.place("quiet", "ok", "o-quiet")
    s.order("o-a", "CONFIRMED")
    s.order("o-b", "CONFIRMED")
    s.order("o-dec", "CONFIRMED")
    s.order("o-greedy", "CONFIRMED", product=LIMITED, quantity=6)
    s.order("o-seen", "CONFIRMED")
    s.order("o-cancel", "CONFIRMED")  # cancel accepted, yet neither cancelled nor flagged
    s.order("o-quiet", "CANCELLED")  # nobody asked
    s.order("o-phantom", "CONFIRMED", user="u2")  # no attempt of u2 at all
    s.reservations.append({"order_id": "o-ghost", "status": "held"})
    s.payments.append({"order_id": "o-ghost", "ledger": [{"kind": "authorization"}]})
    s.charges.append({"id": "ch1", "reference": "o-ghost", "status": "captured"})
    assert s.check() == {
        "cancel_honoured": ["o-cancel"],
        "cancelled_only_when_asked": ["o-quiet"],
        "declined_never_confirmed": ["o-dec"],
        "idempotent_replay": ["twice"],
        "observed_status_holds": ["o-seen"],
        "ok_order_exists": ["o-lost"],
        "orphan_effect": ["reservation:o-ghost", "payment:o-ghost", "charge:ch1"],
        "over_stock_rejected": ["o-greedy"],
        "unaccounted_order": ["o-phantom"],
    }


def test_a_refund_that_failed_honours_the_cancel_and_unknowns_must_settle() -> None:
    s = Script()
    s.place("k1", "ok", "o1")
    s.op("cancel", "o1")
    s.order("o1", "CONFIRMED", cancellation="refund_failed")
    s.place("k2", "unknown", quantity=3)
    s.order("o2", "PENDING", quantity=3)  # half-applied: still in its saga
    s.place("k3", "unknown")
    s.place("k3", "unknown")  # one key, two unknown attempts: at most one order
    s.order("o3", "CONFIRMED")
    s.order("o4", "CONFIRMED")  # a second order for the same key
    assert s.check() == {"unaccounted_order": ["o4"], "unknown_half_applied": ["o2"]}


def test_merge_keeps_mercato_checks_invariants_beside_the_historys() -> None:
    s = Script()
    s.place("k", "ok", "o-missing")
    verdict = check_history(s.history.ops, products=[], user_ids=set(), orders={},
                            stock={}, payments={}, charges={})  # fmt: skip
    merged = merge(verdict, [{"invariant": "stock_conserved", "id": "SKU-1", "detail": "x"}])
    assert merged == {"ok_order_exists": ["o-missing"], "stock_conserved": ["SKU-1"]}


# -- counters across restarts ---------------------------------------------------------------

PAGE = """\
# TYPE mercato_inbox_duplicates_total counter
mercato_inbox_duplicates_total{consumer="orders"} 3.0
mercato_inbox_duplicates_total{consumer="payments"} 2.0
# TYPE mercato_circuit_breaker_transitions_total counter
mercato_circuit_breaker_transitions_total{breaker="psp",from_state="closed",to_state="open"} 1.0
# TYPE mercato_http_requests_total counter
mercato_http_requests_total{method="POST",route="/api/v1/orders",status="429"} 4.0
mercato_http_requests_total{method="GET",route="/api/v1/orders",status="200"} 9.0
"""


def test_counters_sum_over_every_process_that_ever_ran() -> None:
    counters = parse_counters(PAGE)
    assert counters[("mercato_inbox_duplicates_total", ("orders",))] == 3.0
    watch = CounterWatch()
    watch.last[("orders-1", 100)] = counters  # the process before a kill
    watch.last[("orders-1", 200)] = parse_counters(PAGE.replace(" 3.0", " 1.0"))  # after
    watch.gateway_pids.add(("orders-1", 200))
    assert watch.total("mercato_inbox_duplicates_total") == 3 + 2 + 1 + 2
    assert watch.by_labels("mercato_circuit_breaker_transitions_total") == {"psp,closed,open": 2.0}
    shed = watch.total("mercato_http_requests_total", lambda labels: labels[0] == "429",
                       gateway_only=True)  # fmt: skip
    assert shed == 4.0


# -- wiring ---------------------------------------------------------------------------------


def test_chaos_is_a_mercato_command_and_up_takes_the_fault_proxy() -> None:
    from mercato_cli.main import build_parser

    args = build_parser().parse_args(["chaos", "--duration", "30", "--faults", "kill,psp"])
    assert (args.command, args.duration, args.faults) == ("chaos", 30.0, ("kill", "psp"))
    assert build_parser().parse_args(["up", "--fault-proxy"]).fault_proxy


async def test_with_the_fault_proxy_each_service_reaches_the_broker_through_its_own_link(
    tmp_path: Any,
) -> None:
    from chassis import EmbeddedNatsServer
    from mercato_cli.chaos.faultproxy import FaultProxyHub
    from mercato_cli.datadir import DataDir
    from mercato_cli.supervisor import Instance, Supervisor
    from mercato_cli.topology import SERVICES_BY_NAME

    data = DataDir(tmp_path / "data")
    data.create()
    supervisor = Supervisor(data, replicas={}, gateway_port=1, fault_proxy=True)
    supervisor.nats = EmbeddedNatsServer(tmp_path / "js", port=4999)  # not started
    hub = FaultProxyHub.in_front_of(["orders", "payments"], ("127.0.0.1", 4999), token="t")
    await hub.start()
    try:
        supervisor.fault_proxy = hub
        env = supervisor._environment(Instance(SERVICES_BY_NAME["orders"], 1, 8004))
        assert env["MERCATO_BROKER_URL"] == env["MERCATO_REGISTRY_URL"] == hub.url_for("orders")
        assert hub.url_for("orders") != hub.url_for("payments")
        supervisor.fault_proxy = None
        plain = supervisor._environment(Instance(SERVICES_BY_NAME["orders"], 1, 8004))
        assert plain["MERCATO_BROKER_URL"] == "nats://127.0.0.1:4999"
    finally:
        await hub.close()
