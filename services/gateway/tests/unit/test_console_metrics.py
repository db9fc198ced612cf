"""The console's numbers: /metrics text read down to a Reading, and rates and p99s from the
differences between two snapshots."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.console.history import Health, History, Snapshot, increase
from gateway.console.readings import Reading, parse_metrics, quantile

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Instance:
    """One process's metrics, named and labelled as the chassis names them, in a registry
    of their own; `text()` is what its /metrics would answer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("mercato_http_requests_total", "", ["route", "method", "status"],
                                registry=self.registry)  # fmt: skip
        self.duration = Histogram("mercato_http_request_duration_seconds", "",
                                  ["route", "method"], buckets=BUCKETS, registry=self.registry)  # fmt: skip
        self.breaker = Gauge("mercato_circuit_breaker_state", "", ["breaker"],
                             registry=self.registry)  # fmt: skip
        self.backlog = Gauge("mercato_outbox_backlog", "", registry=self.registry)
        self.oldest = Gauge("mercato_outbox_oldest_unsent_age_seconds", "", registry=self.registry)
        self.lag = Gauge("mercato_consumer_lag_messages", "", ["consumer"], registry=self.registry)
        self.dead = Gauge("mercato_dead_letters_stored", "", registry=self.registry)
        self.started = Counter("mercato_sagas_started_total", "", ["saga"], registry=self.registry)
        self.finished = Counter("mercato_sagas_finished_total", "", ["saga", "outcome"],
                                registry=self.registry)  # fmt: skip
        self.active = Gauge("mercato_sagas_active", "", ["saga", "status"], registry=self.registry)

    def serve(self, route: str, status: int, seconds: float, times: int = 1) -> None:
        for _ in range(times):
            self.requests.labels(route, "GET", str(status)).inc()
            self.duration.labels(route, "GET").observe(seconds)

    def text(self) -> str:
        return generate_latest(self.registry).decode()


def test_a_reading_keeps_what_the_console_shows_and_leaves_out_probes_and_the_console() -> None:
    instance = Instance()
    instance.serve("/api/v1/orders", 202, 0.02, times=7)
    instance.serve("/api/v1/orders/{order_id}", 503, 0.3, times=2)
    instance.serve("/api/v1/orders", 404, 0.004)
    for quiet in ("/metrics", "/readyz", "/livez", "/api/v1/console/services", "/console"):
        instance.serve(quiet, 200, 0.9, times=5)
    instance.breaker.labels("catalog").set(0)
    instance.breaker.labels("payments").set(1)
    instance.breaker.labels("psp").set(2)
    instance.backlog.set(4)
    instance.oldest.set(2.5)
    instance.lag.labels("orders").set(12)
    instance.dead.set(3)
    instance.started.labels("checkout").inc(5)
    instance.finished.labels("checkout", "completed").inc(3)
    instance.finished.labels("checkout", "compensated").inc(1)
    instance.active.labels("checkout", "RUNNING").set(1)
    instance.active.labels("checkout", "COMPENSATING").set(1)

    reading = parse_metrics(instance.text())

    assert reading.requests == 10 and reading.errors == 2
    assert dict(reading.buckets)[0.005] == 1  # the 4 ms one; the probes' 0.9 s left out
    assert dict(reading.buckets)[math.inf] == 10
    assert reading.breakers == {"catalog": "closed", "payments": "open", "psp": "half_open"}
    assert (reading.outbox_backlog, reading.outbox_oldest_age) == (4, 2.5)
    assert reading.consumer_lag == {"orders": 12}
    assert reading.dead_letters_stored == 3
    assert reading.sagas_started == {"checkout": 5}
    assert reading.sagas_finished == {("checkout", "completed"): 3, ("checkout", "compensated"): 1}
    assert reading.sagas_active == 2


def test_an_instance_without_messaging_has_no_outbox_and_no_lag() -> None:
    registry = CollectorRegistry()
    Counter("mercato_http_requests_total", "", ["route", "method", "status"], registry=registry)
    reading = parse_metrics(generate_latest(registry).decode())
    assert reading == Reading()


