"""`mercato up --with-prometheus` the way a user runs it: Prometheus scrapes every service,
loads every rule, records from real traffic, and is supervised like the services."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from chassis import free_port

pytestmark = [
    pytest.mark.system,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus") is None,
        reason="prometheus is not installed (Debian: apt-get install prometheus); CI installs it",
    ),
]

MERCATO = [sys.executable, "-m", "mercato_cli"]
SERVICES = {"psp", "catalog", "identity", "inventory", "payments", "orders", "notifications",
            "gateway"}  # fmt: skip
T = TypeVar("T")


@dataclass
class Platform:
    base: str
    data_dir: Path
    process: subprocess.Popen[str]

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.data_dir / "run" / "state.json").read_text())
        return state

    @property
    def prometheus(self) -> str:
        return str(self.state()["prometheus"]["url"])

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": promql}, timeout=5)
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result


def eventually(read: Callable[[], T], ok: Callable[[T], bool], *, timeout: float = 90) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = read()
            if ok(value):
                return value
        except (httpx.HTTPError, KeyError, FileNotFoundError, json.JSONDecodeError) as error:
            value = error  # type: ignore[assignment]
        assert time.monotonic() < deadline, f"not within {timeout}s; last: {value!r}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("observed") / "data"
    port = free_port()
    env = {**os.environ, "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
           "GATEWAY_RATE_LIMIT_BURST": "100000"}  # fmt: skip
    process = subprocess.Popen(
        [*MERCATO, "--data-dir", str(data_dir), "up", "--port", str(port), "--no-seed",
         "--with-prometheus"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    platform = Platform(f"http://127.0.0.1:{port}", data_dir, process)
    try:
        eventually(lambda: platform.state()["prometheus"]["url"], bool, timeout=120)
        yield platform
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_prometheus_scrapes_every_service_and_loads_every_rule(platform: Platform) -> None:
    def up_by_service() -> dict[str, str]:
        return {r["metric"]["service"]: r["value"][1] for r in platform.query('up{job="mercato"}')}

    up = eventually(up_by_service, lambda found: found == dict.fromkeys(SERVICES, "1"))
    assert up == dict.fromkeys(SERVICES, "1")

    groups = httpx.get(f"{platform.prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(groups) == 11 and len(rules) > 50
    assert [r["name"] for r in rules if r["health"] == "err"] == []

    # What the chassis adds to every service reaches Prometheus, labelled by service.
    memory = platform.query('process_resident_memory_bytes{job="mercato"}')
    assert {r["metric"]["service"] for r in memory} == SERVICES
    pools = platform.query('mercato_db_pool_connections_max{pool="main"}')
    assert {r["metric"]["service"] for r in pools} == SERVICES - {"gateway"}  # no database
    sagas = platform.query('mercato_sagas_active{saga="checkout"}')
    assert {r["metric"]["status"] for r in sagas} == {"RUNNING", "COMPENSATING"}
    lag = eventually(lambda: platform.query("mercato_consumer_lag_messages"), lambda r: len(r) >= 4)
    assert {r["metric"]["consumer"] for r in lag} >= {"inventory", "orders", "payments",
                                                      "notifications"}  # fmt: skip


def test_recording_rules_follow_real_traffic(platform: Platform) -> None:
    route = 'service="gateway",route="/api/v1/categories",method="GET"'
    with httpx.Client(base_url=platform.base, timeout=10) as client:
        # A counter's first sample has no increase before it: let Prometheus see one, then more.
        assert client.get("/api/v1/categories").status_code == 200
        eventually(lambda: platform.query(f"mercato_http_requests_total{{{route}}}"), bool)
        for _ in range(40):
            assert client.get("/api/v1/categories").status_code == 200
    rate = eventually(
        lambda: platform.query(f"service_route_method:mercato_http_requests:rate5m{{{route}}}"),
        lambda result: bool(result) and float(result[0]["value"][1]) > 0,
    )
    assert float(rate[0]["value"][1]) > 0


def test_a_killed_prometheus_is_restarted_and_scrapes_again(platform: Platform) -> None:
    before = platform.state()["prometheus"]["pid"]
    os.kill(before, signal.SIGKILL)
    state = eventually(platform.state, lambda s: s["prometheus"]["pid"] != before)
    assert state["prometheus"]["url"] == platform.prometheus  # same port, same storage
    eventually(
        lambda: platform.query('up{job="mercato"} == 1'),
        lambda result: {r["metric"]["service"] for r in result} == SERVICES,
    )