def test_malformed_metrics_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_metrics('mercato_http_requests_total{route="/x" 3\n')


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, ((0.1, 0.0), (0.2, 10.0), (math.inf, 10.0)), 0.15),  # halfway into (0.1, 0.2]
        (0.99, ((0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)), 0.198),
        (0.5, ((0.1, 10.0), (math.inf, 10.0)), 0.05),  # the first bucket starts at 0
        (0.99, ((0.1, 1.0), (0.2, 1.0), (math.inf, 5.0)), 0.2),  # in +Inf: the top bound
        (0.99, ((0.1, 0.0), (math.inf, 0.0)), None),  # nothing observed
        (0.99, (), None),
    ],
)
def test_quantiles_interpolate_within_the_bucket_like_prometheus(
    q: float, buckets: tuple[tuple[float, float], ...], expected: float | None
) -> None:
    found = quantile(q, buckets)
    assert found == expected if expected is None else found == pytest.approx(expected)


def test_a_counter_that_went_down_restarted_from_zero() -> None:
    assert increase(10, 15) == 5
    assert increase(10, 3) == 3


def snapshot(at: float, readings: dict[str, Reading], services: dict[str, str]) -> Snapshot:
    return Snapshot(at=at, services=services, readings=readings,
                    health={i: Health(ready=True) for i in services})  # fmt: skip


def test_rates_errors_and_p99_come_from_the_difference_between_snapshots() -> None:
    orders1, orders2, psp = Instance(), Instance(), Instance()
    services = {"orders-1": "orders", "orders-2": "orders", "psp-1": "psp"}
    history = History(keep=10)
    orders1.serve("/api/v1/orders", 200, 0.004, times=100)  # before: not in any rate
    history.add(snapshot(100.0, {"orders-1": parse_metrics(orders1.text()),
                                 "orders-2": parse_metrics(orders2.text())}, services))  # fmt: skip
    orders1.serve("/api/v1/orders", 200, 0.02, times=40)
    orders2.serve("/api/v1/orders", 500, 0.4, times=10)
    orders1.started.labels("checkout").inc(20)
    orders1.finished.labels("checkout", "completed").inc(15)
    orders2.finished.labels("checkout", "compensated").inc(5)
    psp.serve("/v1/authorizations", 201, 0.01, times=50)  # new: no rate yet
    history.add(snapshot(110.0, {"orders-1": parse_metrics(orders1.text()),
                                 "orders-2": parse_metrics(orders2.text()),
                                 "psp-1": parse_metrics(psp.text())}, services))  # fmt: skip

    series = history.series()

    assert series["times"] == [110.0]
    assert series["services"]["orders"]["rate"] == [5.0]  # (40 + 10) / 10 s
    assert series["services"]["orders"]["errors"] == [1.0]
    # 50 requests: 40 in (10 ms, 25 ms], 10 in (250 ms, 500 ms]; rank 49.5 is 95% into the
    # latter: 250 + 250 * 9.5 / 10.
    assert series["services"]["orders"]["p99_ms"] == [pytest.approx(487.5)]
    assert series["services"]["psp"] == {"rate": [0.0], "errors": [0.0], "p99_ms": [None]}
    assert series["checkouts"] == {"started": [2.0], "completed": [1.5], "compensated": [0.5]}


def test_an_instance_restarted_between_snapshots_counts_from_zero() -> None:
    before, after = Instance(), Instance()
    before.serve("/api/v1/products", 200, 0.01, times=500)
    after.serve("/api/v1/products", 200, 0.2, times=20)  # the new process's own counts
    services = {"catalog-1": "catalog"}
    history = History()
    history.add(snapshot(0.0, {"catalog-1": parse_metrics(before.text())}, services))
    history.add(snapshot(5.0, {"catalog-1": parse_metrics(after.text())}, services))
    series = history.series()["services"]["catalog"]
    assert series["rate"] == [4.0]
    assert 100 < series["p99_ms"][0] <= 250


def test_the_history_keeps_the_last_snapshots_and_answers_a_window() -> None:
    history = History(keep=3)
    services = {"catalog-1": "catalog"}
    for at in (0.0, 5.0, 10.0, 15.0):
        history.add(snapshot(at, {"catalog-1": Reading()}, services))
    assert len(history) == 3
    assert history.series()["times"] == [10.0, 15.0]
    assert history.series(since=10.0)["times"] == [15.0]
